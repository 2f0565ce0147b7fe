"""Sum of all frames, as an analysis."""

from __future__ import annotations

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet, visualize_simple
from libertem.udf.sum import SumUDF

__all__ = ["SumAnalysis"]


class SumAnalysis(Analysis):
    """Sum of all (selected) frames: result ``intensity`` (signal-shaped).

    ``visualized`` is log-scaled, as diffraction patterns usually are shown.
    """

    def __init__(self, dataset):
        super().__init__(dataset, {})

    def get_udf(self) -> SumUDF:
        return SumUDF()

    def get_udf_results(self, udf_results, roi) -> AnalysisResultSet:
        data = udf_results["intensity"].data
        result = AnalysisResult(
            raw_data=data,
            visualized=visualize_simple(data, logarithmic=True),
            key="intensity",
            title="sum of frames",
            desc="sum of all selected frames",
        )
        return AnalysisResultSet([result], raw_results=udf_results)
