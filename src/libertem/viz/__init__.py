"""Live plots of UDF results, and turning results into images.

The plot classes are :class:`libertem.viz.mpl.MPLLive2DPlot` (matplotlib, the default),
:class:`libertem.viz.bqp.BQLive2DPlot` (bqplot, for Jupyter) and
:class:`libertem.viz.gms.GMSLive2DPlot` (inside Gatan Microscopy Suite); all derive
from :class:`libertem.viz.base.Live2DPlot`.
"""

from libertem.common.viz import encode_image, make_colormap, rgb_from_2dvector, visualize_simple
from libertem.viz.base import (
    Dummy2DPlot,
    Live2DPlot,
    get_plottable_2D_channels,
    get_plottable_channels,
)

__all__ = [
    "Dummy2DPlot",
    "Live2DPlot",
    "encode_image",
    "get_plottable_2D_channels",
    "get_plottable_channels",
    "make_colormap",
    "rgb_from_2dvector",
    "libertem_cyclic",
    "visualize_simple",
]

_CYCLIC = []


def __getattr__(name: str):
    if name == "libertem_cyclic":  # built on first use: needs colorcet and scikit-image
        if not _CYCLIC:
            from libertem.common.viz import make_cyclic_colormap

            _CYCLIC.append(make_cyclic_colormap())
        return _CYCLIC[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
