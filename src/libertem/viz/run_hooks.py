"""Live plots in runs: the ``plots`` argument of ``run_udf`` and ``run_udf_iter``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

import numpy as np

from libertem.udf.base import UDF
from libertem.viz.base import Live2DPlot, get_plottable_channels

__all__ = ["prepare_plots", "wrap_iter_with_plots", "wrap_aiter_with_plots"]


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
        channels (see :class:`~libertem.viz.base.Live2DPlot`).
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
                if isinstance(channels, (str, tuple)) or callable(channels):
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
