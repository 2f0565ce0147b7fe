"""Radial Fourier analysis: angular Fourier coefficients of rings, via ApplyMasksUDF."""

from __future__ import annotations

import functools

import numpy as np

from libertem import masks
from libertem.analysis.base import AnalysisResult, AnalysisResultSet
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.masks import BaseMasksAnalysis, given, sig_center, with_roi
from libertem.common.math import prod
from libertem.common.viz import visualize_simple

__all__ = [
    "RadialFourierAnalysis",
    "RadialFourierResultSet",
    "RadialTemplate",
    "radial_fourier_masks",
    "radial_mask_factory",
    "BaseMasksAnalysis",
    "GeneratorHelper",
    "prod",
]


def radial_fourier_masks(
    cx: float,
    cy: float,
    imageSizeX: int,
    imageSizeY: int,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
    use_sparse: bool = False,
):
    """Complex masks ``exp(+1j * k * phi)`` on the radial bins between ``ri`` and ``ro``.

    The bins are those of :func:`libertem.masks.radial_bins` (antialiased, adding
    up to one); ``phi = arctan2(y - cy, x - cx)`` is the angle of the pixel centre
    (rows grow downwards: a pixel below the centre has ``phi = +pi/2``). Mask
    ``b * (max_order + 1) + k`` is bin ``b``, order ``k``.

    Returns
    -------
    numpy.ndarray or sparse.COO
        complex64 stack of shape ``(n_bins * (max_order + 1), imageSizeY, imageSizeX)``.
    """
    bins = masks.radial_bins(
        cx,
        cy,
        imageSizeX,
        imageSizeY,
        radius=ro,
        radius_inner=ri,
        n_bins=n_bins,
        use_sparse=use_sparse,
    )
    _, phi = masks.polar_map(cx, cy, imageSizeX, imageSizeY)
    # in single precision, as LiberTEM: e.g. the real part of exp(1j * pi/2) is -4.4e-8
    phi = phi.astype(np.float32)
    waves = np.stack([np.exp(1j * k * phi) for k in range(max_order + 1)])
    # broadcasting keeps sparse bins sparse
    stack = bins[:, None] * waves[None]
    return stack.reshape((-1, imageSizeY, imageSizeX)).astype(np.complex64)


def radial_mask_factory(
    detector_y: int,
    detector_x: int,
    cx: float,
    cy: float,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
    use_sparse: bool,
    dtype=np.complex64,
):
    """The mask stack of :class:`RadialFourierAnalysis` (LiberTEM's argument order).

    See :func:`radial_fourier_masks`; the stack has shape
    ``(n_bins * (max_order + 1), detector_y, detector_x)`` and dtype ``dtype``.
    """
    stack = radial_fourier_masks(
        cx, cy, detector_x, detector_y, ri, ro, n_bins, max_order, use_sparse=use_sparse
    )
    return stack.astype(dtype)


class RadialFourierResultSet(AnalysisResultSet):
    """Results of :class:`RadialFourierAnalysis`."""


class RadialTemplate(GeneratorHelper):
    """Code for :class:`RadialFourierAnalysis`."""

    short_name = "radial"
    api = "create_radial_fourier_analysis"
    api_params = {
        "cx": "cx",
        "cy": "cy",
        "ri": "ri",
        "ro": "ro",
        "n_bins": "n_bins",
        "max_order": "max_order",
        "use_sparse": "use_sparse",
    }

    def get_docs(self) -> str:
        return self.format_docs(
            "Radial Fourier analysis",
            "Angular Fourier coefficients of the intensity on rings: order ``k`` measures "
            "``k``-fold symmetry. ``dominant_b`` is the strongest order of bin ``b``.",
        )

    def get_plot(self) -> list[str]:
        return [
            f"fig, axes = plt.subplots()\n"
            "axes.set_title('dominant order, bin 0')\n"
            f"axes.imshow({self.result_name}.dominant_0.raw_data)"
        ]


