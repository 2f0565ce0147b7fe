"""Every built-in UDF and the documentation's example UDFs on every executor.

One parametrized suite: each case runs on the inline, thread-pool, local Dask
cluster and delayed (dask.delayed graph) executors, with and without a ROI, on
integer and float data, and must give the same results as the inline executor:
bitwise equal for integer data (all sums are exact there), ``allclose`` for floats
and for results that go through transcendental functions.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.executor.delayed import DelayedJobExecutor
from libertem.udf import UDF
from libertem.udf.logsum import LogsumUDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.raw import PickUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_data, make_roi

SHAPE = (6, 7, 12, 10)
NAV, SIG = SHAPE[:2], SHAPE[2:]
NUM_PARTITIONS = 5
EXECUTORS = ["inline", "threads", "dask", "delayed"]
DTYPES = ["uint16", "float32"]


# --- the documentation's example UDFs, re-declared ---------------------------------------


class MaxUDF(UDF):
    def get_result_buffers(self):
        return {"maxbuf": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def preprocess(self):
        self.results.maxbuf[:] = -np.inf

    def process_frame(self, frame):
        self.results.maxbuf[:] = np.maximum(frame, self.results.maxbuf)

    def merge(self, dest, src):
        dest.maxbuf[:] = np.maximum(dest.maxbuf, src.maxbuf)


class SumOverSig(UDF):
    def get_result_buffers(self):
        return {"pixelsum": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.pixelsum[:] = np.sum(frame)


class MyParamUDF(UDF):
    def __init__(self, my_param=None):
        if my_param is None:
            my_param = "Eins, zwei drei!"
        super().__init__(my_param=my_param)

    def get_result_buffers(self):
        return {"demo": self.buffer(kind="single", dtype=object)}

    def process_frame(self, frame):
        self.results.demo[:] = self.params.my_param

    def merge(self, dest, src):
        dest.demo[:] = src.demo


class PixelsumUDF(UDF):
    def get_result_buffers(self):
        if self.meta.roi is not None:
            navsize = np.count_nonzero(self.meta.roi)
        else:
            navsize = np.prod(self.meta.dataset_shape.nav)
        return {
            "pixelsum_nav_raw": self.buffer(
                kind="single",
                dtype=self.meta.dataset_dtype,
                extra_shape=(navsize,),
            )
        }

    def merge(self, dest, src):
        dest["pixelsum_nav_raw"][:] += src["pixelsum_nav_raw"]

    def process_frame(self, frame):
        np_slice = self.meta.slice.get(nav_only=True)
        self.results.pixelsum_nav_raw[np_slice] = np.sum(frame)


class MySumUDF(UDF):
    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        self.results.intensity[:] += np.sum(tile, axis=0)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity


class MySumMergeUDF(MySumUDF):
    def merge_all(self, ordered_results):
        chunks = [b.intensity for b in ordered_results.values()]
        stack = np.stack(chunks)
        intensity = stack.sum(axis=0)
        return {"intensity": intensity}


# --- cases ---------------------------------------------------------------------------------

_MASKS = np.stack(
    [
        np.ones(SIG, dtype=np.float32),
        (np.arange(np.prod(SIG)).reshape(SIG) % 3 == 0).astype(np.float32),
        np.eye(*SIG, dtype=np.float32),
    ]
)


def _mask(i):
    return lambda: _MASKS[i]


def _sparse_mask(i):
    return lambda: scipy.sparse.csr_matrix(_MASKS[i])


def _frame_feature(frame):
    return np.array([frame.sum(), frame.max()], dtype=np.float64)


# name -> (make UDF or None for ctx.map, result names compared exactly on integer data)
CASES = {
    "SumUDF": (SumUDF, None),
    "SumSigUDF": (SumSigUDF, None),
    "ApplyMasksUDF-dense": (
        lambda: ApplyMasksUDF(mask_factories=[_mask(0), _mask(1), _mask(2)]),
        None,
    ),
    "ApplyMasksUDF-sparse": (
        lambda: ApplyMasksUDF(
            mask_factories=[_sparse_mask(0), _sparse_mask(1), _sparse_mask(2)],
            use_sparse="scipy.sparse",
        ),
        None,
    ),
    "StdDevUDF": (StdDevUDF, {"num_frames", "sum"}),
    "LogsumUDF": (LogsumUDF, set()),
    "PickUDF": (PickUDF, None),
    "AutoUDF-map": (None, None),
    "MaxUDF": (MaxUDF, None),
    "SumOverSig": (SumOverSig, None),
    "MyParamUDF": (lambda: MyParamUDF(my_param=42), None),
    "PixelsumUDF": (PixelsumUDF, None),
    "MySumUDF": (MySumUDF, None),
    "MySumMergeUDF": (MySumMergeUDF, None),
}


def _data(dtype):
    if np.dtype(dtype).kind == "u":
        # small values: every sum (also in a uint16 buffer) is exact
        rng = np.random.default_rng(7)
        return rng.integers(0, 256, size=SHAPE).astype(dtype)
    return make_data(SHAPE, dtype, seed=7)


def _roi(use_roi):
    if not use_roi:
        return None
    return make_roi(NAV, seed=8)


def _run(ctx, case, dtype, use_roi):
    """Run ``case``; return a dict name -> result array (``.data``)."""
    make, _ = CASES[case]
    ds = ctx.load("memory", data=_data(dtype), sig_dims=2, num_partitions=NUM_PARTITIONS)
    roi = _roi(use_roi or case == "PickUDF")
    if make is None:
        buf = ctx.map(dataset=ds, f=_frame_feature, roi=roi)
        return {"result": np.asarray(buf.data)}
    res = ctx.run_udf(dataset=ds, udf=make(), roi=roi)
    return {name: np.asarray(buf.data) for name, buf in res.items()}


_reference_cache: dict = {}


def _reference(inline_ctx, case, dtype, use_roi):
    key = (case, dtype, use_roi)
    if key not in _reference_cache:
        _reference_cache[key] = _run(inline_ctx, case, dtype, use_roi)
    return _reference_cache[key]


# --- executors -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def matrix_dask_ctx():
    """A Context on the shared local Dask cluster (2 CPU workers); closed at the end."""
    executor = acquire_cluster()
    ctx = Context(executor=executor)
    yield ctx
    release_cluster()


@pytest.fixture(scope="session")
def matrix_delayed_ctx():
    ctx = Context(executor=DelayedJobExecutor())
    yield ctx
    ctx.close()


@pytest.fixture
def executor_ctx(request, inline_ctx, threads_ctx):
    name = request.param
    if name == "inline":
        return inline_ctx
    if name == "threads":
        return threads_ctx
    return request.getfixturevalue(f"matrix_{name}_ctx")


def _assert_same(actual: dict, expected: dict, exact: bool, case: str):
    assert set(actual) == set(expected), (case, sorted(actual), sorted(expected))
    for name, exp in expected.items():
        act = actual[name]
        assert act.shape == exp.shape, (case, name, act.shape, exp.shape)
        if exp.dtype == object:
            assert act.tolist() == exp.tolist(), (case, name)
            continue
        assert act.dtype == exp.dtype, (case, name, act.dtype, exp.dtype)
        if exact:
            assert np.array_equal(act, exp, equal_nan=exp.dtype.kind in "fc"), (case, name)
        else:
            np.testing.assert_allclose(act, exp, rtol=1e-5, atol=1e-6, err_msg=f"{case}/{name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("executor_ctx", EXECUTORS, indirect=True)
def test_same_results_as_inline(executor_ctx, inline_ctx, case, use_roi, dtype):
    expected = _reference(inline_ctx, case, dtype, use_roi)
    actual = _run(executor_ctx, case, dtype, use_roi)
    exact_names = CASES[case][1]
    for name in expected:
        exact = dtype == "uint16" and (exact_names is None or name in exact_names)
        _assert_same({name: actual[name]}, {name: expected[name]}, exact, case)
    assert set(actual) == set(expected)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_inline_reference_matches_numpy(inline_ctx, use_roi):
    """The baseline itself is right: a few results against plain numpy."""
    data = _data("uint16").astype(np.float32)
    roi = _roi(use_roi)
    sel = np.ones(NAV, dtype=bool) if roi is None else roi
    res = _reference(inline_ctx, "SumUDF", "uint16", use_roi)
    assert np.array_equal(res["intensity"], data[sel].sum(axis=0))
    res = _reference(inline_ctx, "SumSigUDF", "uint16", use_roi)
    assert np.array_equal(res["intensity"][sel], data.sum(axis=(2, 3))[sel])
    res = _reference(inline_ctx, "ApplyMasksUDF-dense", "uint16", use_roi)
    expected = np.einsum("ijkl,mkl->ijm", data, _MASKS)
    assert np.array_equal(res["intensity"][sel], expected[sel])
    res = _reference(inline_ctx, "MaxUDF", "uint16", use_roi)
    assert np.array_equal(res["maxbuf"], data[sel].max(axis=0))
    res = _reference(inline_ctx, "PixelsumUDF", "uint16", use_roi)
    assert np.array_equal(res["pixelsum_nav_raw"], data[sel].sum(axis=(1, 2)).astype(np.uint16))
    res = _reference(inline_ctx, "MyParamUDF", "uint16", use_roi)
    assert res["demo"][0] == 42
