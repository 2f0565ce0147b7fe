"""Live plots in runs: the ``plots`` argument of ``run_udf`` and ``run_udf_iter``."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator, Sequence

import numpy as np

from libertem.udf.classes import UDF
from libertem.viz.base import Live2DPlot, get_plottable_channels

__all__ = ["prepare_plots", "wrap_iter_with_plots", "wrap_aiter_with_plots"]


def _is_channel_lists(plots) -> bool:
    """Whether ``plots`` is a list of channel lists (one per UDF) rather than plot objects."""
    if not isinstance(plots, (list, tuple)):
        return False
    if not all(isinstance(entry, (list, tuple)) for entry in plots):
        return False
    return all(isinstance(ch, (str, list, tuple)) for entry in plots for ch in entry)


def prepare_plots(
    plots,
    dataset,
    udfs: Sequence[UDF],
    roi: np.ndarray | None,
    plot_class: type[Live2DPlot] | None,
) -> list[tuple[object, int]]:
    """Turn the ``plots`` argument of ``run_udf`` into ``(plot, UDF index)`` pairs.

    Parameters
    ----------
    plots
        ``None``/``False``: none. ``True``: one plot per plottable channel of each UDF
        (a warning for a UDF without any). A list or tuple whose entries are all lists
        or tuples of channels (``'name'`` or ``('name', function)``): entry *i* holds
        the channels of UDF *i*, paired by position (missing entries: no plots,
        surplus entries: ignored). Anything else: a list of plot objects, used as they
        are; each needs ``get_udf()`` and ``new_data(udf_results, damage, force)``.
    dataset, udfs, roi
        The run.
    plot_class
        Class for the plots made here; default :class:`~libertem.viz.mpl.MPLLive2DPlot`.

    Returns
    -------
    list of (plot, int)
        The plots and the index of their UDF. Plots made here are displayed; plot
        objects given by the caller are not (call their ``display()`` first).
    """
    if plots is None or plots is False:
        return []
    if plot_class is None:
        from libertem.viz.mpl import MPLLive2DPlot

        plot_class = MPLLive2DPlot
    made: list[tuple[object, int]] = []
    if plots is True:
        for index, udf in enumerate(udfs):
            channels = get_plottable_channels(dataset, udf, roi)
            if not channels:
                warnings.warn(
                    f"No plottable channels found for UDF #{index}: {udf!r}, not plotting.",
                    UserWarning,
                    stacklevel=3,
                )
            for channel in channels:
                made.append((_make(plot_class, dataset, udf, roi, channel, index), index))
    elif _is_channel_lists(plots):
        for index, (udf, channels) in enumerate(zip(udfs, plots)):
            for channel in channels:
                made.append((_make(plot_class, dataset, udf, roi, channel, index), index))
    else:
        given = list(plots) if isinstance(plots, (list, tuple)) else [plots]
        for p in given:
            if not (callable(getattr(p, "get_udf", None)) and hasattr(p, "new_data")):
                raise ValueError(
                    f"plots: {p!r} is not a plot object (one with get_udf() and new_data()); "
                    "pass True, a list of plot objects or one list of channels per UDF"
                )
        return [(p, _index_of(p.get_udf(), udfs)) for p in given]
    for p, _index in made:
        p.display()
    return made


def _make(plot_class, dataset, udf, roi, channel, index) -> Live2DPlot:
    p = plot_class(dataset, udf, roi=roi, channel=channel)
    p.udf_index = index
    return p


def _index_of(udf: UDF, udfs: Sequence[UDF]) -> int:
    for i, u in enumerate(udfs):
        if u is udf:
            return i
    raise ValueError(f"plot for {type(udf).__name__}, which is not among the UDFs of this run")


def wrap_iter_with_plots(gen: Iterator, plots: Sequence[tuple[object, int]]) -> Iterator:
    """Pass on the items of a ``run_udf_iter`` generator, updating ``plots`` with each.

    ``plots`` are ``(plot, UDF index)`` pairs from :func:`prepare_plots`.

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


async def wrap_aiter_with_plots(
    agen: AsyncIterator, plots: Sequence[tuple[object, int]]
) -> AsyncIterator:
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


def _update_all(plots: Sequence[tuple[object, int]], item, force: bool) -> None:
    """Hand each plot its UDF's results (dict) and the navigation damage (bool array)."""
    damage = np.asarray(getattr(item.damage, "data", item.damage), dtype=bool)
    for p, index in plots:
        p.new_data(item.buffers[index], damage, force=force)
