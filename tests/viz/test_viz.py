"""Live plots, headless: the drawn data equal the partial and the final results."""

from __future__ import annotations

import asyncio

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from libertem.api import Context  # noqa: E402
from libertem.executor.inline import InlineJobExecutor  # noqa: E402
from libertem.udf.com import CoMUDF  # noqa: E402
from libertem.udf.masks import ApplyMasksUDF  # noqa: E402
from libertem.udf.stddev import StdDevUDF  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402
from libertem.udf.sumsigudf import SumSigUDF  # noqa: E402
from libertem.viz.base import Live2DPlot, get_plottable_channels  # noqa: E402
from libertem.viz.bqp import BQLive2DPlot  # noqa: E402
from libertem.viz.mpl import MPLLive2DPlot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(7).random((6, 5, 8, 9)).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    # enough partitions for several partial results, even when pairs of tasks
    # finish out of order and are merged together (partition order is kept)
    return ctx.load("memory", data=data, num_partitions=8)


def shown(plot: MPLLive2DPlot) -> np.ndarray:
    """What the matplotlib artist holds."""
    if plot.data.ndim == 2:
        return np.asarray(plot.im_obj.get_array())
    return np.asarray(plot.im_obj.get_ydata())


def test_drawn_data_follow_partial_results(ctx, ds, data):
    udfs = [SumUDF(), SumSigUDF()]
    plots = [
        MPLLive2DPlot(ds, udfs[0], channel="intensity", min_delta=0),
        MPLLive2DPlot(ds, udfs[1], channel="intensity", min_delta=0),
    ]
    for plot in plots:  # plot objects passed in are displayed by their owner
        plot.display()
    n_partial = 0
    for item in ctx.run_udf_iter(ds, udfs, plots=plots):
        for plot, buffers in zip(plots, item.buffers):
            expected = buffers["intensity"].data
            assert np.array_equal(plot.data, expected)
            assert np.array_equal(shown(plot), expected)
        damage = item.damage.data
        assert np.array_equal(plots[1].damage, damage)
        n_partial += 0 < damage.sum() < damage.size
    assert np.allclose(shown(plots[0]), data.sum(axis=(0, 1)), rtol=1e-5)
    assert np.allclose(shown(plots[1]), data.sum(axis=(2, 3)), rtol=1e-5)
    if isinstance(ctx.executor, InlineJobExecutor):
        # partitions merge in order: with tasks finishing in order, every partition
        # gives a partial result (on threads, how many depends on completion order)
        assert n_partial >= 2
        assert all(p.n_updates >= 5 for p in plots)


