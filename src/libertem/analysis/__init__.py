"""Analyses: ready-made UDF runs (masks, disk, ring, point, sum, COM, pick, radial
Fourier) with named, visualizable results; created with ``Context.create_*_analysis``
and run with ``Context.run``."""

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet, BaseAnalysis
from libertem.analysis.com import COMAnalysis
from libertem.analysis.disk import DiskMaskAnalysis
from libertem.analysis.masks import MasksAnalysis
from libertem.analysis.point import PointMaskAnalysis
from libertem.analysis.radialfourier import RadialFourierAnalysis
from libertem.analysis.raw import PickFrameAnalysis
from libertem.analysis.ring import RingMaskAnalysis
from libertem.analysis.sum import SumAnalysis

__all__ = [
    "Analysis",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PointMaskAnalysis",
    "RingMaskAnalysis",
    "PickFrameAnalysis",
    "RadialFourierAnalysis",
    "SumAnalysis",
]