class RadialFourierAnalysis(BaseMasksAnalysis):
    """Angular Fourier series of the intensity on rings around ``(cx, cy)``.

    For each radial bin ``b`` and order ``k <= max_order``, the coefficient
    ``c_b_k = sum(I * exp(+1j * k * phi))`` over the bin (see
    :func:`radial_fourier_masks`), ``phi`` measured with rows growing downwards.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``cx``, ``cy`` (default: the detector centre), ``ri``, ``ro`` (default: 0
        and half the smaller detector side), ``n_bins`` (default 1), ``max_order``
        (default 8), ``use_sparse`` (default: sparse masks).

    Notes
    -----
    Results per bin ``b`` and order ``k``: ``absolute_b_k`` (``|c_b_k|``),
    ``phase_b_k`` (the angle of ``c_b_k``), ``complex_b_k`` (``c_b_0`` for ``k = 0``,
    else ``c_b_k / max(1, |c_b_0|)``: normalised by the order-0 magnitude); and
    ``dominant_b``, the order ``k >= 1`` with the largest absolute value per frame (0
    if ``max_order == 0``). All nav-shaped. ``raw_results`` of the result set holds
    all coefficients ``c_b_k`` (not normalised) as one complex array of shape
    ``(n_bins, max_order + 1, *nav_shape)``.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        cy, cx = sig_center(self)
        p = {
            "cx": given(parameters, "cx", cx),
            "cy": given(parameters, "cy", cy),
            "ri": given(parameters, "ri", 0.0),
            "ro": given(parameters, "ro", min(self.sig_shape) / 2),
            "n_bins": int(given(parameters, "n_bins", 1)),
            "max_order": int(given(parameters, "max_order", 8)),
            "use_sparse": given(parameters, "use_sparse", True),
        }
        if p["n_bins"] < 1 or p["max_order"] < 0:
            raise ValueError("n_bins must be at least 1 and max_order at least 0")
        if p["ri"] >= p["ro"]:
            raise ValueError(f"ri={p['ri']} must be smaller than ro={p['ro']}")
        return with_roi(parameters, p)

    def get_mask_factories(self):
        p = self.parameters
        sy, sx = self.sig_shape
        return functools.partial(
            radial_fourier_masks,
            p["cx"],
            p["cy"],
            sx,
            sy,
            p["ri"],
            p["ro"],
            p["n_bins"],
            p["max_order"],
            bool(p["use_sparse"]),
        )

    def get_use_sparse(self):
        return "sparse.pydata" if self.parameters["use_sparse"] else False

    def get_preset_mask_count(self):
        p = self.parameters
        return p["n_bins"] * (p["max_order"] + 1)

    def get_preset_mask_dtype(self):
        return np.complex64

    def get_udf_results(self, udf_results, roi, damage) -> RadialFourierResultSet:
        p = self.parameters
        n_orders = p["max_order"] + 1
        coeffs = udf_results["intensity"].data
        coeffs = coeffs.reshape((*coeffs.shape[:-1], p["n_bins"], n_orders))
        # raw_results: all coefficients as (n_bins, n_orders, *nav), e.g. for spectra
        raw = np.moveaxis(coeffs, (-2, -1), (0, 1))
        return RadialFourierResultSet(
            lambda: self._results(coeffs, p["n_bins"], n_orders), raw_results=raw
        )

    @staticmethod
    def _results(coeffs, n_bins, n_orders) -> list[AnalysisResult]:
        results = []
        for b in range(n_bins):
            absolute = np.abs(coeffs[..., b, :])
            dominant = np.zeros(absolute.shape[:-1])
            if n_orders > 1:
                dominant += np.argmax(np.nan_to_num(absolute[..., 1:], nan=-1.0), axis=-1) + 1
            dominant[~np.all(np.isfinite(absolute), axis=-1)] = np.nan
            results.append(
                AnalysisResult(
                    dominant,
                    functools.partial(visualize_simple, dominant),
                    f"dominant order, bin {b}",
                    "order k >= 1 with the largest coefficient",
                    f"dominant_{b}",
                )
            )
            norm = np.maximum(1, np.abs(coeffs[..., b, 0]))
            for k in range(n_orders):
                c = coeffs[..., b, k]
                shown = c if k == 0 else c / norm
                results += [
                    AnalysisResult(
                        np.abs(c),
                        functools.partial(visualize_simple, np.abs(c)),
                        f"|c| bin {b} order {k}",
                        "absolute value of the coefficient",
                        f"absolute_{b}_{k}",
                    ),
                    AnalysisResult(
                        np.angle(c),
                        functools.partial(visualize_simple, np.angle(c)),
                        f"phase bin {b} order {k}",
                        "phase of the coefficient",
                        f"phase_{b}_{k}",
                    ),
                    AnalysisResult(
                        shown,
                        functools.partial(visualize_simple, shown),
                        f"c bin {b} order {k}",
                        "complex coefficient (order > 0: divided by max(1, |order 0|))",
                        f"complex_{b}_{k}",
                    ),
                ]
        return results

    @classmethod
    def get_template_helper(cls):
        return RadialTemplate
