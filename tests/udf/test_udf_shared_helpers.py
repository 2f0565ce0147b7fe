"""Behaviour that the phase-2 review of the engine and the libraries changed or made shared.

Each test compares against a plain NumPy computation (or a client package's own code).
"""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem import masks
from libertem.common.buffers import AuxBufferWrapper
from libertem.common.sparse import densify
from libertem.udf import partition_runner
from libertem.udf.base import UDF
from libertem.udf.com_fields import (
    curl_2d,
    divergence,
    divergence_and_curl,
    selection_factory,
)
from libertem.udf.data import MergeAttrMapping
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.runner import resolve_reporter
from libertem.udf.stddev import StdDevUDF, run_stddev
from libertem.udf.sum import SumUDF, sum_partials
from libertem.viz.base import result_shape
from libertem.viz.info import UDFInfo
from utils import load_mem, make_data, make_roi

# --- StdDevUDF counts frames per signal region, postprocess spreads them ----------------


@pytest.mark.parametrize("tileshape", [None, (3, 4, 16)], ids=["frames", "tiles"])
def test_stddev_num_frames_per_pixel(ctx, tileshape):
    data = make_data((6, 7, 16, 16), "float32", seed=3)
    roi = make_roi((6, 7), seed=4)
    ds = load_mem(ctx, data, num_partitions=4, tileshape=tileshape)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    n = int(roi.sum())
    assert res["num_frames"].data.shape == (16, 16)
    assert np.all(res["num_frames"].data == n)
    frames = data[roi].astype(np.float64)
    np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(res["mean"].data, frames.mean(axis=0), rtol=1e-6, atol=1e-6)
    consolidated = run_stddev(ctx, ds, roi=roi)
    assert consolidated["num_frames"] == n
    np.testing.assert_allclose(consolidated["std"], frames.std(axis=0), rtol=1e-6, atol=1e-6)


def test_stddev_postprocess_writes_region_counts():
    udf = StdDevUDF()

    class _Results:
        num_frames = np.zeros((4, 6), dtype=np.int64)

    udf.results = _Results()
    udf.task_data = type("TD", (), {})()
    udf.task_data.regions = {0: [5, np.s_[0:4, 0:3]], 1: [2, np.s_[0:4, 3:6]]}
    udf.postprocess()
    assert np.all(_Results.num_frames[:, :3] == 5) and np.all(_Results.num_frames[:, 3:] == 2)


# --- masks match LiberTEM's definition (as copied into libertem_blobfinder) -------------


def test_circular_and_ring_match_client_package():
    from libertem_blobfinder.base import masks as reference

    rng = np.random.default_rng(11)
    for _ in range(40):
        cx, cy = rng.uniform(-3, 20, size=2)
        r = rng.uniform(0, 12)
        ri = rng.uniform(0, r)
        ours = masks.circular(cx, cy, 17, 13, r)
        assert ours.dtype == bool
        assert np.array_equal(ours, reference.circular(cx, cy, 17, 13, r))
        ring = masks.ring(cx, cy, 17, 13, r, ri)
        assert ring.dtype == bool
        assert np.array_equal(ring, reference.ring(cx, cy, 17, 13, r, ri))
    # on the boundary: the pixel at distance exactly sqrt(2) from (0, 0)
    assert masks.circular(0, 0, 3, 3, np.sqrt(2))[1, 1]


# --- centre of mass helpers shared by CoMUDF and COMAnalysis ----------------------------


def test_selection_factory_disk_and_ring():
    disk = selection_factory(5.0, 6.0, 12, 14, 4)()
    assert np.array_equal(disk, masks.circular(6.0, 5.0, 14, 12, 4))
    ring = selection_factory(5.0, 6.0, 12, 14, 4, 2)()
    assert np.array_equal(ring, masks.ring(6.0, 5.0, 14, 12, 4, 2))
    assert np.array_equal(selection_factory(5.0, 6.0, 12, 14, 4, None)(), disk)


@pytest.mark.parametrize("shape", [(7,), (5, 6), (2, 3, 4)])
def test_divergence_and_curl(shape):
    rng = np.random.default_rng(2)
    y, x = rng.normal(size=shape), rng.normal(size=shape)
    div, curl = divergence_and_curl(y, x)
    if len(shape) == 2:
        assert np.allclose(div, divergence(y, x)) and np.allclose(curl, curl_2d(y, x))
        assert np.allclose(div, np.gradient(y, axis=0) + np.gradient(x, axis=1))
    else:
        assert div.shape == curl.shape == shape
        assert not div.any() and not curl.any()


