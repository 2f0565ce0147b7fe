"""Analyses: ready-made UDF runs with named, visualizable results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.udf.base import UDF

__all__ = ["Analysis", "AnalysisResult", "AnalysisResultSet", "visualize_simple", "field_to_rgb"]


def visualize_simple(data: np.ndarray, logarithmic: bool = False) -> np.ndarray:
    """Scale real data (magnitude for complex) to ``[0, 1]`` for display; NaN stays NaN.

    Parameters
    ----------
    data
        Any real or complex array.
    logarithmic
        Show ``log1p`` of the values shifted to start at 0.
    """
    arr = np.asarray(data)
    arr = np.abs(arr) if arr.dtype.kind == "c" else arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return np.zeros(arr.shape)
    arr = arr - finite.min()
    if logarithmic:
        arr = np.log1p(arr)
    top = np.nanmax(arr[np.isfinite(arr)]) if finite.size else 0.0
    return arr / top if top > 0 else np.zeros(arr.shape)


def field_to_rgb(field_y: np.ndarray, field_x: np.ndarray) -> np.ndarray:
    """Colour-wheel image of a 2D vector field: hue = direction, brightness = length.

    Returns
    -------
    numpy.ndarray
        RGB image of shape ``(*field_y.shape, 3)``, values in ``[0, 1]``; black where NaN.
    """
    from matplotlib.colors import hsv_to_rgb

    fy = np.asarray(field_y, dtype=np.float64)
    fx = np.asarray(field_x, dtype=np.float64)
    magnitude = np.hypot(fy, fx)
    finite = np.isfinite(magnitude)
    top = magnitude[finite].max() if finite.any() else 0.0
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    value = magnitude / top if top > 0 else np.zeros(magnitude.shape)
    hsv = np.stack([hue, np.ones(hue.shape), value], axis=-1)
    hsv[~finite] = 0.0
    return hsv_to_rgb(hsv)


class AnalysisResult:
    """One result of an analysis.

    Parameters
    ----------
    raw_data
        The result values (navigation- or signal-shaped array).
    visualized
        An array ready to show (values in ``[0, 1]`` or an RGB image).
    key
        Name of the result in its :class:`AnalysisResultSet`.
    title
        Short human-readable title.
    desc
        Longer description.
    """

    def __init__(
        self, raw_data: Any, visualized: np.ndarray, key: str, title: str, desc: str = ""
    ):
        self.raw_data = raw_data
        self.visualized = visualized
        self.key = key
        self.title = title
        self.desc = desc

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self.raw_data)
        return arr.astype(dtype) if dtype is not None else arr

    def __repr__(self) -> str:
        shape = getattr(self.raw_data, "shape", None)
        return f"<AnalysisResult {self.key!r}: {self.title} shape={shape}>"


class AnalysisResultSet:
    """Results of an analysis, by key: ``results.intensity`` or ``results['intensity']``.

    Integer indices and iteration follow the order of the results.

    Parameters
    ----------
    results
        The results.
    raw_results
        The UDF results they were made from (dict of buffers), if any.
    """

    def __init__(self, results: Sequence[AnalysisResult], raw_results: Any = None):
        self.results = list(results)
        self.raw_results = raw_results
        self._by_key = {r.key: r for r in self.results}

    def keys(self) -> list[str]:
        """Keys of the results, in order."""
        return [r.key for r in self.results]

    def __getattr__(self, key: str) -> AnalysisResult:
        if key.startswith("_") or key in ("results", "raw_results"):
            raise AttributeError(key)
        try:
            return self._by_key[key]
        except KeyError:
            raise AttributeError(f"no result {key!r}; have {self.keys()}") from None

    def __getitem__(self, key: str | int) -> AnalysisResult:
        if isinstance(key, (int, np.integer)):
            return self.results[key]
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no result {key!r}; have {self.keys()}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[AnalysisResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"<AnalysisResultSet {self.keys()}>"


class Analysis:
    """Base class of analyses: a UDF plus a way to turn its results into named results.

    Subclasses implement :meth:`get_udf` and :meth:`get_udf_results`; they may
    override :meth:`get_roi` to restrict the frames processed.

    Parameters
    ----------
    dataset
        The dataset to analyse.
    parameters
        The analysis' parameters, available as :attr:`parameters`.
    """

    TYPE = "UDF"

    def __init__(self, dataset, parameters: dict[str, Any] | None = None):
        self.dataset = dataset
        self.parameters = dict(parameters or {})

    def get_udf(self) -> UDF:
        """The UDF to run."""
        raise NotImplementedError()

    def get_roi(self) -> np.ndarray | None:
        """A ROI of the analysis itself (``None``: all frames)."""
        return None

    def get_udf_results(
        self, udf_results: dict[str, BufferWrapper], roi: np.ndarray | None
    ) -> AnalysisResultSet:
        """Turn the UDF's results into an :class:`AnalysisResultSet`."""
        raise NotImplementedError()

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """Signal shape of the dataset."""
        return tuple(self.dataset.shape.sig)

    @property
    def nav_shape(self) -> tuple[int, ...]:
        """Navigation shape of the dataset."""
        return tuple(self.dataset.shape.nav)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parameters}>"
