"""Array backends: which backend each UDF gets, tile conversion, sparse in-memory data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import sparse
import sparseconverter
from hypothesis import given
from hypothesis import strategies as st

from libertem.common.exceptions import UDFException
from libertem.udf import UDF
from libertem.udf.backends import (
    as_backend_set,
    choose_backend,
    choose_read_backend,
    convert_like,
    get_resources_for_backends,
)

NAV, SIG = (4, 6), (8, 12)
CPU_SPARSE_ND = ("sparse.COO", "sparse.GCXS", "sparse.DOK")
CPU_D2 = (
    "scipy.sparse.csr_matrix",
    "scipy.sparse.csc_matrix",
    "scipy.sparse.coo_matrix",
    "scipy.sparse.csr_array",
    "scipy.sparse.csc_array",
    "scipy.sparse.coo_array",
    "numpy.matrix",
)


@pytest.fixture(scope="module")
def dense():
    rng = np.random.default_rng(5)
    return ((rng.random(NAV + SIG) < 0.2) * rng.integers(1, 9, NAV + SIG)).astype(np.float32)


class SumsUDF(UDF):
    """Frame sums and the sum frame, for any backend; records the tile's backend."""

    def __init__(self, backends=("numpy",), tiny=False):
        super().__init__(backends=backends, tiny=tiny)

    def get_backends(self):
        return self.params.backends

    def get_tiling_preferences(self):
        if self.params.tiny:
            return {"depth": 3, "total_size": 4 * 3 * 4 * 12}
        return super().get_tiling_preferences()

    def get_result_buffers(self):
        return {
            "frames": self.buffer(kind="nav", dtype="float64"),
            "sigsum": self.buffer(kind="sig", dtype="float64"),
            "backend_ok": self.buffer(kind="nav", dtype=bool),
        }

    def process_tile(self, tile):
        backend = sparseconverter.get_backend(tile)
        self.results.backend_ok[:] = backend == self.meta.array_backend or (
            self.meta.array_backend == "cuda" and backend == "numpy"
        )
        if isinstance(tile, sparse.DOK):  # DOK cannot reduce
            tile = sparse.COO(tile)
        sums = tile.sum(axis=tuple(range(1, len(tile.shape))))
        self.results.frames[:] += self.forbuf(sums, self.results.frames).reshape(-1)
        self.results.sigsum[:] += self.forbuf(tile.sum(axis=0), self.results.sigsum)

    def merge(self, dest, src):
        dest.frames[:] = src.frames
        dest.backend_ok[:] = src.backend_ok
        dest.sigsum[:] += src.sigsum


def _check(res, dense, roi=None):
    frames = dense.sum(axis=(2, 3))
    sigsum = dense[roi].sum(axis=0) if roi is not None else dense.sum(axis=(0, 1))
    if roi is None:
        assert np.allclose(res["frames"].data, frames)
    else:
        assert np.allclose(res["frames"].raw_data, frames[roi])
    assert np.allclose(res["sigsum"].data, sigsum)
    assert np.all(res["backend_ok"].raw_data)


def test_constants_and_sets():
    assert UDF.BACKEND_NUMPY == "numpy" and UDF.BACKEND_CUPY == "cupy"
    assert UDF.BACKEND_CUDA == "cuda"
    assert UDF.BACKEND_SPARSE_GCXS == "sparse.GCXS" and UDF.BACKEND_SPARSE_DOK == "sparse.DOK"
    assert UDF.BACKEND_SCIPY_CSC_ARRAY == "scipy.sparse.csc_array"
    assert UDF.BACKEND_CUPY_SCIPY_COO == "cupyx.scipy.sparse.coo_matrix"
    # LiberTEM 0.16: all of sparseconverter's backends except cuda, numpy.matrix, sparse.DOK
    assert UDF.BACKEND_ALL == sparseconverter.BACKENDS - {"cuda", "numpy.matrix", "sparse.DOK"}
    assert len(UDF.BACKEND_ALL) == 13
    assert UDF.CPU_BACKENDS | UDF.CUDA_BACKENDS >= UDF.BACKEND_ALL
    assert UDF.BACKEND_SCIPY_CSR in UDF.SPARSE_BACKENDS & UDF.D2_BACKENDS
    assert UDF.BACKEND_NUMPY in UDF.DENSE_BACKENDS
    assert UDF().get_backends() == ("numpy",)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", ("numpy",) + CPU_SPARSE_ND + CPU_D2)
def test_dense_data_each_backend(ctx, dense, backend):
    ds = ctx.load("memory", data=dense, sig_dims=2, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumsUDF(backends=(backend,)))
    _check(res, dense)


