"""Live plots of UDF results: channel handling, rate limiting, integration with runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.udf.base import UDF
from libertem.udf.meta import UDFMeta

__all__ = [
    "Live2DPlot",
    "get_plottable_channels",
    "prepare_plots",
    "wrap_iter_with_plots",
    "wrap_aiter_with_plots",
]

ChannelSpec = str | tuple[str, Callable[[np.ndarray], Any]]


def _declared_buffers(dataset, udf: UDF, roi) -> dict[str, BufferWrapper]:
    """The result buffers a UDF declares for ``dataset``, found on a clean copy."""
    copy = udf.copy()
    shape = dataset.shape
    n = shape.nav.size if roi is None else int(np.count_nonzero(roi))
    copy.meta = UDFMeta(
        dataset_shape=shape,
        partition_shape=type(shape)((n, *tuple(shape.sig)), sig_dims=len(tuple(shape.sig))),
        dataset_dtype=dataset.dtype,
        input_dtype=np.result_type(copy.get_preferred_input_dtype(), dataset.dtype),
        roi=roi,
    )
    return copy.get_result_buffers()


def _result_shape(buf: BufferWrapper, dataset) -> tuple[int, ...]:
    shape = dataset.shape
    if buf.kind == "nav":
        return (*tuple(shape.nav), *buf.extra_shape)
    if buf.kind == "sig":
        return (*tuple(shape.sig), *buf.extra_shape)
    return buf.extra_shape or (1,)


def _squeezed_ndim(shape: tuple[int, ...]) -> int:
    return len([s for s in shape if s != 1])


def get_plottable_channels(dataset, udf: UDF, roi=None) -> list[str]:
    """Names of the UDF's results that can be shown as an image or a line.

    These are the buffers that are not ``use='private'`` and whose result, without
    axes of length 1, has one or two dimensions.
    """
    buffers = _declared_buffers(dataset, udf, roi)
    return [
        name
        for name, buf in buffers.items()
        if buf.use != "private" and _squeezed_ndim(_result_shape(buf, dataset)) in (1, 2)
    ]


class Live2DPlot:
    """Base class of live plots: one result channel of one UDF, updated during a run.

    Parameters
    ----------
    dataset
        The dataset the UDF runs on.
    udf
        The UDF whose results are shown.
    roi
        The ROI of the run, used to know which frames carry results.
    channel
        The buffer name, or a tuple ``(name, function)`` where ``function`` maps the
        buffer's data (shaped like the dataset's nav or sig axes plus extra axes) to
        the array to show (2D for an image, 1D for a line). The function may also
        return ``(array, damage)`` with a boolean mask of the valid pixels.
        By default the first plottable channel.
    title
        Plot title; default: the channel name.
    min_delta
        Minimum seconds between two redraws; :meth:`update` with ``force=True``
        always redraws.
    udfresult
        Results of a previous run (dict of buffers) to show right away.

    Attributes
    ----------
    data : numpy.ndarray
        The array currently shown.
    damage : numpy.ndarray
        Boolean mask (shape of :attr:`data`) of the pixels that hold results.
    """

    def __init__(
        self,
        dataset,
        udf: UDF,
        roi: np.ndarray | None = None,
        channel: ChannelSpec | None = None,
        title: str | None = None,
        min_delta: float = 0.5,
        udfresult: dict[str, BufferWrapper] | None = None,
    ):
        self.dataset = dataset
        self.udf = udf
        self.roi = None if roi is None else np.asarray(roi, dtype=bool)
        if channel is None:
            channels = get_plottable_channels(dataset, udf, roi)
            if not channels:
                raise ValueError(f"{type(udf).__name__} has no result that can be plotted")
            channel = channels[0]
        if isinstance(channel, str):
            name, func = channel, None
        else:
            name, func = channel
        self.channel: str = name
        self._func = func
        self.title = title if title is not None else name
        self.min_delta = float(min_delta)
        self.last_update = -np.inf
        self.n_updates = 0
        self.displayed = False
        self._nav_shape = tuple(dataset.shape.nav)
        if udfresult is not None:
            self.data, self.damage = self.extract(udfresult, None)
        else:
            buf = _declared_buffers(dataset, udf, roi).get(name)
            if buf is None:
                raise ValueError(f"{type(udf).__name__} has no result named {name!r}")
            shape = _result_shape(buf, dataset)
            if func is None:
                dtype = np.float64 if buf.dtype.kind == "c" else buf.dtype
                self.data = _squeeze(np.zeros(shape, dtype=dtype))
            else:
                sample = func(np.zeros(shape, dtype=buf.dtype))
                if isinstance(sample, tuple):
                    sample = sample[0]
                self.data = np.zeros(np.shape(sample))
            self.damage = np.zeros(self.data.shape, dtype=bool)
        self.udf_index = 0

    # data ------------------------------------------------------------------
    def extract(
        self, udf_results: dict[str, BufferWrapper], damage: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The array to show and its valid pixels, from one UDF's result dict.

        Parameters
        ----------
        udf_results
            Buffer name to :class:`BufferWrapper` (or array).
        damage
            Navigation-shaped boolean array of processed frames, or ``None`` (all).
        """
        buf = udf_results[self.channel]
        kind = getattr(buf, "kind", None)
        data = np.asarray(buf.data if isinstance(buf, BufferWrapper) else buf)
        if self._func is not None:
            out = self._func(data)
            if isinstance(out, tuple):
                arr, dmg = out
                arr = np.array(arr)
                return arr, np.broadcast_to(np.asarray(dmg, dtype=bool), arr.shape).copy()
            arr = np.array(out)
        else:
            arr = _squeeze(np.array(data))
        if arr.dtype.kind == "c":
            arr = np.abs(arr)
        valid = np.ones(arr.shape, dtype=bool)
        if kind == "nav" and arr.shape == _squeeze_shape(self._nav_shape):
            nav_valid = np.ones(self._nav_shape, dtype=bool)
            if damage is not None:
                nav_valid &= np.asarray(damage, dtype=bool).reshape(self._nav_shape)
            if self.roi is not None:
                nav_valid &= self.roi.reshape(self._nav_shape)
            valid = nav_valid.reshape(arr.shape)
        return arr, valid

    def _pick(self, udf_results) -> dict[str, BufferWrapper]:
        buffers = getattr(udf_results, "buffers", udf_results)
        if isinstance(buffers, (tuple, list)):
            return buffers[self.udf_index]
        return buffers

    def new_data(self, udf_results, damage=None, force: bool = False) -> None:
        """Take new (partial) results and redraw if due.

        Parameters
        ----------
        udf_results
            The UDF's result dict, or a :class:`~libertem.udf.runner.UDFResults` / tuple
            of dicts (this plot's UDF is picked by :attr:`udf_index`).
        damage
            Navigation-shaped boolean mask (or bool :class:`BufferWrapper`) of the
            processed frames; ``True``/``None``: all frames.
        force
            Redraw regardless of :attr:`min_delta`.
        """
        if damage is None:
            damage = getattr(udf_results, "damage", None)
        if isinstance(damage, BufferWrapper):
            damage = damage.data
        if damage is True:
            damage = None
        if not force and not self._due():
            return
        self.data, self.damage = self.extract(self._pick(udf_results), damage)
        self.update(self.damage, force=True)

    def _due(self) -> bool:
        return time.monotonic() - self.last_update >= self.min_delta

    def update(self, damage=None, force: bool = False) -> None:
        """Redraw :attr:`data` unless the last redraw is less than ``min_delta`` ago.

        Parameters
        ----------
        damage
            Boolean mask of valid pixels of :attr:`data`; ``None``: keep the current one.
        force
            Redraw in any case.
        """
        if not force and not self._due():
            return
        if damage is not None and damage is not True:
            self.damage = np.broadcast_to(np.asarray(damage, dtype=bool), self.data.shape)
        self.update_display(self.damage, force=force)
        self.last_update = time.monotonic()
        self.n_updates += 1

    def value_range(self, damage: np.ndarray | None = None) -> tuple[float, float]:
        """Colour limits: min and max of the finite values among the valid pixels."""
        damage = self.damage if damage is None else damage
        values = self.data[damage] if np.any(damage) else self.data
        values = values[np.isfinite(values)] if values.dtype.kind in "fc" else values
        if values.size == 0:
            return 0.0, 1.0
        lo, hi = float(np.min(values)), float(np.max(values))
        if lo == hi:
            hi = lo + 1.0
        return lo, hi

    # to implement --------------------------------------------------------------
    def display(self) -> Any:
        """Create and show the plot."""
        raise NotImplementedError()

    def update_display(self, damage: np.ndarray, force: bool = False) -> None:
        """Draw :attr:`data` (``damage``: valid pixels)."""
        raise NotImplementedError()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {type(self.udf).__name__}:{self.channel}>"


