"""Pick one frame and show the magnitude of its Fourier transform."""

from __future__ import annotations

from libertem.analysis.base import lin_log_results
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.raw import PickFrameAnalysis, PickResultSet
from libertem.analysis.sumfft import fft_magnitude, real_space_keep

__all__ = ["PickFFTFrameAnalysis", "PickfftTemplate", "GeneratorHelper", "PickFrameAnalysis"]


class PickfftTemplate(GeneratorHelper):
    """Code for :class:`PickFFTFrameAnalysis`."""

    short_name = "pickfft"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + [
            "from libertem.analysis.rawfft import PickFFTFrameAnalysis"
        ]

    def get_analysis(self) -> str:
        params = {k: v for k, v in self.params.items() if k != "roi"}
        return f"{self.analysis_name} = PickFFTFrameAnalysis(dataset=ds, parameters={params!r})"

    def get_docs(self) -> str:
        return self.format_docs(
            "FFT of a picked frame",
            "The magnitude of the Fourier transform of the frame at one scan position, "
            "optionally after removing a disk of radius ``real_rad`` around "
            "``(real_centerx, real_centery)``.",
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('FFT of the picked frame')\n"
            f"axes.imshow({self.result_name}.intensity.visualized)"
        ]


class PickFFTFrameAnalysis(PickFrameAnalysis):
    """The magnitude of the Fourier transform of the frame at one scan position.

    Coordinates as for :class:`~libertem.analysis.raw.PickFrameAnalysis` (checked
    when the analysis runs).

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``x`` (``y``, ``z``) as the scan has axes; optionally ``real_rad``,
        ``real_centerx``, ``real_centery``: the pixels at most ``real_rad`` from that
        centre are set to zero before the transform.

    Notes
    -----
    For a real frame, ``intensity`` (title ``'intensity [log]'``) and
    ``intensity_lin`` (``'intensity [lin]'``) both hold
    ``fftshift(|fft2(frame * keep)|)``. A complex frame is not transformed: the
    results are those of :class:`~libertem.analysis.raw.PickFrameAnalysis`.
    """

    def get_udf_results(self, udf_results, roi, damage) -> PickResultSet:
        frames = udf_results["intensity"].data
        if frames.shape[0] != 1:
            raise ValueError(f"expected one picked frame, got {frames.shape[0]}")
        frame = frames[0]
        if frame.dtype.kind == "c":
            return self.get_generic_results(frame, damage)
        spectrum = fft_magnitude(frame, real_space_keep(self.parameters, self.sig_shape))
        desc = "magnitude of the FFT of the frame at the picked scan position"
        return PickResultSet(lin_log_results(spectrum, desc, True, log_first=True))

    @classmethod
    def get_template_helper(cls):
        return PickfftTemplate
