"""Live plots of UDF results: channels, rate limiting, and the hooks into runs."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.common.viz import encode_image, make_colormap, rgb_from_2dvector, visualize_simple
from libertem.common.viz import get_stat_limits as _get_stat_limits
from libertem.udf.classes import UDF
from libertem.udf.runner import UDFRunner

__all__ = [
    "Live2DPlot",
    "Dummy2DPlot",
    "_get_stat_limits",
    "UDFRunner",
    "encode_image",
    "get_plottable_2D_channels",
    "get_plottable_channels",
    "make_colormap",
    "rgb_from_2dvector",
    "visualize_simple",
]

#: what plots that draw on screen warn when they are updated before ``display()``
NOT_DISPLAYED = "Plot is not displayed, not plotting. Call display() to display the plot."

ChannelSpec = str | tuple[str, Callable[[np.ndarray], Any]] | Callable


def declared_buffers(dataset, udf: UDF, roi=None) -> dict[str, BufferWrapper]:
    """The result buffers ``udf`` has for ``dataset``, allocated but not computed."""
    return UDFRunner.inspect_udf(udf, dataset, roi)


def result_shape(buf: BufferWrapper, nav_shape, sig_shape) -> tuple[int, ...]:
    """The shape of the result of buffer ``buf`` on a dataset of ``nav_shape`` and ``sig_shape``.

    ``nav`` results are navigation-shaped, ``sig`` results signal-shaped, each plus
    the ``extra_shape``; ``single`` results have the ``extra_shape`` (at least ``(1,)``).
    """
    if buf.kind == "nav":
        return (*tuple(nav_shape), *buf.extra_shape)
    if buf.kind == "sig":
        return (*tuple(sig_shape), *buf.extra_shape)
    return tuple(buf.extra_shape) or (1,)


def _buffer_shape(buf) -> tuple[int, ...] | None:
    """The shape of an allocated buffer's result, or ``None`` if unknown."""
    try:
        return tuple(np.shape(buf.data))
    except Exception:
        shape = getattr(buf, "shape", None)
        return None if shape is None else tuple(shape)


def _squeeze_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    squeezed = tuple(s for s in shape if s != 1)
    if not squeezed and shape:
        return (1,)
    return squeezed


