"""Crystallinity map (Fourier intensity on a ring of frequencies), as an analysis."""

from __future__ import annotations

from libertem.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    single_result_set,
)
from libertem.analysis.helper import GeneratorHelper
from libertem.udf.crystallinity import CrystallinityUDF

__all__ = [
    "ApplyFFTMask",
    "FFTMaskTemplate",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "GeneratorHelper",
]

_REQUIRED = ("rad_in", "rad_out", "real_centerx", "real_centery", "real_rad")


class FFTMaskTemplate(GeneratorHelper):
    """Code for :class:`ApplyFFTMask`."""

    short_name = "fft"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + [
            "from libertem.udf.crystallinity import CrystallinityUDF"
        ]

    def get_analysis(self) -> str:
        p = self.params
        return (
            f"{self.analysis_name} = CrystallinityUDF(rad_in={p['rad_in']!r}, "
            f"rad_out={p['rad_out']!r}, real_center=({p['real_centery']!r}, "
            f"{p['real_centerx']!r}), real_rad={p['real_rad']!r})"
        )

    def get_run(self) -> str:
        return (
            f"{self.result_name} = ctx.run_udf(dataset=ds, udf={self.analysis_name}, "
            "roi=roi, progress=False)"
        )

    def get_docs(self) -> str:
        return self.format_docs(
            "Crystallinity map",
            "The sum of the Fourier magnitudes of every frame on the ring of frequencies "
            "``rad_in < |k| <= rad_out``, after zeroing the disk of radius ``real_rad`` "
            "around ``(real_centerx, real_centery)``.",
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('crystallinity map')\n"
            f"axes.imshow({self.result_name}['intensity'].data)"
        ]

    def get_save(self) -> str:
        return f"np.save('fft_intensity.npy', {self.result_name}['intensity'].data)"


class ApplyFFTMask(BaseAnalysis):
    """Crystallinity map: the Fourier intensity of each frame on a ring of frequencies.

    Runs :class:`~libertem.udf.crystallinity.CrystallinityUDF` with
    ``real_center=(real_centery, real_centerx)``. One result, ``intensity`` (title
    ``'intensity'``, navigation-shaped, float32).

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``rad_in``, ``rad_out`` (the frequency ring), ``real_centerx``,
        ``real_centery``, ``real_rad`` (the disk zeroed in each frame); all required.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        missing = [k for k in _REQUIRED if k not in parameters]
        if missing:
            raise ValueError(f"ApplyFFTMask needs the parameters {', '.join(missing)}")
        return dict(parameters)

    def get_udf(self) -> CrystallinityUDF:
        p = self.parameters
        return CrystallinityUDF(
            rad_in=p["rad_in"],
            rad_out=p["rad_out"],
            real_center=(p["real_centery"], p["real_centerx"]),
            real_rad=p["real_rad"],
        )

    def get_roi(self):
        return None

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        return single_result_set(
            udf_results, "Fourier intensity on the ring of frequencies", damage
        )

    @classmethod
    def get_template_helper(cls):
        return FFTMaskTemplate
