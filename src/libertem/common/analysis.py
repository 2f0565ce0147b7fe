"""Results of analyses: one named array with an image of it, and sets of them."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["AnalysisResult", "AnalysisResultSet"]


class AnalysisResult:
    """One result of an analysis: the numbers, an image of them and a description.

    Parameters
    ----------
    raw_data
        The result values (navigation- or signal-shaped array).
    visualized
        An image of them, e.g. from :func:`libertem.viz.visualize_simple`; or a
        callable that makes it on first access (images cost time, and many results
        are never looked at).
    title
        Short human-readable title.
    desc
        Longer description.
    key
        Name of the result in its :class:`AnalysisResultSet`.
    include_in_download
        Whether a download of all results should contain this one.
    """

    def __init__(
        self,
        raw_data: np.ndarray,
        visualized: np.ndarray,
        title: str,
        desc: str,
        key: str,
        include_in_download: bool = True,
    ):
        self.raw_data = raw_data
        self._visualized = visualized
        self.title = title
        self.desc = desc
        self.key = key
        self.include_in_download = include_in_download

    @property
    def visualized(self) -> np.ndarray:
        """The image of the result (made now if it was given as a callable)."""
        if callable(self._visualized):
            self._visualized = self._visualized()
        return self._visualized

    def get_image(self, save_kwargs: dict | None = None) -> io.BytesIO:
        """The image, encoded (PNG by default); see :func:`libertem.common.viz.encode_image`."""
        from libertem.common.viz import encode_image

        return encode_image(self.visualized, save_kwargs=save_kwargs)

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self.raw_data)
        return arr.astype(dtype) if dtype is not None else arr

    def __str__(self) -> str:
        return f"{self.title}: {self.desc}"

    def __repr__(self) -> str:
        shape = getattr(self.raw_data, "shape", None)
        return f"<AnalysisResult {self.key!r}: {self.title} shape={shape}>"


class AnalysisResultSet:
    """Results of an analysis, by key: ``results.intensity`` or ``results['intensity']``.

    Integer indices and iteration follow the order of the results.

    Parameters
    ----------
    results
        The results, or a callable returning them (called on first access).
    raw_results
        The UDF results they were made from (dict of buffers), if any.
    """

    def __init__(
        self,
        results: list[AnalysisResult] | Callable[[], list[AnalysisResult]],
        raw_results=None,
    ):
        self._results = results
        self.raw_results = raw_results

    @property
    def results(self) -> list[AnalysisResult]:
        """The results, in order."""
        if callable(self._results):
            self._results = list(self._results())
        return self._results

    def _by_key(self) -> dict[str, AnalysisResult]:
        return {r.key: r for r in self.results}

    def keys(self) -> list[str]:
        """Keys of the results, in order."""
        return [r.key for r in self.results]

    def __getattr__(self, key: str) -> AnalysisResult:
        if key.startswith("_") or key in ("results", "raw_results"):
            raise AttributeError(key)
        return self._lookup(key)

    def _lookup(self, key: str) -> AnalysisResult:
        try:
            return self._by_key()[key]
        except KeyError:
            # LiberTEM raises AttributeError for item access as well
            raise AttributeError(
                f"result with key {key!r} not found, have: {', '.join(self.keys())}"
            ) from None

    def __getitem__(self, key: str | int) -> AnalysisResult:
        """The result at an integer position, or by key.

        Raises
        ------
        AttributeError
            For a key that is not there (as in LiberTEM, also for item access).
        """
        if isinstance(key, (int, np.integer)):
            return self.results[key]
        return self._lookup(key)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key()

    def __iter__(self) -> Iterator[AnalysisResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.keys()}>"
