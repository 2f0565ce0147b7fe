"""Analyses with LiberTEM's interface: parameters and defaults, results from UDF results,
complex results, ROI parameters, type ids, remote procedures, the controller, and the
code templates (whose generated code is executed)."""

from __future__ import annotations

import asyncio
import io
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from libertem.analysis.base import Analysis, BaseAnalysis  # noqa: E402
from libertem.analysis.codegen import generate_cells, to_notebook, to_script  # noqa: E402
from libertem.analysis.com import COMAnalysis, ParameterGuessProc  # noqa: E402
from libertem.analysis.helper import GeneratorHelper  # noqa: E402
from libertem.analysis.masks import MasksAnalysis, get_roi  # noqa: E402
from libertem.analysis.raw import PickFrameAnalysis  # noqa: E402
from libertem.analysis.sum import SumAnalysis  # noqa: E402
from libertem.api import (  # noqa: E402
    AnalysisResultSet,
    DiskMaskAnalysis,
    PointMaskAnalysis,
    RadialFourierAnalysis,
    RingMaskAnalysis,
)
from libertem.common.analysis import AnalysisResult  # noqa: E402
from libertem.masks import circular, ring  # noqa: E402
from libertem.udf.com import apply_correction  # noqa: E402

NAV, SIG = (5, 6), (16, 18)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(41)
    return rng.random((*NAV, *SIG)).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=3)


def dist(cx, cy):
    y, x = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    return np.hypot(x - cx, y - cy)