def test_com_udf_and_analysis_agree_on_line_scan(inline_ctx):
    from libertem.udf.com import CoMUDF

    # both need a 2D scan; a line is a scan with one row
    data = make_data((1, 9, 12, 12), "float32", seed=5)
    ds = load_mem(inline_ctx, data, sig_dims=2, num_partitions=2)
    udf_res = inline_ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=6, cx=6, r=4))
    ana = inline_ctx.run(inline_ctx.create_com_analysis(ds, cx=6, cy=6, mask_radius=4))
    # CoMUDF computes in float32; the analysis applies its float64 moment masks in float64
    assert np.allclose(udf_res["field_y"].data, ana.y.raw_data, atol=1e-5, equal_nan=True)
    # the analysis leaves divergence and curl out; the UDF differentiates along the row
    assert "divergence" not in ana.keys()
    expected = np.gradient(ana.x.raw_data, axis=1)
    assert np.allclose(udf_res["divergence"].data, expected, rtol=1e-5, atol=1e-6)


# --- small shared helpers ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_densify():
    dense = np.arange(6.0).reshape(2, 3)
    assert densify(dense) is dense
    for value in (sparse.COO.from_numpy(dense), scipy.sparse.csr_matrix(dense), np.matrix(dense)):
        out = densify(value)
        assert type(out) is np.ndarray and np.array_equal(out, dense)


def test_sum_partials_adds_without_changing_parts():
    parts = {
        i: MergeAttrMapping({"a": np.full(3, i + 1.0), "b": np.full(2, 10.0 * i)})
        for i in range(3)
    }
    merged = sum_partials(parts, "a", "b")
    assert np.array_equal(merged["a"], np.full(3, 6.0))
    assert np.array_equal(merged["b"], np.full(2, 30.0))
    assert np.array_equal(parts[0].a, np.full(3, 1.0))  # not in place
    merged = SumUDF().merge_all(parts_of("intensity", [1, 2]))
    assert np.array_equal(merged["intensity"], [3.0])


def parts_of(name, values):
    return {i: MergeAttrMapping({name: np.array([v])}) for i, v in enumerate(values)}


def test_aux_buffer_parts():
    values = np.arange(10.0).reshape(10, 1) * np.ones((1, 2))
    aux = UDF.aux_data(values, kind="nav", extra_shape=(2,), dtype=np.float64)
    roi = np.zeros(10, dtype=bool)
    roi[[1, 4, 5, 8]] = True

    class Part:
        start, stop = 3, 9

    part = aux.new_for_partition(Part(), roi)
    assert np.array_equal(part.raw_data, values[[4, 5, 8]])
    aux.bind_aux(0, 10, roi)
    assert np.array_equal(aux.raw_data, values[roi])
    aux.bind_aux(0, 10, None)
    assert np.array_equal(aux.raw_data, values)
    sig = UDF.aux_data(np.ones((3, 4), dtype=np.float32), kind="sig")
    assert isinstance(sig, AuxBufferWrapper)
    assert sig.new_for_partition(None, roi).raw_data.shape == (3, 4)


def test_result_shape_and_udf_info():
    buffers = {
        "n": UDF().buffer(kind="nav", extra_shape=(2,)),
        "s": UDF().buffer(kind="sig"),
        "one": UDF().buffer(kind="single"),
        "many": UDF().buffer(kind="single", extra_shape=(3, 4)),
    }
    shapes = {k: result_shape(b, (5, 6), (7, 8)) for k, b in buffers.items()}
    assert shapes == {"n": (5, 6, 2), "s": (7, 8), "one": (1,), "many": (3, 4)}
    info = UDFInfo("X", buffers, (5, 6), (7, 8))
    assert [r["shape"] for r in info.rows] == list(shapes.values())


def test_resolve_reporter():
    from libertem.common.progress import ProgressReporter, TQDMProgressReporter

    mine, default = ProgressReporter(), ProgressReporter()
    assert resolve_reporter(mine) is mine
    assert resolve_reporter(mine, default) is mine
    assert resolve_reporter(True, default) is default
    assert isinstance(resolve_reporter(True), TQDMProgressReporter)
    assert resolve_reporter(False, default) is None


# --- a tile converted to another dtype once for all UDFs that want it -------------------


