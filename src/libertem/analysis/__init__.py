"""Analyses: ready-made UDF runs (masks, disk, ring, point, sum, COM, pick, radial
Fourier) with named, visualizable results; created with ``Context.create_*_analysis``
and run with ``Context.run``."""

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet
from libertem.analysis.com import COMAnalysis
from libertem.analysis.masks import (
    DiskMaskAnalysis,
    MasksAnalysis,
    PointMaskAnalysis,
    RingMaskAnalysis,
)
from libertem.analysis.pick import PickFrameAnalysis
from libertem.analysis.radialfourier import RadialFourierAnalysis
from libertem.analysis.sum import SumAnalysis

__all__ = [
    "Analysis",
    "AnalysisResult",
    "AnalysisResultSet",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PointMaskAnalysis",
    "RingMaskAnalysis",
    "PickFrameAnalysis",
    "RadialFourierAnalysis",
    "SumAnalysis",
]