def test_plots_true_one_plot_per_channel(ctx, ds, data):
    before = set(plt.get_fignums())
    res = ctx.run_udf(ds, [SumUDF(), StdDevUDF()], plots=True)
    new = set(plt.get_fignums()) - before
    # SumUDF: intensity; StdDevUDF: the plottable sig results (not num_frames, a scalar)
    expected = get_plottable_channels(ds, SumUDF()) + get_plottable_channels(ds, StdDevUDF())
    assert len(new) == len(expected) >= 2
    titles = sorted(plt.figure(n).axes[0].get_title() for n in new)
    named = [f"SumUDF: {c}" for c in get_plottable_channels(ds, SumUDF())]
    named += [f"StdDevUDF: {c}" for c in get_plottable_channels(ds, StdDevUDF())]
    assert titles == sorted(named)
    assert np.allclose(res[0]["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_final_forced_update_despite_rate_limit(inline_ctx, data):
    ds = inline_ctx.load("memory", data=data, num_partitions=5)
    udf = SumSigUDF()
    plot = MPLLive2DPlot(ds, udf, min_delta=3600)
    plot.display()
    res = inline_ctx.run_udf(ds, udf, plots=[plot])
    # the first partial result and the forced final one
    assert plot.n_updates == 2
    assert np.array_equal(shown(plot), res["intensity"].data)
    assert plot.displayed and plot.fig is not None


def test_channel_lists_and_functions(ctx, ds, data):
    udf = ApplyMasksUDF([lambda: np.ones((8, 9)), lambda: np.eye(8, 9)])

    def second(d):
        return d[..., 1]

    def log_first(d):
        return np.log1p(d[..., 0])

    plots = []

    class Recording(MPLLive2DPlot):
        def display(self):
            plots.append(self)
            return super().display()

    ctx.plot_class = Recording
    try:
        res = ctx.run_udf(ds, udf, plots=[[("intensity", second), ("intensity", log_first)]])
    finally:
        ctx.plot_class = None
    assert ctx.plot_class is MPLLive2DPlot
    first, log = plots
    assert np.array_equal(shown(first), res["intensity"].data[..., 1])
    assert np.allclose(shown(log), np.log1p(res["intensity"].data[..., 0]))


def test_multi_mask_not_plotted_by_default(inline_ctx, ds):
    udf = ApplyMasksUDF([lambda: np.ones((8, 9)), lambda: np.eye(8, 9)])
    assert get_plottable_channels(ds, udf) == []
    single = ApplyMasksUDF([lambda: np.ones((8, 9))])
    assert get_plottable_channels(ds, single) == ["intensity"]


def test_line_plot_for_1d_results(inline_ctx):
    data = np.random.default_rng(8).random((12, 20)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data, sig_dims=1, num_partitions=3)
    udf = SumSigUDF()
    plot = MPLLive2DPlot(ds, udf, min_delta=0)
    plot.display()
    for item in inline_ctx.run_udf_iter(ds, udf, plots=[plot]):
        assert np.array_equal(shown(plot), item.buffers[0]["intensity"].data)
    assert np.allclose(shown(plot), data.sum(axis=1), rtol=1e-5)
    sum_plot = MPLLive2DPlot(ds, SumUDF())
    assert sum_plot.data.shape == (20,)


def test_roi_and_damage(inline_ctx, data):
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((6, 5), dtype=bool)
    roi[::2, 1:] = True
    udf = CoMUDF.with_params(cx=4, cy=4, r=3)
    res = inline_ctx.run_udf(ds, udf, roi=roi, plots=[["magnitude"]])
    plot_fig = plt.figure(plt.get_fignums()[-1])
    image = plot_fig.axes[0].images[0]
    drawn = np.ma.filled(image.get_array(), np.nan)
    assert np.array_equal(drawn, res["magnitude"].data, equal_nan=True)
    lo, hi = image.get_clim()
    assert lo == pytest.approx(np.nanmin(res["magnitude"].data))
    assert hi == pytest.approx(np.nanmax(res["magnitude"].data))


def test_async_runs_with_plots(inline_ctx, ds, data):
    udf = SumUDF()
    plot = MPLLive2DPlot(ds, udf, min_delta=0)
    plot.display()

    async def main():
        res = await inline_ctx.run_udf(ds, udf, plots=[plot], sync=False)
        seen = []
        async for item in inline_ctx.run_udf_iter(ds, SumSigUDF(), plots=True, sync=False):
            seen.append(item.damage.data.sum())
        return res, seen

    res, seen = asyncio.run(main())
    assert np.allclose(shown(plot), data.sum(axis=(0, 1)), rtol=1e-5)
    assert np.array_equal(shown(plot), res["intensity"].data)
    assert seen[-1] == 30


def test_udfresult_and_update(inline_ctx, ds):
    res = inline_ctx.run_udf(ds, SumSigUDF())
    plot = MPLLive2DPlot(ds, SumSigUDF(), udfresult=res, title="sum per frame")
    plot.display()
    assert plot.axes.get_title() == "sum per frame"
    assert np.array_equal(shown(plot), res["intensity"].data)
    plot.data = plot.data * 2
    plot.update(True, force=True)
    assert np.array_equal(shown(plot), res["intensity"].data * 2)
    plot.new_data(res, damage=True, force=True)
    assert np.array_equal(shown(plot), res["intensity"].data)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bqplot_plot(data):
    ctx = Context(executor=InlineJobExecutor(), plot_class=BQLive2DPlot)
    ds = ctx.load("memory", data=data, num_partitions=3)
    made = []

    class Recording(BQLive2DPlot):
        def display(self):
            made.append(self)
            return self._build()

    ctx.plot_class = Recording
    res = ctx.run_udf(ds, [SumUDF(), SumSigUDF()], plots=True)
    heat_sum, heat_nav = made
    assert np.allclose(np.asarray(heat_sum.mark.color), res[0]["intensity"].data)
    assert np.allclose(np.asarray(heat_nav.mark.color), res[1]["intensity"].data)
    assert heat_nav._color_scale.max == pytest.approx(res[1]["intensity"].data.max())
    ds1 = ctx.load("memory", data=data.reshape((30, 72)), sig_dims=1)
    line = Recording(ds1, SumSigUDF(), min_delta=0)
    line.display()
    final = ctx.run_udf(ds1, line.udf, plots=[line])
    assert np.allclose(np.asarray(line.mark.y), final["intensity"].data)
    ctx.close()


def test_bad_arguments(inline_ctx, ds):
    with pytest.raises(ValueError, match="no result named"):
        MPLLive2DPlot(ds, SumUDF(), channel="nothing")
    with pytest.raises(ValueError, match="not among the UDFs"):
        inline_ctx.run_udf(ds, SumUDF(), plots=[MPLLive2DPlot(ds, SumUDF())])
    with pytest.raises(ValueError, match="not a plot object"):
        inline_ctx.run_udf(ds, SumUDF(), plots="intensity")
    with pytest.raises(NotImplementedError):
        Live2DPlot(ds, SumUDF()).display()


@pytest.mark.parametrize(
    "backend, mode",
    [
        ("agg", "none"),
        ("module://matplotlib_inline.backend_inline", "inline"),
        ("module://ipympl.backend_nbagg", "widget"),
        ("qtagg", "window"),
    ],
)
def test_backend_modes(monkeypatch, backend, mode):
    from libertem.viz import mpl

    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    assert mpl._backend_mode() == mode