def test_tile_converted_once_per_dtype(inline_ctx, monkeypatch):
    data = make_data((4, 5, 8, 8), "uint16", seed=7)
    ds = load_mem(inline_ctx, data, num_partitions=2)
    calls = []
    real = partition_runner._convert

    def counting(cache, tile_data, dtype, scheme):
        calls.append(np.dtype(dtype))
        return real(cache, tile_data, dtype, scheme)

    monkeypatch.setattr(partition_runner, "_convert", counting)
    ones = [lambda: np.ones((8, 8))]
    udfs = [
        SumUDF(dtype=np.float64),
        StdDevUDF(),
        ApplyMasksUDF(ones, preferred_dtype=np.float32),
        StdDevUDF(dtype=np.float32),
        SumUDF(dtype=np.float32),
    ]
    sums64, std, masked, std32, sums32 = inline_ctx.run_udf(dataset=ds, udf=udfs)
    ref = data.astype(np.float64)
    np.testing.assert_allclose(sums64["intensity"].data, ref.sum(axis=(0, 1)))
    np.testing.assert_allclose(sums32["intensity"].data, ref.sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(masked["intensity"].data[..., 0], ref.sum(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std["var"].data, ref.reshape(20, 8, 8).var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std32["var"].data, ref.reshape(20, 8, 8).var(axis=0), rtol=1e-4)
    # one conversion per tile and dtype (float32 serves two UDFs); the sums take native tiles
    assert calls.count(np.dtype(np.float64)) == calls.count(np.dtype(np.float32)) > 0
    assert set(calls) == {np.dtype(np.float64), np.dtype(np.float32)}


# --- imports: libertem.api loads the heavy parts on first use ---------------------------


def test_import_api_is_light():
    code = (
        "import sys, libertem.api\n"
        "heavy = ['numba', 'sparse', 'scipy.sparse', 'sparseconverter', 'dask',"
        " 'libertem.io.dataset', 'libertem.analysis.base']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_api_names_are_the_real_ones():
    import libertem.analysis
    import libertem.api as api
    from libertem.analysis.sum import SumAnalysis
    from libertem.common.sparse import to_dense
    from libertem.io.corrections.corrset import CorrectionSet
    from libertem.io.dataset import load
    from libertem.io.dataset.base import DataSet
    from libertem.udf.runner import UDFRunner

    assert api.SumAnalysis is SumAnalysis is libertem.analysis.SumAnalysis
    assert api.to_dense is to_dense and api.load is load and api.DataSet is DataSet
    assert api.CorrectionSet is CorrectionSet and api.UDFRunner is UDFRunner
    assert {"SumAnalysis", "load", "InlineJobExecutor"} <= set(dir(api))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        api.nothing  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        libertem.analysis.nothing  # noqa: B018


def test_backend_sets_come_from_sparseconverter():
    import sparseconverter

    assert UDF.BACKEND_ALL < sparseconverter.BACKENDS
    assert UDF().CPU_BACKENDS == sparseconverter.CPU_BACKENDS
    assert UDF.BACKEND_SCIPY_CSR in sparseconverter.BACKENDS
    names = ["NUMPY", "CUPY", "CUDA", "SPARSE_COO", "SCIPY_CSR_ARRAY", "CUPY_SCIPY_CSC"]
    from libertem.common import udf as common_udf

    assert all(getattr(common_udf, n) == getattr(sparseconverter, n) for n in names)


# --- analysis ROI and export through RecordUDF ------------------------------------------


def test_run_analysis_casts_non_boolean_roi(inline_ctx):
    data = make_data((3, 4, 8, 8), "float32")
    ds = load_mem(inline_ctx, data, num_partitions=2)
    roi = np.zeros((3, 4), dtype=int)
    roi[0, 1] = 3
    with pytest.warns(UserWarning, match="ROI dtype is int64, expected bool"):
        res = inline_ctx.run(inline_ctx.create_sum_analysis(ds), roi=roi)
    assert np.allclose(res.intensity.raw_data, data[0, 1])
    # the coordinates of one frame are a ROI, as for run_udf
    res = inline_ctx.run(inline_ctx.create_sum_analysis(ds), roi=(1, 2))
    assert np.allclose(res.intensity.raw_data, data[1, 2])


@pytest.mark.parametrize("use_roi", [False, True])
def test_export_npy_and_raw(ctx, tmp_path, use_roi):
    data = make_data((5, 6, 8, 8), "uint16", seed=9)
    ds = load_mem(ctx, data, num_partitions=3)
    roi = make_roi((5, 6), seed=10) if use_roi else None
    expected = data if roi is None else data[roi]
    npy = ctx.export_dataset(ds, tmp_path / "x.npy", roi=roi)
    loaded = np.load(npy)
    assert loaded.dtype == data.dtype and np.array_equal(loaded, expected)
    raw = ctx.export_dataset(ds, tmp_path / "x.bin", roi=roi, format="raw")
    assert np.array_equal(np.fromfile(raw, dtype=data.dtype).reshape(expected.shape), expected)


def test_lazy_names_helper():
    from libertem.common.lazy import lazy_names

    getattr_, dir_ = lazy_names("libertem.common.lazy", {"sqrt": "math", "gone": "math"})
    assert getattr_("sqrt")(9.0) == 3.0
    assert {"sqrt", "lazy_names"} <= set(dir_())
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        getattr_("other")
    with pytest.raises(AttributeError):  # listed, but the module has no such name
        getattr_("gone")
    import libertem.common.container as container
    from libertem.io.dataset.base import TilingScheme

    assert container.TilingScheme is TilingScheme


def test_is_cupy_backend():
    import numpy

    from libertem.common.backend import get_array_module, is_cupy_backend

    assert is_cupy_backend("cupy") and is_cupy_backend("cupyx.scipy.sparse.csr_matrix")
    assert not any(is_cupy_backend(b) for b in ("numpy", "cuda", "sparse.COO", None))
    assert get_array_module("scipy.sparse.csr_matrix") is numpy
