"""Radial Fourier analysis: angular Fourier coefficients of rings, via ApplyMasksUDF."""

from __future__ import annotations

import functools

import numpy as np

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet, visualize_simple
from libertem.udf.masks import ApplyMasksUDF

__all__ = ["RadialFourierAnalysis", "radial_fourier_masks"]


def radial_fourier_masks(
    cx: float,
    cy: float,
    imageSizeX: int,
    imageSizeY: int,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
) -> np.ndarray:
    """Complex masks ``exp(-1j * k * phi)`` on radial bins between ``ri`` and ``ro``.

    Bin ``b`` holds pixels with ``ri + b*w < r <= ri + (b+1)*w``, ``w = (ro - ri)/n_bins``,
    where ``r`` and ``phi = arctan2(y - cy, x - cx)`` are the polar coordinates of the
    pixel centre. Mask ``b * (max_order + 1) + k`` is bin ``b``, order ``k``.

    Returns
    -------
    numpy.ndarray
        complex64 stack of shape ``(n_bins * (max_order + 1), imageSizeY, imageSizeX)``.
    """
    y, x = np.mgrid[0:imageSizeY, 0:imageSizeX]
    r = np.hypot(y - cy, x - cx)
    phi = np.arctan2(y - cy, x - cx)
    edges = np.linspace(ri, ro, n_bins + 1)
    orders = np.arange(max_order + 1)
    waves = np.exp(-1j * orders[:, None, None] * phi[None])
    stack = []
    for b in range(n_bins):
        inside = (r > edges[b]) & (r <= edges[b + 1])
        stack.append(waves * inside[None])
    return np.concatenate(stack).astype(np.complex64)


class RadialFourierAnalysis(Analysis):
    """Angular Fourier series of the intensity on rings around ``(cx, cy)``.

    For each radial bin ``b`` and order ``k <= max_order``, the coefficient
    ``sum(I * exp(-1j * k * phi))`` over the bin's pixels (see
    :func:`radial_fourier_masks`).

    Results per bin ``b`` and order ``k``: ``complex_b_k`` (the coefficient),
    ``absolute_b_k``, ``phase_b_k``; and ``dominant_b``, the order ``k >= 1`` with the
    largest absolute value per frame (0 if ``max_order == 0``). All nav-shaped.
    """

    def __init__(
        self,
        dataset,
        cx: float,
        cy: float,
        ri: float,
        ro: float,
        n_bins: int = 1,
        max_order: int = 8,
        use_sparse: bool | str | None = None,
    ):
        if n_bins < 1 or max_order < 0:
            raise ValueError("n_bins must be at least 1 and max_order at least 0")
        if ri >= ro:
            raise ValueError(f"ri={ri} must be smaller than ro={ro}")
        super().__init__(
            dataset,
            {
                "cx": cx,
                "cy": cy,
                "ri": ri,
                "ro": ro,
                "n_bins": int(n_bins),
                "max_order": int(max_order),
                "use_sparse": use_sparse,
            },
        )

    def get_udf(self) -> ApplyMasksUDF:
        p = self.parameters
        sy, sx = self.sig_shape
        factory = functools.partial(
            radial_fourier_masks,
            p["cx"],
            p["cy"],
            sx,
            sy,
            p["ri"],
            p["ro"],
            p["n_bins"],
            p["max_order"],
        )
        count = p["n_bins"] * (p["max_order"] + 1)
        return ApplyMasksUDF(
            mask_factories=factory,
            use_sparse=p["use_sparse"],
            mask_count=count,
            mask_dtype=np.complex64,
        )

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        p = self.parameters
        n_orders = p["max_order"] + 1
        coeffs = udf_results["intensity"].data
        coeffs = coeffs.reshape((*coeffs.shape[:-1], p["n_bins"], n_orders))
        results = []
        for b in range(p["n_bins"]):
            absolute = np.abs(coeffs[..., b, :])
            dominant = np.zeros(absolute.shape[:-1])
            if n_orders > 1:
                dominant += np.argmax(np.nan_to_num(absolute[..., 1:], nan=-1.0), axis=-1) + 1
            dominant[~np.all(np.isfinite(absolute), axis=-1)] = np.nan
            results.append(
                AnalysisResult(
                    dominant,
                    visualize_simple(dominant),
                    f"dominant_{b}",
                    f"dominant order, bin {b}",
                    "order k >= 1 with the largest coefficient",
                )
            )
            for k in range(n_orders):
                c = coeffs[..., b, k]
                results += [
                    AnalysisResult(
                        np.abs(c),
                        visualize_simple(np.abs(c)),
                        f"absolute_{b}_{k}",
                        f"|c| bin {b} order {k}",
                        "absolute value of the coefficient",
                    ),
                    AnalysisResult(
                        np.angle(c),
                        visualize_simple(np.angle(c)),
                        f"phase_{b}_{k}",
                        f"phase bin {b} order {k}",
                        "phase of the coefficient",
                    ),
                    AnalysisResult(
                        c,
                        visualize_simple(c),
                        f"complex_{b}_{k}",
                        f"c bin {b} order {k}",
                        "complex coefficient",
                    ),
                ]
        return AnalysisResultSet(results, raw_results=udf_results)