@pytest.mark.parametrize("fmt", ["COO", "GCXS", "DOK"])
@pytest.mark.parametrize("backend", ("numpy",) + CPU_SPARSE_ND + CPU_D2[:2])
def test_pydata_sparse_data(ctx, dense, fmt, backend):
    data = getattr(sparse, fmt).from_numpy(dense)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    assert ds.array_backends == (f"sparse.{fmt}",)
    _check(ctx.run_udf(dataset=ds, udf=SumsUDF(backends=(backend,))), dense)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_scipy_data(ctx, dense, kind):
    data = getattr(scipy.sparse, kind)(dense.reshape((-1, int(np.prod(SIG)))))
    ds = ctx.load("memory", data=data, nav_shape=NAV, sig_shape=SIG)
    assert tuple(ds.shape) == NAV + SIG
    assert ds.array_backends == (f"scipy.sparse.{kind}",)
    for backends in [("numpy",), ("sparse.COO",), (f"scipy.sparse.{kind}",)]:
        _check(ctx.run_udf(dataset=ds, udf=SumsUDF(backends=backends)), dense)


def test_scipy_data_without_sig_shape_is_1d(ctx, dense):
    data = scipy.sparse.csr_matrix(dense.reshape((-1, 96)))
    ds = ctx.load("memory", data=data)
    assert tuple(ds.shape) == (24, 96)


@pytest.mark.parametrize("fmt", ["dense", "COO", "GCXS"])
def test_roi_tiny_tiles_and_sync_offset(ctx, dense, fmt):
    data = dense if fmt == "dense" else getattr(sparse, fmt).from_numpy(dense)
    roi = np.zeros(NAV, dtype=bool)
    roi[0, 1:4] = roi[2:, ::2] = True
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    for backend in ("numpy", "sparse.COO", "scipy.sparse.csr_matrix"):
        res = ctx.run_udf(dataset=ds, udf=SumsUDF(backends=(backend,), tiny=True), roi=roi)
        _check(res, dense, roi)
    shifted = ctx.load("memory", data=data, sig_dims=2, sync_offset=3)
    expected = np.concatenate([dense.reshape((-1, *SIG))[3:], np.zeros((3, *SIG))])
    res = ctx.run_udf(dataset=shifted, udf=SumsUDF(backends=("sparse.COO",)))
    assert np.allclose(res["frames"].raw_data, expected.sum(axis=(1, 2)))


def test_no_conversion_for_numpy(ctx, dense):
    """Dense data reaches a NumPy UDF as views of the data: nothing converted."""

    class ViewUDF(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"shares": self.buffer(kind="nav", dtype=bool)}

        def process_tile(self, tile):
            self.results.shares[:] = np.shares_memory(tile, self.params.data)

    ds = ctx.load("memory", data=dense, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=ViewUDF(data=dense))
    assert res["shares"].data.all()


def test_prefers_the_datasets_backend(ctx, dense):
    ds = ctx.load("memory", data=sparse.COO.from_numpy(dense), sig_dims=2)

    class Rec(SumsUDF):
        def get_result_buffers(self):
            return {**super().get_result_buffers(), "coo": self.buffer(kind="nav", dtype=bool)}

        def process_tile(self, tile):
            self.results.coo[:] = isinstance(tile, sparse.COO)
            super().process_tile(tile)

        def merge(self, dest, src):
            super().merge(dest, src)
            dest.coo[:] = src.coo

    res = ctx.run_udf(dataset=ds, udf=Rec(backends=("numpy", "sparse.GCXS", "sparse.COO")))
    assert res["coo"].data.all()


def test_several_udfs_different_backends(ctx, dense):
    ds = ctx.load("memory", data=sparse.GCXS.from_numpy(dense), sig_dims=2, num_partitions=2)
    udfs = [
        SumsUDF(backends=("numpy",)),
        SumsUDF(backends=("sparse.COO",)),
        SumsUDF(backends=("scipy.sparse.csc_matrix",)),
        SumsUDF(backends=("sparse.GCXS",), tiny=True),
    ]
    for res in ctx.run_udf(dataset=ds, udf=udfs):
        _check(res, dense)


def test_array_backends_of_memory_dataset(ctx, dense):
    coo = sparse.COO.from_numpy(dense)
    ds = ctx.load("memory", data=coo, sig_dims=2, array_backends=("sparse.GCXS", "numpy"))
    assert ds.array_backends == ("sparse.GCXS", "numpy")
    part = list(ds.get_partitions())[0]
    from libertem.io.dataset.base import TilingScheme

    scheme = TilingScheme.make_for_shape((2, *SIG), ds.shape)
    tile = next(iter(part.get_tiles(scheme, "float32")))
    assert isinstance(tile.data, sparse.GCXS)
    tile = next(iter(part.get_tiles(scheme, "float32", array_backend="numpy")))
    assert isinstance(tile.data, np.ndarray)
    _check(ctx.run_udf(dataset=ds, udf=SumsUDF(backends=("numpy",))), dense)
    with pytest.raises(Exception, match="array backend"):
        ctx.load("memory", data=coo, sig_dims=2, array_backends=("tensorflow",))


