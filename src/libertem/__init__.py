"""Run user-defined functions (UDFs) over large pixelated-detector datasets.

The entry point is :class:`libertem.api.Context`.
"""

__version__ = "0.1.0"
