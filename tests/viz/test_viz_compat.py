"""libertem.viz with LiberTEM's interface: image helpers, 2D channels, the plot base
class protocol (update/new_data/extract), Dummy2DPlot, GMSLive2DPlot against a
stand-in DigitalMicrograph module, ui_events."""

from __future__ import annotations

import sys
import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from PIL import Image  # noqa: E402

from libertem.common.viz import encode_image as common_encode_image  # noqa: E402
from libertem.udf.masks import ApplyMasksUDF  # noqa: E402
from libertem.udf.runner import UDFRunner  # noqa: E402
from libertem.udf.stddev import StdDevUDF  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402
from libertem.udf.sumsigudf import SumSigUDF  # noqa: E402
from libertem.viz.base import (  # noqa: E402
    Dummy2DPlot,
    Live2DPlot,
    encode_image,
    get_plottable_2D_channels,
    make_colormap,
    rgb_from_2dvector,
    visualize_simple,
)
from libertem.viz.bqp import BQLive2DPlot  # noqa: E402
from libertem.viz.mpl import MPLLive2DPlot, ui_events  # noqa: E402

NAV, SIG = (6, 5), (8, 9)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(51).random((*NAV, *SIG)).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=4)


def test_visualize_simple():
    values = np.array([[0.0, 1.0], [2.0, 4.0]])
    image = visualize_simple(values)
    assert image.shape == (2, 2, 4) and image.dtype == np.uint8  # RGBA, as in LiberTEM
    cmap = make_colormap()
    assert cmap.name == "gist_earth"
    # zeros count as "no result" by default: the range is that of 1, 2, 4
    norm = np.clip((values - 1) / 3, 0, 1)
    norm[0, 0] = 0
    expected = (cmap(norm) * 255).round().astype(np.uint8)
    assert np.array_equal(image, expected)
    log = visualize_simple(values, logarithmic=True)
    lo, hi = float(np.float32(np.log(2))), float(np.float32(np.log(5)))
    norm = np.clip((np.log(values + 1) - lo) / (hi - lo), 0, 1)
    norm[0, 0] = 0
    expected = (cmap(norm) * 255).round().astype(np.uint8)
    assert np.array_equal(log, expected)
    clipped = visualize_simple(values, vmin=1, vmax=2, colormap=colormaps["gray"])
    assert clipped[0, 0].tolist() == [0, 0, 0, 255] and clipped[1, 1].tolist() == [255] * 4
    # only valid pixels set the range; NaN are drawn as the lowest value
    damaged = visualize_simple(np.array([[np.nan, 1.0], [3.0, 100.0]]), damage=[[1, 1], [1, 0]])
    gray = visualize_simple(np.array([[1.0, 3.0]]), colormap=colormaps["gray"])
    assert gray[0, 0].tolist() == [0, 0, 0, 255] and gray[0, 1].tolist() == [255] * 4
    assert np.array_equal(damaged[0, 0], damaged[1, 1])
    assert np.array_equal(
        visualize_simple(np.array([[1j, 2]])), visualize_simple(np.array([[1, 2]]))
    )
    # a far outlier does not take the whole colour range
    spiky = np.concatenate([np.arange(1.0, 1001.0), [1e7]]).reshape(7, 143)
    grey_spiky = visualize_simple(spiky, colormap=colormaps["gray"])
    assert grey_spiky.reshape(-1, 4)[999].tolist() == [255, 255, 255, 255]  # 1000: the top
    assert grey_spiky.reshape(-1, 4)[499].tolist() == [127, 127, 127, 255]  # 500: the middle
    # no valid pixel at all: a degenerate range, no error
    assert visualize_simple(np.zeros((2, 2))).shape == (2, 2, 4)


def _reference_rgb(y, x, vmax=None):
    """The colour model, step by step, straight from colorcet and scikit-image."""
    import colorcet  # noqa: F401
    from skimage.color import luv2rgb, rgb2luv

    y, x = np.broadcast_arrays(np.asarray(y), np.asarray(x))
    length = np.hypot(y, x)
    vmax = (length.max() or 1.0) if vmax is None else vmax
    strength = np.minimum(length / vmax, 1)
    where = (np.arctan2(-y, -x) + np.pi) / (2 * np.pi)
    cmap = colormaps["cet_cyclic_isoluminant"]
    luv = rgb2luv(np.asarray(cmap(where, bytes=True))[..., :3])
    luv *= np.stack([np.full(strength.shape, 0.8), 2.2 * strength, 2.2 * strength], -1)
    return (luv2rgb(luv) * 255).astype(np.uint8)


