"""Sum of all frames, as an analysis."""

from __future__ import annotations

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    lin_log_results,
)
from libertem.analysis.getroi import get_roi
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.sum import SumUDF

__all__ = [
    "SumAnalysis",
    "SumResultSet",
    "SumTemplate",
    "get_roi",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
    "SumUDF",
]


class SumResultSet(AnalysisResultSet):
    """Results of :class:`SumAnalysis`: ``intensity`` (log-scaled image) and
    ``intensity_lin`` (linear image) of the same sum; more keys for complex data."""


class SumTemplate(GeneratorHelper):
    """Code for :class:`SumAnalysis`."""

    short_name = "sum"
    api = "create_sum_analysis"

    def get_analysis(self) -> str:
        return f"{self.analysis_name} = ctx.{self.api}(dataset=ds)"

    def get_docs(self) -> str:
        return self.format_docs("Sum of frames", "The sum of all (selected) frames.")

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('sum of frames (log)')\n"
            f"axes.imshow(np.log1p(np.abs({self.result_name}.intensity.raw_data)))"
        ]


class SumAnalysis(BaseAnalysis):
    """Sum of all (selected) frames (signal-shaped, float32 for real data).

    Results ``intensity`` (title ``'intensity [log]'``, log-scaled image) and
    ``intensity_lin`` (``'intensity [lin]'``), both with the sum as ``raw_data``.
    Complex data give ``intensity_lin``, ``intensity``, ``intensity_real``,
    ``intensity_imag``, ``intensity_angle`` and ``intensity_complex``.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        Optionally ``roi``, see :func:`~libertem.analysis.getroi.get_roi`.
    """

    TYPE = "UDF"

    def get_udf(self) -> SumUDF:
        return SumUDF()

    def get_roi(self):
        return get_roi(self.parameters, self.nav_shape)

    def get_udf_results(self, udf_results, roi, damage) -> SumResultSet:
        data = udf_results["intensity"].data
        if data.dtype.kind == "c":
            return SumResultSet(
                self.get_complex_results(
                    data, "intensity", "intensity", "sum of all frames", True, default_lin=False
                ),
                raw_results=udf_results,
            )
        return SumResultSet(
            lin_log_results(data, "sum of all frames", True, log_first=True),
            raw_results=udf_results,
        )

    @classmethod
    def get_template_helper(cls):
        return SumTemplate
