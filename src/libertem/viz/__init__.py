"""Live plots of UDF results while they are computed.

The plot classes are :class:`libertem.viz.mpl.MPLLive2DPlot` (matplotlib, the default)
and :class:`libertem.viz.bqp.BQLive2DPlot` (bqplot, when installed); both derive from
:class:`libertem.viz.base.Live2DPlot`.
"""

from libertem.viz.base import Live2DPlot, get_plottable_channels

__all__ = ["Live2DPlot", "get_plottable_channels"]
