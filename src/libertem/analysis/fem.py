"""Fluctuation electron microscopy (FEM), as an analysis."""

from __future__ import annotations

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    single_result_set,
)
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.FEM import FEMUDF

__all__ = [
    "FEMAnalysis",
    "FEMTemplate",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
]


class FEMTemplate(GeneratorHelper):
    """Code for :class:`FEMAnalysis`."""

    short_name = "fem"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + ["from libertem.udf.FEM import FEMUDF"]

    def convert_params(self) -> str:
        p = self.params
        return f"center=({p['cy']!r}, {p['cx']!r}), rad_in={p['ri']!r}, rad_out={p['ro']!r}"

    def get_analysis(self) -> str:
        return f"{self.analysis_name} = FEMUDF({self.convert_params()})"

    def get_run(self) -> str:
        return (
            f"{self.result_name} = ctx.run_udf(dataset=ds, udf={self.analysis_name}, "
            "roi=roi, progress=False)"
        )

    def get_docs(self) -> str:
        return self.format_docs(
            "FEM",
            "Fluctuation electron microscopy: the standard deviation of the pixel values "
            "on the ring ``ri < r <= ro`` around ``(cx, cy)`` of every frame.",
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('FEM: standard deviation on the ring')\n"
            f"axes.imshow({self.result_name}['intensity'].data)"
        ]

    def get_save(self) -> str:
        return f"np.save('fem_intensity.npy', {self.result_name}['intensity'].data)"


class FEMAnalysis(BaseAnalysis):
    """Fluctuation electron microscopy: the intensity spread on a ring of every frame.

    Runs :class:`~libertem.udf.FEM.FEMUDF` with ``center=(cy, cx)``,
    ``rad_in=ri``, ``rad_out=ro``. One result, ``intensity`` (title
    ``'intensity'``): per frame the population standard deviation of the pixels
    with ``ri < distance <= ro`` from the centre (navigation-shaped, float32).

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``cx``, ``cy``, ``ri``, ``ro`` (all required).
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        missing = [k for k in ("cx", "cy", "ri", "ro") if k not in parameters]
        if missing:
            raise ValueError(f"FEMAnalysis needs the parameters {', '.join(missing)}")
        return dict(parameters)

    def get_udf(self) -> FEMUDF:
        p = self.parameters
        return FEMUDF(center=(p["cy"], p["cx"]), rad_in=p["ri"], rad_out=p["ro"])

    def get_roi(self):
        return None

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        return single_result_set(
            udf_results, "standard deviation of the pixels on the ring", damage
        )

    @classmethod
    def get_template_helper(cls):
        return FEMTemplate
