"""Analyses: ready-made UDF runs (masks, disk, ring, point, sum, COM, pick, radial
Fourier, FFT of sum or frame, standard deviation, sum per frame, FEM, crystallinity,
clustering) with named, visualizable results; created with
``Context.create_*_analysis`` (or directly) and run with ``Context.run``.

The classes load on first access, so that importing :mod:`libertem.api` (whose
``Context`` creates them) stays quick.
"""

from libertem.common.lazy import lazy_names

_WHERE = {
    "Analysis": "libertem.analysis.base",
    "AnalysisResult": "libertem.analysis.base",
    "AnalysisResultSet": "libertem.analysis.base",
    "BaseAnalysis": "libertem.analysis.base",
    "COMAnalysis": "libertem.analysis.com",
    "DiskMaskAnalysis": "libertem.analysis.disk",
    "MasksAnalysis": "libertem.analysis.masks",
    "PointMaskAnalysis": "libertem.analysis.point",
    "RingMaskAnalysis": "libertem.analysis.ring",
    "PickFrameAnalysis": "libertem.analysis.raw",
    "RadialFourierAnalysis": "libertem.analysis.radialfourier",
    "SumAnalysis": "libertem.analysis.sum",
    "SumfftAnalysis": "libertem.analysis.sumfft",
    "PickFFTFrameAnalysis": "libertem.analysis.rawfft",
    "SDAnalysis": "libertem.analysis.sd",
    "SumSigAnalysis": "libertem.analysis.sumsig",
    "FEMAnalysis": "libertem.analysis.fem",
    "ApplyFFTMask": "libertem.analysis.apply_fft_mask",
    "ClusterAnalysis": "libertem.analysis.clust",
}

__all__ = list(_WHERE)


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
