"""Live plot rules of LiberTEM 0.16: robust colour limits, titles, who displays a plot,
the forms of ``plots=``, and channel data with extra trailing axes."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from libertem.udf.base import NoOpUDF  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402
from libertem.udf.sumsigudf import SumSigUDF  # noqa: E402
from libertem.viz import rgb_from_2dvector  # noqa: E402
from libertem.viz.base import Dummy2DPlot, _get_stat_limits  # noqa: E402
from libertem.viz.mpl import MPLLive2DPlot  # noqa: E402

NOT_SHOWN = "Plot is not displayed"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- _get_stat_limits ----------------------------------------------------------------------


def test_limits_without_finite_values():
    for data in (np.array([]), np.array([np.nan, np.inf, -np.inf])):
        assert _get_stat_limits(data) == (1.0, math.nextafter(1.0, math.inf))


def test_limits_of_constant_data_are_widened_by_one_ulp():
    lo, hi = _get_stat_limits(np.full(4, -3.5))
    assert lo == -3.5 and hi == math.nextafter(-3.5, math.inf)


def test_far_outlier_is_cut_near_one_is_kept():
    base = np.concatenate([np.arange(1.0, 1001.0), [1e7]])
    assert _get_stat_limits(base) == (1.0, 1000.0)
    near = np.concatenate([np.arange(1.0, 1001.0), [5000.0]])  # 4x, not > 10x away
    assert _get_stat_limits(near) == (1.0, 5000.0)
    flat = np.concatenate([np.full(200, 2.0), [500.0]])
    assert _get_stat_limits(flat, quantile=0.01, snip_factor=1.0) == (
        2.0,
        math.nextafter(2.0, math.inf),
    )
    assert _get_stat_limits(flat, quantile=0.01, snip_factor=500.0) == (2.0, 500.0)


def test_zeros_stay_in_the_range():
    pos = np.concatenate([np.zeros(100), [300.0, 7000.0]])
    assert _get_stat_limits(pos, quantile=0.1, snip_factor=1.0) == (0.0, 300.0)
    neg = -pos
    assert _get_stat_limits(neg, quantile=0.1, snip_factor=1.0) == (-300.0, 0.0)


def test_limits_types_bool_int_complex():
    for data, expected in (
        (np.array([True, False]), (0.0, 1.0)),
        (np.array([3, 9, 200], dtype=np.uint8), (3.0, 9.0)),
        (np.array([4 - 2j, -1 + 5j]), (-1.0, 4.0)),  # real parts of min / max
    ):
        lo, hi = _get_stat_limits(data)
        assert (lo, hi) == expected and type(lo) is float and type(hi) is float


# --- titles, display and warnings ------------------------------------------------------------


@pytest.fixture
def ds(inline_ctx):
    data = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    return inline_ctx.load("memory", data=data, num_partitions=2)


def test_default_titles(ds):
    def brightest(results, damage):
        return results["intensity"].data, damage

    assert Dummy2DPlot(ds, SumUDF()).title == "SumUDF: intensity"
    assert Dummy2DPlot(ds, SumUDF(), channel=("intensity", np.sqrt)).title == (
        "SumUDF: sqrt(intensity)"
    )
    assert Dummy2DPlot(ds, SumSigUDF(), channel=brightest).title == "SumSigUDF: brightest"
    assert Dummy2DPlot(ds, SumUDF(), title="mine").title == "mine"


def test_user_plots_are_not_displayed_and_warn(inline_ctx, ds):
    udf = SumUDF()
    plot = MPLLive2DPlot(ds, udf)
    with pytest.warns(UserWarning, match=NOT_SHOWN):
        inline_ctx.run_udf(ds, udf, plots=[plot])
    assert plot.fig is None
    plot.display()
    plot.last_update = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = inline_ctx.run_udf(ds, udf, plots=[plot])
    assert np.array_equal(plot.im_obj.get_array(), res["intensity"].data)
    assert plot.im_obj.get_clim() == _get_stat_limits(res["intensity"].data)
    assert len(plot.fig.axes) == 1


def test_plots_made_by_the_context_are_displayed(inline_ctx, ds):
    made = []

    class Recording(Dummy2DPlot):
        def display(self):
            made.append(self)
            super().display()

    inline_ctx.plot_class = Recording
    try:
        with pytest.warns(UserWarning, match="No plottable channels"):
            inline_ctx.run_udf(ds, [SumUDF(), NoOpUDF()], plots=True)
    finally:
        inline_ctx.plot_class = None
    assert [p.title for p in made] == ["SumUDF: intensity"]


# --- forms of plots= -------------------------------------------------------------------------


def test_channel_lists_pair_with_udfs_by_position(inline_ctx, ds):
    made = []

    class Recording(Dummy2DPlot):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.title)

    inline_ctx.plot_class = Recording
    udfs = [SumSigUDF(), NoOpUDF(), SumUDF()]
    try:
        for plots, expected in (
            ([["intensity"]], ["SumSigUDF: intensity"]),  # fewer entries than UDFs
            ((["intensity"], [], ("intensity",), ["ignored"]), None),  # surplus ignored
            ([[], [], [("intensity", np.log1p)]], ["SumUDF: log1p(intensity)"]),
        ):
            made.clear()
            res = inline_ctx.run_udf(ds, udfs, plots=plots)
            assert len(res) == 3
            if expected is None:
                expected = ["SumSigUDF: intensity", "SumUDF: intensity"]
            assert made == expected
    finally:
        inline_ctx.plot_class = None


class _Recorder:
    def __init__(self, udf):
        self.udf = udf
        self.calls = []

    def get_udf(self):
        return self.udf

    def new_data(self, udf_results, damage, force=False):
        self.calls.append((sorted(udf_results), damage.dtype, damage.shape, force))


def test_duck_typed_plot_objects(ctx):
    data = np.ones((3, 2, 4, 4), dtype=np.float32)
    ds = ctx.load("memory", data=data, num_partitions=3)
    first, second = SumUDF(), SumSigUDF()
    rec = _Recorder(second)
    res = ctx.run_udf(ds, [first, second], plots=[rec])
    assert np.array_equal(res[1]["intensity"].data, data.sum(axis=(2, 3)))
    assert rec.calls[-1] == (["intensity"], np.dtype(bool), (3, 2), True)
    assert all(not force for *_rest, force in rec.calls[:-1]) and len(rec.calls) >= 2


def test_not_a_plot_object(inline_ctx, ds):
    with pytest.raises(ValueError, match="not a plot object"):
        inline_ctx.run_udf(ds, SumUDF(), plots=[object()])


# --- extra trailing axes ---------------------------------------------------------------------


def test_rgb_channel_with_nav_shaped_damage(inline_ctx):
    data = np.random.default_rng(3).random((3, 4, 2, 2)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    udf = SumSigUDF()

    def colour(results, damage):
        img = results["intensity"].data
        return rgb_from_2dvector(y=img, x=-img), damage

    plot = Dummy2DPlot(ds, udf, channel=colour)
    res = inline_ctx.run_udf(ds, udf, plots=[plot])
    img = res["intensity"].data
    assert plot.data.shape == (3, 4, 3) and plot.data.dtype == np.uint8
    assert np.array_equal(plot.data, rgb_from_2dvector(y=img, x=-img))
    assert plot.damage.shape == (3, 4) and plot.damage.all()


def test_valid_mask_needs_all_components_finite(ds):
    plot = Dummy2DPlot(ds, SumSigUDF())
    values = np.ones((2, 3, 2))
    values[0, 1, 1] = np.nan
    damage = np.ones((2, 3), dtype=bool)
    damage[1, 2] = False
    mask = plot._valid_mask(values, damage)
    expected = np.ones((2, 3), dtype=bool)
    expected[0, 1] = expected[1, 2] = False
    assert np.array_equal(mask, expected)