def test_defaults(ctx, ds, data):
    sy, sx = SIG
    disk = ctx.create_disk_analysis(ds)
    assert disk.parameters == {"cx": sx / 2, "cy": sy / 2, "r": min(SIG) / 4, "use_sparse": None}
    res = ctx.run(disk)
    mask = dist(sx / 2, sy / 2) <= min(SIG) / 4
    assert np.allclose(res.intensity.raw_data, (data * mask).sum(axis=(2, 3)), rtol=1e-5)
    ring_job = ctx.create_ring_analysis(ds, ri=2)
    assert ring_job.parameters["ro"] == min(SIG) / 2 and ring_job.parameters["ri"] == 2
    point = ctx.create_point_analysis(ds)
    res = ctx.run(point)
    assert np.array_equal(res.intensity.raw_data, data[..., sy // 2, sx // 2])
    com = ctx.create_com_analysis(ds)
    assert com.parameters["r"] == np.inf and com.parameters["ri"] == 0
    radial = ctx.create_radial_fourier_analysis(ds)
    assert radial.parameters["n_bins"] == 1 and radial.parameters["max_order"] == 8


def test_analyses_match_numpy(ctx, ds, data):
    res = ctx.run(ctx.create_ring_analysis(ds, cx=8, cy=7, ri=2, ro=6))
    mask = ring(8, 7, SIG[1], SIG[0], 6, 2)
    assert np.allclose(res.intensity.raw_data, (data * mask).sum(axis=(2, 3)), rtol=1e-5)
    com = ctx.run(ctx.create_com_analysis(ds, cx=8, cy=7, mask_radius=6, mask_radius_inner=2))
    ys, xs = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    total = (data * mask).sum(axis=(2, 3))
    ref_y = (data * mask * ys).sum(axis=(2, 3)) / total - 7
    ref_x = (data * mask * xs).sum(axis=(2, 3)) / total - 8
    assert np.allclose(com.y.raw_data, ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(com.x.raw_data, ref_x, rtol=1e-4, atol=1e-5)
    assert np.allclose(com.raw_shifts[0], ref_y, rtol=1e-4, atol=1e-5)


def test_get_udf_and_results_with_damage(ctx, ds, data):
    job = ctx.create_disk_analysis(ds, cx=8, cy=7, r=4)
    seen = 0
    for part in ctx.run_udf_iter(ds, job.get_udf()):
        damage = part.damage.data
        res = job.get_udf_results(part.buffers[0], roi=None, damage=damage)
        values = res.intensity.raw_data
        mask = dist(8, 7) <= 4
        assert np.allclose(values[damage], (data[damage] * mask).sum(axis=(1, 2)), rtol=1e-5)
        assert res.intensity.visualized.shape == (*NAV, 4)
        seen += 1
    assert seen >= 2


def test_roi_combination_and_roi_parameters(ctx, ds, data):
    pick = ctx.create_pick_analysis(ds, x=2, y=3)
    assert pick.get_origin() == (3, 2)
    assert pick.get_coords() == 3 * NAV[1] + 2
    roi = np.ones(NAV, dtype=bool)
    res = ctx.run(pick, roi=roi)
    assert np.array_equal(res.intensity.raw_data, data[3, 2])
    disk_roi = {"shape": "disk", "cx": 2, "cy": 2, "r": 1.5}
    mask = get_roi({"roi": disk_roi}, NAV)
    assert np.array_equal(mask, circular(2, 2, NAV[1], NAV[0], 1.5))
    assert get_roi({}, NAV) is None and get_roi({"roi": {}}, NAV) is None
    with pytest.raises(NotImplementedError, match="ROI shape"):  # as LiberTEM
        get_roi({"roi": {"shape": "star"}}, NAV)
    job = SumAnalysis(ds, {"roi": disk_roi})
    assert np.allclose(ctx.run(job).intensity.raw_data, data[mask].sum(axis=0), rtol=1e-5)
    masks = MasksAnalysis(ds, {"factories": [lambda: np.ones(SIG)], "roi": disk_roi})
    values = ctx.run(masks).mask_0.raw_data
    assert np.allclose(values[mask], data[mask].sum(axis=(1, 2)), rtol=1e-5)
    assert np.all(np.isnan(values[~mask]))


def test_complex_results(inline_ctx):
    rng = np.random.default_rng(42)
    data = (rng.random((3, 4, 6, 7)) + 1j * rng.random((3, 4, 6, 7))).astype(np.complex64)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run(inline_ctx.create_sum_analysis(ds))
    total = data.sum(axis=(0, 1))
    keys = ["intensity_lin", "intensity", "intensity_real", "intensity_imag"]
    assert res.keys()[:4] == keys
    assert np.allclose(res.intensity.raw_data, np.abs(total), rtol=1e-5)
    assert np.allclose(res.intensity_imag.raw_data, total.imag, rtol=1e-5)
    assert np.allclose(res.intensity_angle.raw_data, np.angle(total), rtol=1e-5, atol=1e-6)
    assert res.intensity_complex.visualized.shape == (6, 7, 3)
    pick = inline_ctx.run(inline_ctx.create_pick_analysis(ds, x=1, y=2))
    assert np.allclose(pick.intensity_real.raw_data, data[2, 1].real)
    real = Analysis(ds, {}).get_complex_results(
        np.arange(6.0).reshape(2, 3), "k", "t", "d", damage=True
    )
    assert [r.key for r in real] == ["k", "k_log"]


def test_result_objects():
    lazy_calls = []

    def make():
        lazy_calls.append(1)
        return [AnalysisResult(np.eye(3), np.zeros((3, 3, 3), np.uint8), "t", "d", "eye")]

    results = AnalysisResultSet(make, raw_results={"x": 1})
    assert not lazy_calls
    assert results.keys() == ["eye"] and len(lazy_calls) == 1
    assert results.eye.title == "t" and results["eye"].include_in_download
    assert np.array_equal(np.asarray(results[0]), np.eye(3))
    image = Image.open(results.eye.get_image())
    assert image.size == (3, 3) and image.format == "PNG"
    jpeg = Image.open(results.eye.get_image(save_kwargs={"format": "jpeg"}))
    assert jpeg.format == "JPEG"
    made = []
    r = AnalysisResult(
        np.ones(2), lambda: made.append(1) or np.zeros((1, 2, 3), np.uint8), "a", "b", "c"
    )
    assert not made
    assert r.visualized.shape == (1, 2, 3) and made == [1]
    with pytest.raises(AttributeError, match="result with key 'missing' not found, have: eye"):
        results.missing


def test_need_rerun_and_types(ds):
    com = COMAnalysis(ds, {"cx": 8, "cy": 7, "r": 5})
    p = com.parameters
    assert not com.need_rerun(p, {**p, "flip_y": True, "scan_rotation": 10.0})
    assert com.need_rerun(p, {**p, "cx": 9})
    disk = DiskMaskAnalysis(ds, {"cx": 8, "cy": 7, "r": 5})
    assert disk.need_rerun(disk.parameters, {**disk.parameters, "r": 6})
    assert not disk.need_rerun(disk.parameters, dict(disk.parameters))
    ids = {
        "APPLY_DISK_MASK": DiskMaskAnalysis,
        "APPLY_RING_MASK": RingMaskAnalysis,
        "APPLY_POINT_SELECTOR": PointMaskAnalysis,
        "CENTER_OF_MASS": COMAnalysis,
        "SUM_FRAMES": SumAnalysis,
        "PICK_FRAME": PickFrameAnalysis,
        "RADIAL_FOURIER": RadialFourierAnalysis,
    }
    for type_id, cls in ids.items():
        assert Analysis.get_analysis_by_type(type_id) is cls
        assert cls.TYPE == "UDF"
        assert issubclass(cls, BaseAnalysis)
        assert issubclass(cls.get_template_helper(), GeneratorHelper)
    with pytest.raises(ValueError, match="unknown analysis type"):
        Analysis.get_analysis_by_type("NOPE")
    with pytest.raises(NotImplementedError):
        MasksAnalysis.get_template_helper()
    assert DiskMaskAnalysis.get_rpc_definitions() == {}


def test_bad_parameters(ds):
    with pytest.raises(ValueError, match="outside"):
        PointMaskAnalysis(ds, {"x": SIG[1], "y": 0})
    with pytest.raises(ValueError, match="ri"):
        RingMaskAnalysis(ds, {"ri": 5, "ro": 3})
    with pytest.raises(ValueError, match="factories"):
        MasksAnalysis(ds, {})
    pick = PickFrameAnalysis(ds, {"x": 1})  # checked when run, as in LiberTEM
    with pytest.raises(ValueError, match="needs"):
        pick.get_roi()
    with pytest.raises(ValueError, match="n_bins"):
        RadialFourierAnalysis(ds, {"n_bins": 0})


def test_parameter_guess_proc(inline_ctx):
    y, x = np.mgrid[-6:7, -6:7].astype(float)
    phys = -np.stack([y, x]) / (y**2 + x**2 + 4) * 3
    det_y, det_x = apply_correction(*phys, scan_rotation=40, flip_y=True, forward=False)
    frames = np.zeros((13, 13, 32, 32), dtype=np.float32)
    yy, xx = np.mgrid[0:32, 0:32]
    for idx in np.ndindex(13, 13):
        cy, cx = 16.5 + det_y[idx], 15.5 + det_x[idx]
        frames[idx] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4)
    ds = inline_ctx.load("memory", data=frames)
    job = inline_ctx.create_com_analysis(ds, cx=15.5, cy=16, mask_radius=12)
    comm = type("Comm", (), {"analysis": job, "results": inline_ctx.run(job)})()
    answer = asyncio.run(ParameterGuessProc()(comm))
    assert answer["status"] == "ok"
    guess = answer["guess"]
    assert (guess["scan_rotation"], guess["flip_y"]) == (40, True)
    assert abs(guess["cy"] - 16.5) < 0.2 and abs(guess["cx"] - 15.5) < 0.2
    comm.results = None
    assert asyncio.run(ParameterGuessProc()(comm))["status"] == "error"


def test_controller(ctx, ds, data):
    job = ctx.create_sum_analysis(ds)
    sent = []

    async def send(results, finished):
        sent.append((finished, np.array(results.intensity.raw_data)))

    final = asyncio.run(job.controller("cancel-me", ctx.executor, lambda: False, send))
    assert sent[-1][0] is True and all(not f for f, _ in sent[:-1])
    assert np.allclose(sent[-1][1], data.sum(axis=(0, 1)), rtol=1e-5)
    assert np.allclose(final.intensity.raw_data, sent[-1][1])
    cancelled = asyncio.run(job.controller("c2", ctx.executor, lambda: True, send))
    assert cancelled is None


def _run_generated(cells, folder):
    namespace = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(compile(to_script(cells), "generated.py", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_generated_code_runs(inline_ctx, ds, data, tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, data)
    analyses = [
        inline_ctx.create_disk_analysis(ds, cx=8, cy=7, r=4),
        inline_ctx.create_ring_analysis(ds, cx=8, cy=7, ri=2, ro=6),
        inline_ctx.create_point_analysis(ds, x=3, y=4),
        inline_ctx.create_sum_analysis(ds),
        inline_ctx.create_pick_analysis(ds, x=2, y=1),
        inline_ctx.create_com_analysis(ds, cx=8, cy=7, mask_radius=6, flip_y=True),
        inline_ctx.create_radial_fourier_analysis(ds, cx=8, cy=7, ri=1, ro=6, max_order=2),
        DiskMaskAnalysis(
            ds,
            {
                "cx": 8,
                "cy": 7,
                "r": 3,
                "roi": {"shape": "rect", "x": 1, "y": 1, "width": 3, "height": 2},
            },
        ),
    ]
    cells = generate_cells(
        analyses,
        dataset_code=f"ds = ctx.load('npy', path={str(path)!r})",
        context_code="ctx = Context.make_with('inline')",
    )
    kinds = {c.kind for c in cells}
    assert kinds == {"code", "markdown"}
    ns = _run_generated(cells, tmp_path)
    expected = {
        "disk_result": ctx_result(inline_ctx, analyses[0]),
        "ring_result": ctx_result(inline_ctx, analyses[1]),
        "point_result": ctx_result(inline_ctx, analyses[2]),
        "sum_result": ctx_result(inline_ctx, analyses[3]),
        "pick_result": ctx_result(inline_ctx, analyses[4]),
    }
    for name, ref in expected.items():
        assert np.allclose(ns[name].intensity.raw_data, ref.intensity.raw_data, equal_nan=True)
    com = ctx_result(inline_ctx, analyses[5])
    # float32 sums over differently tiled datasets (npy file vs memory) differ in
    # their last bits; COM shifts are pixel coordinates of order 1
    assert np.allclose(ns["com_result"].y.raw_data, com.y.raw_data, atol=1e-5)
    radial = ctx_result(inline_ctx, analyses[6])
    assert np.allclose(ns["radial_result"].complex_0_2.raw_data, radial.complex_0_2.raw_data)
    second_disk = ns["disk1_result"].intensity.raw_data
    roi = np.zeros(NAV, dtype=bool)
    roi[1:4, 1:5] = True  # width 3, height 2: both end rows and columns included
    assert np.all(np.isnan(second_disk[~roi])) and np.all(np.isfinite(second_disk[roi]))
    assert os.path.exists(tmp_path / "com_divergence.npy")
    assert os.path.exists(tmp_path / "disk_intensity.npy")
    nb = to_notebook(cells)
    assert len(nb.cells) == len(cells)
    assert nb.cells[0].cell_type == "code"


def ctx_result(ctx, analysis):
    return ctx.run(analysis)


def test_generated_com_code_runs_on_a_line_scan(inline_ctx, data, tmp_path):
    """A scan with one row has no divergence and curl: the generated code copes."""
    line = data[:1]
    path = tmp_path / "line.npy"
    np.save(path, line)
    ds = inline_ctx.load("npy", path=str(path))
    analysis = inline_ctx.create_com_analysis(ds, cx=8, cy=7, mask_radius=6)
    cells = generate_cells(
        [analysis],
        dataset_code=f"ds = ctx.load('npy', path={str(path)!r})",
        context_code="ctx = Context.make_with('inline')",
    )
    ns = _run_generated(cells, tmp_path)
    plt.close("all")
    ref = ctx_result(inline_ctx, analysis)
    assert "divergence" not in ref.keys()
    assert np.allclose(ns["com_result"].x.raw_data, ref.x.raw_data)
    assert np.allclose(np.load(tmp_path / "com_field_x.npy"), ref.x.raw_data)
    assert not os.path.exists(tmp_path / "com_divergence.npy")


def test_helper_pieces(ds):
    helper = COMAnalysis.get_template_helper()(
        COMAnalysis(ds, {"cx": 8, "cy": 7, "r": 5, "ri": 1}).parameters
    )
    code = helper.get_analysis()
    assert code.startswith("com_analysis = ctx.create_com_analysis(dataset=ds, ")
    assert "mask_radius=5" in code and "mask_radius_inner=1" in code
    docs = helper.get_docs()
    assert docs.startswith("## Centre of mass") and "``" not in docs
    assert "import numpy as np" in helper.get_dependency()
    assert helper.get_roi() == "roi = None"
    assert helper.format_docs("T", "see :meth:`~x.y` and ``z``") == "## T\n\nsee `x.y` and `z`"
    with pytest.raises(NotImplementedError):
        GeneratorHelper({}).get_analysis()


def test_display(ctx, ds):
    from libertem.udf.stddev import StdDevUDF

    info = ctx.display(ds, StdDevUDF())
    rows = {r["name"]: r for r in info.rows}
    assert rows["std"]["shape"] == SIG and rows["std"]["kind"] == "sig"
    assert rows["num_frames"]["dtype"] == np.int64
    assert "std" in repr(info) and "<table>" in info._repr_html_()
    roi = np.zeros(NAV, dtype=bool)
    roi[0, :2] = True
    from libertem.udf.raw import PickUDF

    picked = ctx.display(ds, PickUDF(), roi=roi)
    assert picked.rows[0]["shape"] == (2, *SIG)


def test_run_type_errors(ctx, ds):
    with pytest.raises(TypeError, match="analysis"):
        ctx.run(object())
    buf = io.BytesIO()
    assert buf.getvalue() == b""


def test_radial_fourier_raw_results(inline_ctx, ds, data):
    job = inline_ctx.create_radial_fourier_analysis(
        ds, cx=8, cy=7, ri=0, ro=6, n_bins=3, max_order=4
    )
    res = inline_ctx.run(job)
    raw = res.raw_results
    assert raw.shape == (3, 5, *NAV) and raw.dtype.kind == "c"
    # the coefficients as summed; complex_b_k (k > 0) are normalised by |order 0|
    assert np.array_equal(raw[2, 0], res.complex_2_0.raw_data)
    assert np.array_equal(np.abs(raw[2, 3]), res.absolute_2_3.raw_data)
    spectrum = np.abs(raw).sum(axis=(2, 3))  # LiberTEM's scripting example
    assert spectrum.shape == (3, 5) and np.all(spectrum[:, 0] > spectrum[:, 1])
