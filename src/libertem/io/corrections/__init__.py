"""Detector corrections applied to the data on the fly (dark frame, gain map, excluded pixels).

See :class:`~libertem.io.corrections.corrset.CorrectionSet` and
:mod:`libertem.io.corrections.detector`.
"""

from libertem.io.corrections.corrset import CorrectionSet

__all__ = ["CorrectionSet"]
