"""Standard deviation of every detector pixel over the frames, as an analysis."""

from __future__ import annotations

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    lin_log_results,
)
from libertem.analysis.getroi import get_roi
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.stddev import StdDevUDF

__all__ = [
    "SDAnalysis",
    "SDTemplate",
    "get_roi",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
]


class SDTemplate(GeneratorHelper):
    """Code for :class:`SDAnalysis`."""

    short_name = "sd"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + ["from libertem.udf.stddev import StdDevUDF"]

    def get_analysis(self) -> str:
        return f"{self.analysis_name} = StdDevUDF()"

    def get_run(self) -> str:
        return (
            f"{self.result_name} = ctx.run_udf(dataset=ds, udf={self.analysis_name}, "
            "roi=roi, progress=False)"
        )

    def get_docs(self) -> str:
        return self.format_docs(
            "Standard deviation of frames",
            "The standard deviation of every detector pixel over all (selected) frames.",
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('standard deviation of frames (log)')\n"
            f"axes.imshow(np.log1p({self.result_name}['std'].data))"
        ]

    def get_save(self) -> str:
        return f"np.save('sd_std.npy', {self.result_name}['std'].data)"


class SDAnalysis(BaseAnalysis):
    """Standard deviation of every detector pixel over the (selected) frames.

    Runs :class:`~libertem.udf.stddev.StdDevUDF`. Results ``intensity`` (title
    ``'intensity [log]'``) and ``intensity_lin`` (``'intensity [lin]'``): the
    signal-shaped standard deviation (population, ``ddof=0``); the ``raw_data`` of
    ``intensity_lin`` is the UDF's ``std`` result buffer itself (array-like).

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        Optionally ``roi``, see :func:`~libertem.analysis.getroi.get_roi`.
    """

    TYPE = "UDF"

    def get_udf(self) -> StdDevUDF:
        return StdDevUDF()

    def get_roi(self):
        return get_roi(self.parameters, self.nav_shape)

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        std = udf_results["std"]
        results = lin_log_results(
            std.data, "standard deviation of the frames", True, log_first=True, raw_lin=std
        )
        return AnalysisResultSet(results, raw_results=udf_results)

    @classmethod
    def get_template_helper(cls):
        return SDTemplate
