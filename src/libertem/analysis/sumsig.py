"""Sum over the detector of every frame, as an analysis."""

from __future__ import annotations

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    single_result_set,
)
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.sumsigudf import SumSigUDF

__all__ = [
    "SumSigAnalysis",
    "SumSigTemplate",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
]


class SumSigTemplate(GeneratorHelper):
    """Code for :class:`SumSigAnalysis`."""

    short_name = "sumsig"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + ["from libertem.udf.sumsigudf import SumSigUDF"]

    def get_analysis(self) -> str:
        return f"{self.analysis_name} = SumSigUDF()"

    def get_roi(self) -> str:
        return "roi = None"

    def get_run(self) -> str:
        return (
            f"{self.result_name} = ctx.run_udf(dataset=ds, udf={self.analysis_name}, "
            "progress=False)"
        )

    def get_docs(self) -> str:
        return self.format_docs(
            "Sum of each frame", "The sum over all detector pixels of every frame."
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('sum of each frame')\n"
            f"axes.imshow({self.result_name}['intensity'].data)"
        ]

    def get_save(self) -> str:
        return f"np.save('sumsig_intensity.npy', {self.result_name}['intensity'].data)"


class SumSigAnalysis(BaseAnalysis):
    """The sum over the detector of every frame (a bright-field-like image of the scan).

    Runs :class:`~libertem.udf.sumsigudf.SumSigUDF` over all frames (no ROI). One
    result, ``intensity`` (title ``'intensity'``), whose ``raw_data`` is the UDF's
    navigation-shaped ``intensity`` result buffer (array-like).

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        None needed.
    """

    TYPE = "UDF"

    def get_udf(self) -> SumSigUDF:
        return SumSigUDF()

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        return single_result_set(udf_results, "sum over the detector of every frame", damage)

    @classmethod
    def get_template_helper(cls):
        return SumSigTemplate