def test_meta_and_xp(ctx, dense):
    class MetaUDF(UDF):
        def get_backends(self):
            return self.BACKEND_SPARSE_COO  # a single name works too

        def get_result_buffers(self):
            assert self.meta.array_backend == "sparse.COO"
            return {"ok": self.buffer(kind="nav", dtype=bool)}

        def process_tile(self, tile):
            self.results.ok[:] = (
                self.meta.device_class == "cpu" and self.xp is np and isinstance(tile, sparse.COO)
            )

    ds = ctx.load("memory", data=dense, sig_dims=2)
    assert ctx.run_udf(dataset=ds, udf=MetaUDF())["ok"].data.all()


def test_restricting_backends(ctx, dense):
    ds = ctx.load("memory", data=sparse.COO.from_numpy(dense), sig_dims=2)
    udf = SumsUDF(backends=("numpy", "sparse.COO"))
    res = ctx.run_udf(dataset=ds, udf=udf, backends=("numpy",))
    _check(res, dense)
    with pytest.raises(UDFException, match="sparse.COO"):
        ctx.run_udf(dataset=ds, udf=SumsUDF(backends=("numpy",)), backends=("sparse.COO",))
    with pytest.raises(UDFException, match="unknown array backend"):
        ctx.run_udf(dataset=ds, udf=SumsUDF(backends=("numpy", "tensorflow")))
    with pytest.raises(UDFException, match="CUDA"):
        ctx.run_udf(dataset=ds, udf=SumsUDF(backends=("cupy",)))


def test_forbuf_and_convert_like():
    target = np.zeros((3, 4))
    coo = sparse.COO.from_numpy(np.eye(3, 4))
    assert isinstance(UDF().forbuf(coo, target), np.ndarray)
    csr = scipy.sparse.csr_matrix(np.arange(12.0).reshape((3, 4)))
    out = convert_like(csr.sum(axis=1), np.zeros(3))
    assert type(out) is np.ndarray and np.array_equal(out, [6, 22, 38])
    assert convert_like(target, target) is target
    assert isinstance(convert_like(np.ones((3, 4)), coo), sparse.COO)


def test_choice_and_resources():
    dense = frozenset({"numpy"})
    assert choose_backend(("numpy", "cupy"), None, "cpu", dense) == ("cpu", "numpy", "numpy")
    assert choose_backend(("numpy", "cupy"), None, "cuda", dense)[:2] == ("cuda", "cupy")
    assert choose_backend(("numpy", "cuda"), None, "cuda", dense)[:2] == ("cuda", "cuda")
    assert choose_backend(("numpy",), None, "cuda", dense)[:2] == ("cpu", "numpy")
    coo = frozenset({"sparse.COO"})
    assert choose_backend(("numpy", "sparse.COO"), None, "cpu", coo)[1] == "sparse.COO"
    assert choose_backend(("numpy", "sparse.COO"), ("numpy",), "cpu", coo)[1] == "numpy"
    assert choose_read_backend(frozenset({"numpy", "sparse.COO"}), ["sparse.COO"]) == "sparse.COO"
    assert get_resources_for_backends([("numpy",)], None) == {"CPU": 1, "compute": 1}
    assert get_resources_for_backends([("numpy", "cupy")], None) == {"compute": 1}
    assert get_resources_for_backends([("cupy",)], None) == {"CUDA": 1, "compute": 1, "ndarray": 1}
    assert get_resources_for_backends([("cuda",)], None) == {"CUDA": 1, "compute": 1}
    assert get_resources_for_backends([("numpy", "cupy")], ("cupy",))["CUDA"] == 1
    with pytest.raises(UDFException, match="no single kind"):
        get_resources_for_backends([("numpy",), ("cupy",)], None)
    with pytest.raises(UDFException):
        as_backend_set(("numpy", "tpu"))


@given(
    depth=st.integers(1, 5),
    rows=st.integers(1, SIG[0]),
    fmt=st.sampled_from(["COO", "GCXS"]),
    backend=st.sampled_from(["numpy", "sparse.COO", "scipy.sparse.csr_matrix", "sparse.GCXS"]),
    roi_bits=st.integers(0, 2 ** (NAV[0] * NAV[1]) - 1),
)
def test_sparse_tiles_property(inline_ctx, depth, rows, fmt, backend, roi_bits):
    """Any tile shape, ROI and backend: results equal numpy on the dense data."""
    rng = np.random.default_rng(depth * 31 + rows)
    dense = (rng.random(NAV + SIG) < 0.3).astype(np.float32)
    roi = np.array([(roi_bits >> i) & 1 for i in range(NAV[0] * NAV[1])], dtype=bool)
    roi = roi.reshape(NAV)
    if not roi.any():
        roi[0, 0] = True

    class Tiny(SumsUDF):
        def get_tiling_preferences(self):
            return {"depth": depth, "total_size": depth * rows * SIG[1] * 4}

    ds = inline_ctx.load(
        "memory", data=getattr(sparse, fmt).from_numpy(dense), sig_dims=2, num_partitions=3
    )
    _check(inline_ctx.run_udf(dataset=ds, udf=Tiny(backends=(backend,)), roi=roi), dense, roi)
