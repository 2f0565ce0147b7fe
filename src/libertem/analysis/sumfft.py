"""Sum of frames, shown as the magnitude of its Fourier transform."""

from __future__ import annotations

import numpy as np

from libertem import masks
from libertem.analysis.base import AnalysisResult, AnalysisResultSet
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.sum import SumAnalysis
from libertem.common.viz import visualize_simple

__all__ = [
    "SumfftAnalysis",
    "SumfftTemplate",
    "real_space_keep",
    "AnalysisResult",
    "AnalysisResultSet",
    "GeneratorHelper",
    "SumAnalysis",
]


def real_space_keep(parameters: dict, sig_shape) -> np.ndarray | None:
    """The real-space mask of the FFT analyses: 0 on the disk ``distance <= real_rad``
    around ``(real_centery, real_centerx)``, 1 elsewhere; ``None`` without ``real_rad``.

    Raises
    ------
    ValueError
        If ``real_rad`` is given without ``real_centerx`` and ``real_centery``.
    """
    rad = parameters.get("real_rad")
    if rad is None:
        return None
    cx, cy = parameters.get("real_centerx"), parameters.get("real_centery")
    if cx is None or cy is None:
        raise ValueError("real_rad needs the disk centre real_centerx and real_centery")
    sy, sx = tuple(sig_shape)
    return ~masks.circular(cx, cy, sx, sy, rad)


def fft_magnitude(frame, keep: np.ndarray | None) -> np.ndarray:
    """``fftshift(|fft2(frame * keep)|)``, the zero frequency in the middle."""
    data = np.asarray(frame)
    if keep is not None:
        data = data * keep
    return np.fft.fftshift(np.abs(np.fft.fft2(data)))


class SumfftTemplate(GeneratorHelper):
    """Code for :class:`SumfftAnalysis`."""

    short_name = "sumfft"

    def get_dependency(self) -> list[str]:
        return super().get_dependency() + ["from libertem.analysis.sumfft import SumfftAnalysis"]

    def get_analysis(self) -> str:
        params = {k: v for k, v in self.params.items() if k != "roi"}
        return f"{self.analysis_name} = SumfftAnalysis(dataset=ds, parameters={params!r})"

    def get_docs(self) -> str:
        return self.format_docs(
            "FFT of the sum of frames",
            "The sum of all (selected) frames; its image shows the logarithm of the "
            "magnitude of its Fourier transform, optionally after removing a disk of radius "
            "``real_rad`` around ``(real_centerx, real_centery)``.",
        )

    def get_plot(self) -> list[str]:
        return [
            "fig, axes = plt.subplots()\n"
            "axes.set_title('FFT of the sum of frames')\n"
            f"axes.imshow({self.result_name}.intensity.visualized)"
        ]


class SumfftAnalysis(SumAnalysis):
    """The sum of all (selected) frames, visualized as its Fourier transform.

    Runs what :class:`~libertem.analysis.sum.SumAnalysis` runs. One result,
    ``intensity``: ``raw_data`` is the plain sum (signal-shaped), ``visualized``
    shows ``log(|fftshift(fft2(sum * keep))| + 1)``.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        Optionally ``roi`` (see :func:`~libertem.analysis.getroi.get_roi`) and
        ``real_rad``, ``real_centerx``, ``real_centery``: ``keep`` removes the pixels
        at most ``real_rad`` from that centre (e.g. the zero-order beam) before the
        transform; without ``real_rad``, ``keep`` is 1.
    """

    TYPE = "UDF"

    def get_parameters(self, parameters: dict) -> dict:
        real_space_keep(parameters, self.sig_shape)  # checks the disk parameters
        return dict(parameters)

    def get_udf_results(self, udf_results, roi, damage) -> AnalysisResultSet:
        data = udf_results["intensity"].data
        keep = real_space_keep(self.parameters, self.sig_shape)

        def visualized():
            return visualize_simple(np.log(fft_magnitude(data, keep) + 1))

        return AnalysisResultSet(
            [
                AnalysisResult(
                    raw_data=data,
                    visualized=visualized,
                    title="intensity",
                    desc="sum of all frames; the image shows the magnitude of its FFT",
                    key="intensity",
                )
            ],
            raw_results=udf_results,
        )

    @classmethod
    def get_template_helper(cls):
        return SumfftTemplate