def test_rgb_from_2dvector():
    y = np.array([[0.0, 1.0, 0.0, -2.0]])
    x = np.array([[1.0, 0.0, 0.5, 0.0]])
    image = rgb_from_2dvector(y, x)
    assert image.shape == (1, 4, 3) and image.dtype == np.uint8
    assert np.array_equal(image, _reference_rgb(y, x))
    assert rgb_from_2dvector(0, 0).tolist() == [127, 127, 127]  # no length: grey
    # the same direction, shorter: same hue family, closer to grey
    long_, short = rgb_from_2dvector(y=np.array([0, 0]), x=np.array([1.0, 0.25]))
    assert np.ptp(short.astype(int)) < np.ptp(long_.astype(int))
    assert np.array_equal(rgb_from_2dvector(y, x, vmax=4), _reference_rgb(y, x, vmax=4))
    assert rgb_from_2dvector(y=np.zeros((1, 3)), x=np.ones((2, 1))).shape == (2, 3, 3)
    # integer zeros stay +0: (0, 1) lies at the end of the map, (-0.0, 1) at its start
    assert np.array_equal(rgb_from_2dvector(0, 1), _reference_rgb(0, 1))


def test_libertem_cyclic_colormap():
    from matplotlib.colors import LinearSegmentedColormap

    from libertem import viz

    cmap = viz.libertem_cyclic
    assert isinstance(cmap, LinearSegmentedColormap)
    assert (cmap.name, cmap.N) == ("libertem_cyclic", 256)
    for degrees in (0, 90, 180, 270):
        a = np.radians(degrees)
        colour = rgb_from_2dvector(y=-np.sin(a), x=-np.cos(a)) / 255
        assert np.allclose(cmap(degrees / 360)[:3], colour, atol=2 / 255)


