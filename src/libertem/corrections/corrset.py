"""The path :mod:`libertem.corrections.corrset`: :class:`CorrectionSet`, which lives
in :mod:`libertem.io.corrections.corrset`."""

from libertem.io.corrections.corrset import CorrectionSet

__all__ = ["CorrectionSet"]
