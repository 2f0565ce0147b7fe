"""Live plots with bqplot widgets, for Jupyter."""

from __future__ import annotations

import numpy as np

from libertem.viz.base import Live2DPlot

__all__ = ["BQLive2DPlot", "Live2DPlot"]


class BQLive2DPlot(Live2DPlot):
    """A live plot drawn with bqplot: a ``HeatMap`` for 2D data, ``Lines`` for 1D data.

    Needs ``bqplot`` (and ``ipywidgets``); updates change the widget's data in place,
    so they show in Jupyter without redrawing the cell.

    Parameters
    ----------
    dataset, udf, roi, channel, title, min_delta, udfresult
        See :class:`~libertem.viz.base.Live2DPlot`.

    Attributes
    ----------
    figure
        The ``bqplot.Figure``, once :meth:`display` ran.
    mark
        The ``HeatMap`` or ``Lines`` mark that shows :attr:`data`.
    """

    def __init__(
        self,
        dataset,
        udf,
        roi: np.ndarray | None = None,
        channel=None,
        title: str | None = None,
        min_delta: float = 1 / 60,
        udfresult=None,
    ):
        super().__init__(dataset, udf, roi, channel, title, min_delta, udfresult)
        self.scheme = "viridis"
        self.figure = None
        self.mark = None
        self._color_scale = None

    def _build(self):
        import bqplot as bq

        if self.data.ndim == 2:
            h, w = self.data.shape
            sx = bq.LinearScale()
            sy = bq.LinearScale(reverse=True)
            lo, hi = self.value_range()
            self._color_scale = bq.ColorScale(scheme=self.scheme, min=lo, max=hi)
            self.mark = bq.HeatMap(
                x=np.arange(w),
                y=np.arange(h),
                color=self.data,
                scales={"x": sx, "y": sy, "color": self._color_scale},
            )
            axes = [
                bq.Axis(scale=sx),
                bq.Axis(scale=sy, side="left"),
                bq.ColorAxis(scale=self._color_scale, side="right"),
            ]
        elif self.data.ndim == 1:
            sx, sy = bq.LinearScale(), bq.LinearScale()
            self.mark = bq.Lines(
                x=np.arange(self.data.size), y=self.data, scales={"x": sx, "y": sy}
            )
            axes = [bq.Axis(scale=sx), bq.Axis(scale=sy, side="left")]
        else:
            raise ValueError(
                f"{self.channel}: can only plot 1D or 2D data, got shape {self.data.shape}"
            )
        self.figure = bq.Figure(marks=[self.mark], axes=axes, title=self.title)
        return self.figure

    def display(self):
        """Create the bqplot figure and display it (in Jupyter).

        Returns
        -------
        bqplot.Figure
        """
        from IPython.display import display

        figure = self._build()
        display(figure)
        self.displayed = True
        return figure

    def update(self, damage, force: bool = False) -> None:
        """Set the mark's data (and colour range over the valid pixels) to :attr:`data`."""
        if self.mark is None:
            return
        if self.data.ndim == 2:
            lo, hi = self.value_range(damage)
            with self.mark.hold_sync():
                self.mark.color = self.data
                self._color_scale.min = lo
                self._color_scale.max = hi
        else:
            self.mark.y = self.data
