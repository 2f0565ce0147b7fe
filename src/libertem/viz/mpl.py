"""Live plots with matplotlib: scripts (non-blocking windows), Jupyter (inline or widget)."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem.viz.base import Live2DPlot

__all__ = ["MPLLive2DPlot", "Live2DPlot", "ui_events"]

_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def _backend_mode() -> str:
    """``'inline'``, ``'widget'``, ``'window'`` or ``'none'`` (non-interactive)."""
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if "inline" in backend:
        return "inline"
    if "ipympl" in backend or "widget" in backend or "nbagg" in backend:
        return "widget"
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        non_interactive = set(backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE))
    except ImportError:  # matplotlib < 3.9
        non_interactive = _NON_INTERACTIVE
    if backend in non_interactive:
        return "none"
    return "window"


class MPLLive2DPlot(Live2DPlot):
    """A live plot drawn with matplotlib: an image for 2D data, a line for 1D data.

    In a script with an interactive backend the figure opens without blocking and is
    redrawn with ``draw_idle`` / ``flush_events``. In Jupyter, the inline backend gets
    a display that is replaced on each update; the widget backend (ipympl) is redrawn
    in place. With a non-interactive backend (Agg) only the artists' data are updated;
    ``fig.savefig`` renders them.

    Parameters
    ----------
    dataset, udf, roi, channel, title, min_delta, udfresult
        See :class:`~libertem.viz.base.Live2DPlot`.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` for images (e.g. ``cmap``), to
        :meth:`matplotlib.axes.Axes.plot` for lines.

    Attributes
    ----------
    fig, axes
        The matplotlib figure and axes, once :meth:`display` ran.
    im_obj
        The ``AxesImage`` (2D) or ``Line2D`` (1D) that shows :attr:`data`.
    """

    def __init__(
        self,
        dataset,
        udf,
        roi: np.ndarray | None = None,
        channel=None,
        title: str | None = None,
        min_delta: float = 0.5,
        udfresult=None,
        **kwargs: Any,
    ):
        super().__init__(dataset, udf, roi, channel, title, min_delta, udfresult)
        self.kwargs = kwargs
        self.fig = None
        self.axes = None
        self.im_obj = None
        self._mode = "none"
        self._handle = None

    def display(self):
        """Create the figure and show it the way the current backend allows.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        self._mode = _backend_mode()
        if self._mode in ("inline", "widget"):
            # shown explicitly below, not again by the backend at the end of the cell
            with plt.ioff():
                self.fig, self.axes = plt.subplots()
        else:
            self.fig, self.axes = plt.subplots()
        self.axes.set_title(self.title)
        if self.data.ndim == 2 or (self.data.ndim == 3 and self.data.shape[-1] in (3, 4)):
            self.im_obj = self.axes.imshow(self.data, **self.kwargs)
        elif self.data.ndim == 1:
            (self.im_obj,) = self.axes.plot(np.arange(self.data.size), self.data, **self.kwargs)
        else:
            raise ValueError(
                f"{self.channel}: can only plot 1D or 2D data, got shape {self.data.shape}; "
                "pass channel=(name, function) to reduce it"
            )
        if self._mode == "inline":
            from IPython.display import display

            self._handle = display(self.fig, display_id=True)
            plt.close(self.fig)
        elif self._mode == "widget":
            from IPython.display import display

            display(self.fig.canvas)
        elif self._mode == "window":
            plt.show(block=False)
        self.displayed = True
        return self.fig

    def update(self, damage, force: bool = False) -> None:
        """Put :attr:`data` into the image (or line) and redraw without blocking.

        Parameters
        ----------
        damage
            Boolean mask of the valid pixels of :attr:`data` (``True``: all); the
            colour range is the robust range (``_get_stat_limits``) of their finite
            values.
        force
            Redrawn in any case; the argument is there for the interface.

        Warns
        -----
        UserWarning
            If :meth:`display` was not called; nothing is drawn then.
        """
        if self.fig is None:
            self._warn_not_displayed()
            return
        if self.data.ndim >= 2:
            self.im_obj.set_data(self.data)
            self.im_obj.set_clim(*self.value_range(damage))
        else:
            self.im_obj.set_data(np.arange(self.data.size), self.data)
            self.axes.relim()
            self.axes.autoscale_view()
        if self._mode == "inline":
            if self._handle is not None:
                self._handle.update(self.fig)
            return
        if self._mode == "none":
            return  # nothing on screen: the artists hold the data, savefig renders them
        self.fig.canvas.draw_idle()
        if self._mode == "window":
            self.fig.canvas.flush_events()


def ui_events() -> None:
    """Let the GUI of interactive matplotlib backends process pending events.

    Call it now and then in long loops of a script, so that open plot windows stay
    responsive; with non-interactive backends and in Jupyter it does nothing.
    """
    if _backend_mode() != "window":
        return
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        plt.figure(number).canvas.flush_events()
