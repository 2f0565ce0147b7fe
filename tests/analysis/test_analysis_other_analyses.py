"""The analyses LiberTEM 0.16 has beyond the create_*_analysis ones: FFT of the sum or
of a picked frame, standard deviation, sum per frame, FEM and the crystallinity map,
checked against NumPy, with and without their ROI parameter."""

from __future__ import annotations

import os

import numpy as np
import pytest

import libertem.analysis
from libertem.analysis.apply_fft_mask import ApplyFFTMask, FFTMaskTemplate
from libertem.analysis.base import Analysis
from libertem.analysis.codegen import generate_cells, to_script
from libertem.analysis.fem import FEMAnalysis, FEMTemplate
from libertem.analysis.helper import GeneratorHelper
from libertem.analysis.raw import PickFrameAnalysis
from libertem.analysis.rawfft import PickFFTFrameAnalysis, PickfftTemplate
from libertem.analysis.sd import SDAnalysis, SDTemplate
from libertem.analysis.sum import SumAnalysis
from libertem.analysis.sumfft import SumfftAnalysis, SumfftTemplate
from libertem.analysis.sumsig import SumSigAnalysis, SumSigTemplate
from libertem.common.viz import visualize_simple
from libertem.udf.crystallinity import CrystallinityUDF
from libertem.udf.FEM import FEMUDF

NAV = (3, 4)
SIG = (8, 6)
RECT = {"shape": "rect", "x": 1, "y": 0, "width": 2, "height": 1}  # rows 0..1, columns 1..3


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(12).random(NAV + SIG).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=2)


def _keep(cx, cy, r):
    yy, xx = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 > r**2


def _rect_rows_cols():
    return slice(0, 2), slice(1, 4)


@pytest.mark.parametrize(
    "cls, type_id, template, short_name",
    [
        (SumfftAnalysis, "FFTSUM_FRAMES", SumfftTemplate, "sumfft"),
        (PickFFTFrameAnalysis, "PICK_FFT_FRAME", PickfftTemplate, "pickfft"),
        (SDAnalysis, "SD_FRAMES", SDTemplate, "sd"),
        (SumSigAnalysis, "SUM_SIG", SumSigTemplate, "sumsig"),
        (FEMAnalysis, "FEM", FEMTemplate, "fem"),
        (ApplyFFTMask, "APPLY_FFT_MASK", FFTMaskTemplate, "fft"),
    ],
)
def test_registered_exported_and_templated(cls, type_id, template, short_name):
    assert Analysis.get_analysis_by_type(type_id) is cls
    assert getattr(libertem.analysis, cls.__name__) is cls
    assert cls.__name__ in libertem.analysis.__all__
    assert cls.TYPE == "UDF"
    assert cls.get_template_helper() is template
    assert issubclass(template, GeneratorHelper) and template.short_name == short_name


@pytest.mark.parametrize("roi", [None, RECT])
def test_sumfft_is_the_sum_with_an_fft_image(ctx, ds, data, roi):
    params = {"real_rad": 1, "real_centerx": 2, "real_centery": 3}
    if roi is not None:
        params["roi"] = roi
    an = SumfftAnalysis(dataset=ds, parameters=params)
    assert isinstance(an, SumAnalysis)
    res = ctx.run(an)
    assert res.keys() == ["intensity"] and res.intensity.title == "intensity"
    picked = data if roi is None else data[_rect_rows_cols()]
    expected = picked.sum(axis=(0, 1))
    assert res.intensity.raw_data.dtype == np.float32
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-5)
    image = res.intensity.visualized
    assert image.shape == (*SIG, 4) and image.dtype == np.uint8
    # the image is that of log(|fftshift(fft2(sum * keep))| + 1)
    total = res.intensity.raw_data.astype(np.float64)
    spectrum = np.log(np.abs(np.fft.fftshift(np.fft.fft2(total * _keep(2, 3, 1)))) + 1)
    reference = visualize_simple(spectrum).astype(int)
    assert np.abs(image.astype(int) - reference).max() <= 1  # up to rounding to uint8


def test_sumfft_needs_a_centre_for_real_rad(ds):
    with pytest.raises(ValueError, match="real_centerx"):
        SumfftAnalysis(dataset=ds, parameters={"real_rad": 2})


@pytest.mark.parametrize("real", [False, True])
def test_pickfft(ctx, ds, data, real):
    params = {"x": 2, "y": 1}
    keep = np.ones(SIG, dtype=bool)
    if real:
        params.update(real_rad=1.5, real_centerx=1, real_centery=4)
        keep = _keep(1, 4, 1.5)
    an = PickFFTFrameAnalysis(dataset=ds, parameters=params)
    assert isinstance(an, PickFrameAnalysis)
    res = ctx.run(an)
    expected = np.fft.fftshift(np.abs(np.fft.fft2(data[1, 2] * keep)))
    assert [(r.key, r.title) for r in res] == [
        ("intensity", "intensity [log]"),
        ("intensity_lin", "intensity [lin]"),
    ]
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-5, atol=1e-5)
    assert res.intensity_lin.raw_data is res.intensity.raw_data


def test_pickfft_checks_at_run_and_complex_frames(ctx, data):
    ds = ctx.load("memory", data=data)
    an = PickFFTFrameAnalysis(dataset=ds, parameters={"x": 2})
    with pytest.raises(ValueError):
        ctx.run(an)
    cdata = (data + 1j * data[::-1]).astype(np.complex64)
    res = ctx.run(
        PickFFTFrameAnalysis(dataset=ctx.load("memory", data=cdata), parameters={"x": 2, "y": 1})
    )
    assert res.keys() == [
        "intensity_lin",
        "intensity",
        "intensity_real",
        "intensity_imag",
        "intensity_angle",
        "intensity_complex",
    ]
    np.testing.assert_array_equal(res.intensity_complex.raw_data, cdata[1, 2])


