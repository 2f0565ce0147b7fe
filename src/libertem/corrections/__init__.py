"""Corrections: detector corrections (:class:`CorrectionSet`, :mod:`.detector`) and
coordinate transformations (:mod:`.coordinates`).

The detector corrections live in :mod:`libertem.io.corrections`; this package
gives them their documented short path.
"""

from libertem.io.corrections.corrset import CorrectionSet

__all__ = ["CorrectionSet"]