def _squeeze_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    squeezed = tuple(s for s in shape if s != 1)
    if not squeezed and shape:
        return (1,)
    return squeezed


def _squeeze(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(_squeeze_shape(arr.shape)) if arr.ndim else arr.reshape((1,))


def prepare_plots(
    plots,
    dataset,
    udfs: Sequence[UDF],
    roi: np.ndarray | None,
    plot_class: type[Live2DPlot] | None,
) -> list[Live2DPlot]:
    """Turn the ``plots`` argument of ``run_udf`` into displayed plot objects.

    Parameters
    ----------
    plots
        ``None``/``False``: none. ``True``: one plot per plottable channel of each
        UDF. A list of plot objects, or a list with one entry per UDF, each a list of
        channels (names or ``(name, function)`` tuples).
    dataset, udfs, roi
        The run.
    plot_class
        Class for the plots made here; default :class:`~libertem.viz.mpl.MPLLive2DPlot`.
    """
    if plots is None or plots is False:
        return []
    if plot_class is None:
        from libertem.viz.mpl import MPLLive2DPlot

        plot_class = MPLLive2DPlot
    result: list[Live2DPlot] = []
    if plots is True:
        for index, udf in enumerate(udfs):
            for channel in get_plottable_channels(dataset, udf, roi):
                result.append(_make(plot_class, dataset, udf, roi, channel, index))
    elif isinstance(plots, Iterable) and not isinstance(plots, (str, bytes)):
        plots = list(plots)
        if all(isinstance(p, Live2DPlot) for p in plots):
            for p in plots:
                p.udf_index = _index_of(p.udf, udfs)
                result.append(p)
        else:
            if len(plots) != len(udfs):
                raise ValueError(
                    f"plots: expected one list of channels per UDF ({len(udfs)}), "
                    f"got {len(plots)} entries"
                )
            for index, (udf, channels) in enumerate(zip(udfs, plots)):
                if isinstance(channels, (str, tuple)):
                    channels = [channels]
                for channel in channels or ():
                    result.append(_make(plot_class, dataset, udf, roi, channel, index))
    else:
        raise ValueError(f"plots must be True, a list of plots or of channel lists; got {plots!r}")
    for p in result:
        if not p.displayed:
            p.display()
            p.displayed = True
    return result


def _make(plot_class, dataset, udf, roi, channel, index) -> Live2DPlot:
    p = plot_class(dataset, udf, roi=roi, channel=channel)
    p.udf_index = index
    return p


def _index_of(udf: UDF, udfs: Sequence[UDF]) -> int:
    for i, u in enumerate(udfs):
        if u is udf:
            return i
    raise ValueError(f"plot for {type(udf).__name__}, which is not among the UDFs of this run")


def wrap_iter_with_plots(gen: Iterator, plots: Sequence[Live2DPlot]) -> Iterator:
    """Pass on the items of a ``run_udf_iter`` generator, updating ``plots`` with each.

    Updates are rate-limited by each plot's ``min_delta``; when the generator ends (or
    is closed), the last item is drawn once more with ``force=True``.
    """
    if not plots:
        yield from gen
        return
    last = None
    try:
        for item in gen:
            last = item
            _update_all(plots, item, force=False)
            yield item
    finally:
        if last is not None:
            _update_all(plots, last, force=True)


async def wrap_aiter_with_plots(agen: AsyncIterator, plots: Sequence[Live2DPlot]) -> AsyncIterator:
    """Async version of :func:`wrap_iter_with_plots`; plots are updated in the event loop."""
    last = None
    try:
        async for item in agen:
            last = item
            _update_all(plots, item, force=False)
            yield item
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()  # cancels the remaining work when the consumer stops early
        if last is not None:
            _update_all(plots, last, force=True)


def _update_all(plots: Sequence[Live2DPlot], item, force: bool) -> None:
    for p in plots:
        p.new_data(item, item.damage, force=force)