def test_encode_image(tmp_path):
    image = visualize_simple(np.arange(12.0).reshape(3, 4))
    buf = encode_image(image)
    assert encode_image is common_encode_image
    decoded = np.asarray(Image.open(buf))
    assert np.array_equal(decoded, image)
    grey = np.asarray(Image.open(encode_image(np.array([[0.0, 0.5, 1.0]]))))
    assert grey.tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError, match="image"):
        encode_image(np.zeros((2, 2, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        encode_image(np.array([["a"]]))


def test_get_plottable_2D_channels(ds):
    def channels(udf):
        return get_plottable_2D_channels(UDFRunner.inspect_udf(udf, ds))

    assert channels(SumUDF()) == ["intensity"]
    assert channels(SumSigUDF()) == ["intensity"]
    assert set(channels(StdDevUDF())) == {"num_frames", "sum", "varsum", "mean", "var", "std"}
    assert channels(ApplyMasksUDF([lambda: np.ones(SIG), lambda: np.eye(*SIG)])) == []
    assert channels(ApplyMasksUDF([lambda: np.ones(SIG)])) == ["intensity"]


def test_base_protocol_and_callable_channel(ctx, ds, data):
    class Recording(Live2DPlot):
        def display(self):
            self.updates = []

        def update(self, damage, force=False):
            self.updates.append((np.array(self.data), np.array(damage), force))

    def mean_of_nav(udf_results, damage):
        return udf_results["intensity"].data.mean(axis=0), True

    udf = SumSigUDF()
    plot = Recording(ds, udf, channel=mean_of_nav)
    assert plot.min_delta == 0 and plot.get_udf() is udf
    assert plot.channel == "mean_of_nav"
    plot.display()
    res = ctx.run_udf(ds, udf, plots=[plot])
    last_data, last_damage, forced = plot.updates[-1]
    assert forced is True
    assert np.allclose(last_data, res["intensity"].data.mean(axis=0))
    assert last_damage.all()
    named = Recording(ds, udf, channel="intensity", min_delta=3600)
    named.display()
    assert named.new_data(res, res_damage(NAV), force=False) is True  # first one is due
    assert named.new_data(res, res_damage(NAV)) is False  # rate-limited
    data_, damage = named.extract(res, np.zeros(NAV, dtype=bool))
    assert np.allclose(data_, data.sum(axis=(2, 3)), rtol=1e-5) and not damage.any()


def res_damage(shape):
    return np.ones(shape, dtype=bool)


def test_dummy_plot(ctx, ds, data):
    udf = SumUDF()
    plot = Dummy2DPlot(ds, udf)
    res = ctx.run_udf(ds, udf, plots=[plot])
    assert not plot.displayed and len(plot.history) >= 1  # the owner displays it
    assert np.array_equal(plot.history[-1], res["intensity"].data)
    ctx.plot_class = Dummy2DPlot
    try:
        ctx.run_udf(ds, [SumUDF(), SumSigUDF()], plots=True)
    finally:
        ctx.plot_class = None


def test_plot_defaults_and_kwargs(inline_ctx, ds):
    plot = MPLLive2DPlot(ds, SumUDF(), cmap="magma")
    assert plot.min_delta == 0.5
    plot.display()
    assert plot.im_obj.get_cmap().name == "magma"
    assert BQLive2DPlot(ds, SumUDF()).min_delta == pytest.approx(1 / 60)


def test_ui_events(monkeypatch, inline_ctx, ds):
    ui_events()  # Agg: nothing to do
    from libertem.viz import mpl

    plot = MPLLive2DPlot(ds, SumUDF())
    plot.display()
    flushed = []
    monkeypatch.setattr(mpl, "_backend_mode", lambda: "window")
    monkeypatch.setattr(plot.fig.canvas, "flush_events", lambda: flushed.append(1))
    ui_events()
    assert flushed == [1]


class _FakeDisplay:
    """Stands in for a GMS image display; records the contrast limits."""

    def __init__(self):
        self.auto_survey = True
        self.limits = []

    def SetDoAutoSurvey(self, flag):
        self.auto_survey = flag

    def SetContrastLimits(self, lo, hi):
        self.limits.append((lo, hi))


class _FakeImage:
    """Stands in for GMS's Py_Image."""

    def __init__(self, array):
        self.array = np.array(array, dtype=np.float32)
        self.name = None
        self.shown = False
        self.updates = 0
        self.display = _FakeDisplay()

    def SetName(self, name):
        self.name = name

    def ShowImage(self):
        self.shown = True
        return "window"

    def GetImageDisplay(self, index):
        assert index == 0
        return self.display

    def GetNumArray(self):
        return self.array

    def UpdateImage(self):
        self.updates += 1


@pytest.fixture
def fake_dm(monkeypatch):
    module = types.ModuleType("DigitalMicrograph")
    module.images = []

    def create_image(array):
        image = _FakeImage(array)
        module.images.append(image)
        return image

    module.CreateImage = create_image
    monkeypatch.setitem(sys.modules, "DigitalMicrograph", module)
    return module


def test_gms_plot(ctx, ds, data, fake_dm):
    from libertem.viz.base import _get_stat_limits
    from libertem.viz.gms import GMSLive2DPlot

    udf = SumSigUDF()
    plot = GMSLive2DPlot(ds, udf, title="sum per frame")
    assert plot.min_delta == 0.2
    # the image exists from the start, named after the title, but is not shown
    (image,) = fake_dm.images
    assert image.name == "sum per frame" and not image.shown
    assert np.array_equal(image.array, np.zeros(NAV))
    with pytest.warns(UserWarning, match="Plot is not displayed"):
        ctx.run_udf(ds, udf, plots=[plot])
    assert image.updates == 0 and not image.display.limits
    assert plot.display() is image
    assert image.shown and image.display.auto_survey is False
    plot.last_update = -np.inf  # the next update is due at once
    res = ctx.run_udf(ds, udf, plots=[plot])
    assert image.updates >= 1
    assert np.allclose(image.array, res["intensity"].data)
    assert image.display.limits[-1] == _get_stat_limits(res["intensity"].data)
    ctx.plot_class = GMSLive2DPlot
    try:
        ctx.run_udf(ds, SumUDF(), plots=True)  # made here, so displayed here
    finally:
        ctx.plot_class = None
    assert len(fake_dm.images) == 2
    made = fake_dm.images[-1]
    assert made.shown and made.name == "SumUDF: intensity"
    assert np.allclose(made.array, data.sum(axis=(0, 1)), rtol=1e-5)


def test_gms_plot_needs_gms(monkeypatch, ds):
    from libertem.viz.gms import GMSLive2DPlot

    monkeypatch.setitem(sys.modules, "DigitalMicrograph", None)
    with pytest.raises(ImportError, match="Gatan Microscopy Suite"):
        GMSLive2DPlot(ds, SumUDF())