def _squeeze(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(_squeeze_shape(arr.shape)) if arr.ndim else arr.reshape((1,))


def get_plottable_2D_channels(buffers) -> list[str]:
    """Names of the buffers whose results are images: two axes longer than one.

    Parameters
    ----------
    buffers
        Dict of buffer name to :class:`~libertem.common.buffers.BufferWrapper`
        with results (or allocated, e.g. from ``UDFRunner.inspect_udf``).

    Returns
    -------
    list of str
        The names, in order; ``use='private'`` buffers are left out.
    """
    names = []
    for name, buf in buffers.items():
        if getattr(buf, "use", None) == "private":
            continue
        shape = _buffer_shape(buf)
        if shape is not None and len([s for s in shape if s != 1]) == 2:
            names.append(name)
    return names


def get_plottable_channels(dataset, udf: UDF, roi=None) -> list[str]:
    """Names of the UDF's results that can be shown as an image or a line.

    These are the buffers that are not ``use='private'`` and whose result, without
    axes of length 1, has one or two dimensions.
    """
    shape = dataset.shape
    return [
        name
        for name, buf in declared_buffers(dataset, udf, roi).items()
        if buf.use != "private"
        and len(_squeeze_shape(result_shape(buf, shape.nav, shape.sig))) in (1, 2)
    ]


def _damage_array(damage) -> np.ndarray | None:
    """A boolean navigation mask from ``damage`` (buffer, array, ``True``/``None``: all)."""
    if isinstance(damage, BufferWrapper):
        damage = damage.data
    if damage is None or damage is True:
        return None
    return np.asarray(damage, dtype=bool)


class Live2DPlot:
    """Base class of live plots: one result channel of one UDF, updated during a run.

    Subclasses implement :meth:`display` (create the plot) and :meth:`update`
    (redraw :attr:`data`).

    Parameters
    ----------
    dataset
        The dataset the UDF runs on.
    udf
        The UDF whose results are shown.
    roi
        The ROI of the run, used to know which frames carry results.
    channel
        What to show:

        - ``None``: the first plottable channel;
        - a buffer name;
        - a tuple ``(name, function)`` where ``function`` maps the buffer's data
          (shaped like the dataset's nav or sig axes plus extra axes) to the array to
          show; it may also return ``(array, damage)``;
        - a function ``f(udf_results, damage) -> (array, damage)`` of all the UDF's
          buffers and the navigation damage.
    title
        Plot title; default ``"<UDF class>: <channel>"``, where the channel is its
        name, ``"<function>(<name>)"`` for a ``(name, function)`` tuple, or the
        function's name.
    min_delta
        Minimum seconds between two redraws in :meth:`new_data`; ``force=True``
        always redraws.
    udfresult
        Results (dict of buffers, or ``UDFResults``) to show right away.

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
        min_delta: float = 0,
        udfresult=None,
    ):
        self.dataset = dataset
        self.udf = udf
        self.roi = None if roi is None else np.asarray(roi, dtype=bool)
        if channel is None:
            channels = get_plottable_channels(dataset, udf, roi)
            if not channels:
                raise ValueError(f"{type(udf).__name__} has no result that can be plotted")
            channel = channels[0]
        self._func = None
        self._extract_all = None
        if isinstance(channel, str):
            name = channel_title = channel
        elif isinstance(channel, (tuple, list)):
            name, self._func = channel
            channel_title = f"{_name_of(self._func)}({name})"
        elif callable(channel):
            name, self._extract_all = _name_of(channel), channel
            channel_title = name
        else:
            raise ValueError("channel must be a name, a (name, function) tuple or a function")
        self.channel: str = name
        if title is None:
            title = f"{type(udf).__name__}: {channel_title}"
        self.title = title
        self.min_delta = float(min_delta)
        self.last_update = -np.inf
        self.n_updates = 0
        self.displayed = False
        self.udf_index = 0
        self._nav_shape = tuple(dataset.shape.nav)
        if udfresult is None:
            self.data, _ = self.extract(self._empty_results(dataset, udf, roi), None)
            self.damage = np.zeros(self.data.shape, dtype=bool)
        else:
            damage = getattr(udfresult, "damage", None)
            self.data, damage = self.extract(self._pick(udfresult), damage)
            self.damage = self._valid_mask(self.data, damage)

    def _empty_results(self, dataset, udf, roi):
        buffers = declared_buffers(dataset, udf, roi)
        if self._extract_all is None and self.channel not in buffers:
            raise ValueError(f"{type(udf).__name__} has no result named {self.channel!r}")
        shape = dataset.shape
        empty = {}
        for name, buf in buffers.items():
            res = result_shape(buf, shape.nav, shape.sig)
            dtype = np.float64 if buf.dtype.kind == "c" else buf.dtype
            empty[name] = _Placeholder(np.zeros(res, dtype=dtype), buf.kind)
        return empty

    # data ------------------------------------------------------------------
    def get_udf(self) -> UDF:
        """The UDF this plot shows a result of."""
        return self.udf

    def extract(
        self, udf_results: dict[str, BufferWrapper], damage: BufferWrapper
    ) -> tuple[np.ndarray, np.ndarray]:
        """The array to show and its valid pixels, from one UDF's results.

        Parameters
        ----------
        udf_results
            Buffer name to :class:`BufferWrapper` (or array).
        damage
            Navigation-shaped boolean buffer or array of processed frames, or
            ``None``/``True`` (all).
        """
        if self._extract_all is not None:
            arr, dmg = self._extract_all(udf_results, damage)
            arr = np.array(arr)
            return arr, dmg
        buf = udf_results[self.channel]
        kind = getattr(buf, "kind", None)
        data = np.asarray(buf.data if hasattr(buf, "kind") else buf)
        if self._func is not None:
            out = self._func(data)
            if isinstance(out, tuple):
                arr, dmg = out
                return np.array(arr), np.asarray(dmg, dtype=bool)
            arr = np.array(out)
        else:
            arr = _squeeze(np.array(data))
        if arr.dtype.kind == "c":
            arr = np.abs(arr)
        valid = np.ones(arr.shape, dtype=bool)
        if kind == "nav" and arr.shape == _squeeze_shape(self._nav_shape):
            nav_valid = np.ones(self._nav_shape, dtype=bool)
            damage = _damage_array(damage)
            if damage is not None:
                nav_valid &= damage.reshape(self._nav_shape)
            if self.roi is not None:
                nav_valid &= self.roi.reshape(self._nav_shape)
            valid = nav_valid.reshape(arr.shape)
        return arr, valid

    def _pick(self, udf_results) -> dict[str, BufferWrapper]:
        buffers = getattr(udf_results, "buffers", udf_results)
        if isinstance(buffers, (tuple, list)):
            return buffers[self.udf_index]
        return buffers

    @staticmethod
    def _valid_mask(data: np.ndarray, damage) -> np.ndarray:
        """Where ``damage`` is true and ``data`` is finite (along all trailing extra axes).

        ``damage`` may have fewer axes than ``data`` (e.g. an ``(h, w)`` mask for an
        ``(h, w, 3)`` RGB image); the mask then has the shape of ``damage``.
        """
        if damage is None or damage is True:
            damage = np.ones(data.shape, dtype=bool)
        damage = np.asarray(damage, dtype=bool)
        if damage.shape != data.shape[: damage.ndim]:
            if damage.size == data.size:
                damage = damage.reshape(data.shape)
            else:
                damage = np.broadcast_to(damage, data.shape)
        try:
            finite = np.isfinite(data)
        except TypeError:  # e.g. object arrays: every value counts
            return damage.copy()
        extra_axes = tuple(range(damage.ndim, data.ndim))
        if extra_axes:
            finite = finite.all(axis=extra_axes)
        return damage & finite

    def new_data(self, udf_results, damage, force: bool = False) -> bool:
        """Take new (partial) results and redraw if ``min_delta`` has passed.

        Parameters
        ----------
        udf_results
            The UDF's results (dict of buffers), or ``UDFResults`` / a tuple of dicts
            (this plot's UDF is picked by :attr:`udf_index`).
        damage
            Navigation-shaped boolean buffer or array of the processed frames;
            ``True``/``None``: all frames.
        force
            Redraw regardless of :attr:`min_delta`.

        Returns
        -------
        bool
            Whether the plot was redrawn.
        """
        if damage is None:
            damage = getattr(udf_results, "damage", None)
        now = time.monotonic()
        if not force and now - self.last_update < self.min_delta:
            return False
        self.data, damage = self.extract(self._pick(udf_results), damage)
        self.damage = self._valid_mask(self.data, damage)
        self.update(self.damage, force=force)
        self.last_update = time.monotonic()
        self.n_updates += 1
        return True

    def value_range(self, damage: np.ndarray | None = None) -> tuple[float, float]:
        """Colour limits: robust limits (``_get_stat_limits``) of the finite values among
        the valid pixels (``damage``; default :attr:`damage`)."""
        damage = self.damage if damage is None or damage is True else damage
        mask = self._valid_mask(self.data, damage)
        return _get_stat_limits(self.data[mask])

    def _warn_not_displayed(self) -> None:
        warnings.warn(NOT_DISPLAYED, UserWarning, stacklevel=3)

    # to implement --------------------------------------------------------------
    def display(self) -> Any:
        """Create and show the plot."""
        raise NotImplementedError()

    def update(self, damage, force: bool = False) -> None:
        """Redraw :attr:`data`; ``damage``: boolean mask of its valid pixels."""
        raise NotImplementedError()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {type(self.udf).__name__}:{self.channel}>"


def _name_of(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class _Placeholder:
    """A zero result of a declared buffer, standing in for a result not yet computed."""

    def __init__(self, data: np.ndarray, kind: str):
        self.data = data
        self.kind = kind


class Dummy2DPlot(Live2DPlot):
    """A live plot that draws nothing: it keeps what it would show.

    For tests and benchmarks of runs with plots, and where no display is available.

    Attributes
    ----------
    history : list of numpy.ndarray
        A copy of :attr:`data` for every update.
    """

    def __init__(
        self,
        dataset,
        udf: UDF,
        roi=None,
        channel=None,
        title=None,
        min_delta: float = 0,
        udfresult=None,
    ):
        super().__init__(dataset, udf, roi, channel, title, min_delta, udfresult)
        self.history: list[np.ndarray] = []

    def display(self) -> None:
        """Nothing to show; marks the plot as displayed."""
        self.displayed = True

    def update(self, damage, force: bool = False) -> None:
        """Keep a copy of :attr:`data` in :attr:`history`."""
        self.history.append(np.array(self.data, copy=True))