@pytest.mark.parametrize("roi", [None, RECT])
def test_sd(ctx, ds, data, roi):
    res = ctx.run(SDAnalysis(dataset=ds, parameters={} if roi is None else {"roi": roi}))
    picked = data if roi is None else data[_rect_rows_cols()]
    expected = picked.reshape((-1, *SIG)).astype(np.float64).std(axis=0)
    assert [(r.key, r.title) for r in res] == [
        ("intensity", "intensity [log]"),
        ("intensity_lin", "intensity [lin]"),
    ]
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(res.intensity_lin.raw_data), expected, rtol=1e-6)
    assert res.intensity.visualized.shape == (*SIG, 4)


def test_sumsig(ctx, ds, data):
    an = SumSigAnalysis(dataset=ds, parameters={})
    assert an.get_roi() is None
    res = ctx.run(an)
    assert [(r.key, r.title) for r in res] == [("intensity", "intensity")]
    values = np.asarray(res.intensity.raw_data)
    assert values.shape == NAV
    np.testing.assert_allclose(values, data.sum(axis=(2, 3)), rtol=1e-5)


def test_fem(ctx, ds, data):
    an = FEMAnalysis(dataset=ds, parameters={"cx": 2, "cy": 4, "ri": 1, "ro": 3})
    udf = an.get_udf()
    assert isinstance(udf, FEMUDF) and tuple(udf.params.center) == (4, 2)
    assert an.get_roi() is None
    res = ctx.run(an)
    assert [(r.key, r.title) for r in res] == [("intensity", "intensity")]
    yy, xx = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    d = np.hypot(yy - 4, xx - 2)
    ring = (d > 1) & (d <= 3)
    expected = data[..., ring].std(axis=-1)
    assert res.intensity.raw_data.dtype == np.float32
    np.testing.assert_allclose(res.intensity.raw_data, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="ro"):
        FEMAnalysis(dataset=ds, parameters={"cx": 2, "cy": 4, "ri": 1})


def test_apply_fft_mask(ctx, ds, data):
    params = {"rad_in": 1, "rad_out": 3, "real_centerx": 2, "real_centery": 5, "real_rad": 1}
    an = ApplyFFTMask(dataset=ds, parameters=params)
    udf = an.get_udf()
    assert isinstance(udf, CrystallinityUDF) and tuple(udf.params.real_center) == (5, 2)
    assert an.get_roi() is None
    res = ctx.run(an)
    assert [(r.key, r.title) for r in res] == [("intensity", "intensity")]
    sy, sx = SIG
    yy, xx = np.mgrid[0:sy, 0:sx]
    d2 = (yy - sy / 2) ** 2 + (xx - sx / 2) ** 2
    ring = np.fft.fftshift((d2 <= 9) & ~(d2 <= 1))[:, : sx // 2 + 1]
    keep = _keep(2, 5, 1)
    expected = [
        np.sum(np.abs(np.fft.rfft2(f.astype(np.float64) * keep)) * ring)
        for f in data.reshape((-1, *SIG))
    ]
    np.testing.assert_allclose(res.intensity.raw_data.reshape(-1), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="real_rad"):
        ApplyFFTMask(dataset=ds, parameters={"rad_in": 1, "rad_out": 3})


def test_generated_code_of_the_new_analyses(inline_ctx, data, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    path = tmp_path / "data.npy"
    np.save(path, data)
    ds = inline_ctx.load("memory", data=data)
    analyses = [
        SumfftAnalysis(ds, {"real_rad": 1, "real_centerx": 2, "real_centery": 3}),
        PickFFTFrameAnalysis(ds, {"x": 2, "y": 1}),
        SDAnalysis(ds, {"roi": RECT}),
        SumSigAnalysis(ds, {}),
        FEMAnalysis(ds, {"cx": 2, "cy": 4, "ri": 1, "ro": 3}),
        ApplyFFTMask(
            ds, {"rad_in": 1, "rad_out": 3, "real_centerx": 2, "real_centery": 5, "real_rad": 1}
        ),
    ]
    script = to_script(
        generate_cells(
            analyses,
            dataset_code=f"ds = ctx.load('npy', path={str(path)!r})",
            context_code="ctx = Context.make_with('inline')",
        )
    )
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(script, "generated.py", "exec"), ns)
    finally:
        os.chdir(cwd)
    rows, cols = _rect_rows_cols()
    expected_sd = data[rows, cols].reshape((-1, *SIG)).std(axis=0)
    np.testing.assert_allclose(ns["sd_result"]["std"].data, expected_sd, rtol=1e-5)
    np.testing.assert_allclose(
        ns["sumsig_result"]["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-5
    )
    fem = inline_ctx.run(analyses[4]).intensity.raw_data
    np.testing.assert_allclose(ns["fem_result"]["intensity"].data, fem, rtol=1e-6)
    fft = inline_ctx.run(analyses[5]).intensity.raw_data
    np.testing.assert_allclose(ns["fft_result"]["intensity"].data, fft, rtol=1e-6)
    np.testing.assert_allclose(
        ns["pickfft_result"].intensity.raw_data,
        inline_ctx.run(analyses[1]).intensity.raw_data,
        rtol=1e-6,
    )
    assert ns["sumfft_result"].intensity.visualized.shape == (*SIG, 4)
