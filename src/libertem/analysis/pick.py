"""Pick one frame, as an analysis."""

from __future__ import annotations

import numpy as np

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet, visualize_simple
from libertem.udf.raw import PickUDF

__all__ = ["PickFrameAnalysis"]


class PickFrameAnalysis(Analysis):
    """The frame at scan position ``(y, x)`` (``(z, y, x)`` for a 3D scan, ``x`` for 1D).

    Result ``intensity``: the frame, signal-shaped, in the dataset's dtype.

    Parameters
    ----------
    dataset
        The dataset.
    x, y, z
        Scan coordinates (column, row, and the slowest axis of a 3D scan).
    """

    def __init__(self, dataset, x: int, y: int | None = None, z: int | None = None):
        super().__init__(dataset, {"x": x, "y": y, "z": z})
        nav = self.nav_shape
        given = {1: (x,), 2: (y, x), 3: (z, y, x)}.get(len(nav))
        if given is None:
            raise ValueError(f"pick analysis supports 1 to 3 scan dimensions, not {nav}")
        if any(c is None for c in given):
            names = {1: "x", 2: "x and y", 3: "x, y and z"}[len(nav)]
            raise ValueError(f"a scan of shape {nav} needs {names}")
        coords = tuple(int(c) for c in given)
        if not all(0 <= c < n for c, n in zip(coords, nav)):
            raise ValueError(f"scan position {coords} lies outside the scan of shape {nav}")
        self.coords = coords

    def get_udf(self) -> PickUDF:
        return PickUDF()

    def get_roi(self) -> np.ndarray:
        roi = np.zeros(self.nav_shape, dtype=bool)
        roi[self.coords] = True
        return roi

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        frames = udf_results["intensity"].raw_data
        if frames.shape[0] != 1:
            raise ValueError(f"expected one picked frame, got {frames.shape[0]}")
        frame = frames[0]
        result = AnalysisResult(
            raw_data=frame,
            visualized=visualize_simple(frame, logarithmic=True),
            key="intensity",
            title=f"frame at {self.coords}",
            desc="the frame at the picked scan position",
        )
        return AnalysisResultSet([result], raw_results=udf_results)
