"""MemoryDataSet with LiberTEM 0.16's parameters, its partitions and its I/O backend."""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.memory import (
    MemBackend,
    MemBackendImpl,
    MemDatasetParams,
    MemoryDataSet,
    MemoryFile,
    MemPartition,
)
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (4, 5), (6, 8)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(4).random(NAV + SIG).astype(np.float32)


def test_positional_signature(data):
    ds = MemoryDataSet((2, 3, 8), 2, data)
    assert ds.get_num_partitions() == 2
    assert ds.get_base_shape() == (3, 8) and ds.get_preferred_depth() == 2
    assert ds.adjust_tileshape((5, 1, 1), None) == (2, 3, 8)  # forced, as in LiberTEM
    assert tuple(ds.tileshape) == (2, 3, 8)
    ds = MemoryDataSet(data=data, base_shape=(2, 4))
    assert ds.get_base_shape(None) == (2, 4)
    ds = MemoryDataSet(datashape=(3, 3, 4, 4))
    assert tuple(ds.shape) == (3, 3, 4, 4) and ds.dtype == np.float32


def test_sig_dims_and_shapes(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=3)
    assert tuple(ds.shape.sig) == (5, 6, 8)
    ds = ctx.load("memory", data=data, nav_shape=(20,), sig_shape=(48,))
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    assert np.allclose(res["intensity"].data, data.reshape((20, 48)).sum(axis=1))
    with pytest.raises(ValueError, match="Data size is not a multiple of sig shape"):
        ctx.load("memory", data=data, sig_shape=(7, 7))
    with pytest.raises(ValueError, match=r"Length of sig_shape \(48,\) not matching sig_dims 2"):
        ctx.load("memory", data=data, sig_shape=(48,), sig_dims=2)
    with pytest.raises(DataSetException, match="sig_dims"):
        ctx.load("memory", data=data, sig_dims=5)
    with pytest.raises(DataSetException, match="tileshape"):
        ctx.load("memory", data=data, tileshape=(1, 7, 8))


def test_tiledelay(inline_ctx, data, monkeypatch):
    import libertem.io.dataset.memory_read as memory_read

    sleeps = []
    monkeypatch.setattr(memory_read, "time", types.SimpleNamespace(sleep=sleeps.append))
    ds = inline_ctx.load("memory", data=data, tiledelay=0.01, num_partitions=1)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert sleeps and set(sleeps) == {0.01}  # a pause before each tile
    assert np.allclose(res["intensity"].data, data.sum(axis=(0, 1)))


class ShareUDF(UDF):
    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {"shares": self.buffer(kind="nav", dtype=bool)}

    def process_tile(self, tile):
        self.results.shares[:] = np.shares_memory(tile, self.params.data)


def test_force_need_decode_copies(ctx, data):
    ds = ctx.load("memory", data=data, force_need_decode=True)
    assert not ctx.run_udf(dataset=ds, udf=ShareUDF(data=data))["shares"].data.any()
    assert ds.need_decode(np.float32, None, None)
    plain = ctx.load("memory", data=data)
    assert ctx.run_udf(dataset=plain, udf=ShareUDF(data=data))["shares"].data.all()
    assert not plain.need_decode(np.float32, None, None)
    assert plain.need_decode(np.float64, None, None)


def test_check_cast(ctx):
    class IntUDF(UDF):
        def get_preferred_input_dtype(self):
            return np.int16

        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav", dtype="int64")}

        def process_tile(self, tile):
            self.results.s[:] = tile.sum(axis=(1, 2))

    whole = np.ones(NAV + SIG, dtype=np.float16) * 3
    ds = ctx.load("memory", data=whole)
    # float16 -> result_type(int16, float16) = float32: safe, all fine
    assert np.all(ctx.run_udf(dataset=ds, udf=IntUDF())["s"].data == 3 * 48)
    part = list(ds.get_partitions())[0]
    scheme = TilingScheme.make_for_shape((1, *SIG), ds.shape)
    tiles = list(part.get_tiles(scheme, np.int16))
    assert np.all(tiles[0].data == 3)
    fractions = MemoryDataSet(data=whole + 0.5)
    with pytest.raises(RuntimeError, match="unsafe cast"):
        list(list(fractions.get_partitions())[0].get_tiles(scheme, np.int16))
    unchecked = MemoryDataSet(data=whole + 0.5, check_cast=False)
    tiles = list(list(unchecked.get_partitions())[0].get_tiles(scheme, np.int16))
    assert tiles[0].data.dtype == np.int16


def test_sync_offset(ctx, data):
    flat = data.reshape((-1, *SIG))
    for offset in (3, -2):
        ds = ctx.load("memory", data=data, sync_offset=offset)
        res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
        expected = np.zeros(flat.shape[0])
        for i in range(flat.shape[0]):
            if 0 <= i + offset < flat.shape[0]:
                expected[i] = flat[i + offset].sum()
        assert np.allclose(res["intensity"].raw_data, expected)


def test_partitions_and_backend(data):
    ds = MemoryDataSet(data=data, num_partitions=3, tiledelay=0.0)
    parts = list(ds.get_partitions())
    assert all(isinstance(p, MemPartition) for p in parts)
    assert isinstance(parts[0].get_io_backend(), MemBackend)
    assert isinstance(ds.get_io_backend(), MemBackend)
    assert isinstance(MemBackend().get_impl(), MemBackendImpl)
    macro = parts[1].get_macrotile(dest_dtype=np.float64)
    frames = data.reshape((-1, *SIG))[parts[1].start : parts[1].stop]
    assert macro.data.dtype == np.float64 and np.allclose(macro.data, frames)
    key = ds.get_cache_key()
    assert key == ds.get_cache_key() and key != MemoryDataSet(data=data.copy()).get_cache_key()
    assert MemoryDataSet.get_msg_converter() is MemDatasetParams
    assert MemoryDataSet.detect_params(data, None)["parameters"]["data"] is data
    assert MemoryDataSet.detect_params("/some/path", None) is False


def test_mem_backend_impl_reads_memory_file(data):
    frames = data.reshape((-1, *SIG))
    file = MemoryFile(frames)
    assert file.data is frames and file.num_frames == frames.shape[0]
    ds_shape = Shape((frames.shape[0], *SIG), sig_dims=2)
    scheme = TilingScheme.make_for_shape((3, 3, 8), ds_shape)
    roi = np.zeros(frames.shape[0], dtype=bool)
    roi[[1, 5, 6, 7]] = True
    tiles = MemBackendImpl().get_tiles(
        None, scheme, FileSet([file]), None, roi, frames.dtype, np.float64, 0, None, None
    )
    out = np.zeros((4, *SIG))
    for tile in tiles:  # tiles may share a buffer: use each before the next
        out[tile.slice.get()] = tile.data
    assert np.allclose(out, frames[roi])
    coo = MemoryFile(sparse.COO.from_numpy(frames))
    tiles = list(
        MemBackendImpl().get_tiles(
            None, scheme, FileSet([coo]), None, None, frames.dtype, np.float32, 0, None, "numpy"
        )
    )
    assert sum(t.data.sum() for t in tiles) == pytest.approx(frames.sum(), rel=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        sparse.COO.from_numpy,
        lambda d: scipy.sparse.csr_matrix(d.reshape((20, 48))),
    ],
)
def test_sparse_input(ctx, data, make):
    dense = np.where(data > 0.8, data, 0).astype(np.float32)
    arr = make(dense)
    kwargs = {} if isinstance(arr, sparse.COO) else {"nav_shape": NAV, "sig_shape": SIG}
    ds = ctx.load("memory", data=arr, num_partitions=2, **kwargs)
    assert tuple(ds.shape) == NAV + SIG and ds.dtype == np.float32
    roi = np.zeros(NAV, dtype=bool)
    roi[1:3, 2:] = True
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    assert np.allclose(res["intensity"].data, dense[roi].sum(axis=0), rtol=1e-5)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    assert np.allclose(res["intensity"].data, dense.sum(axis=(2, 3)), rtol=1e-5)


def test_params_converter():
    import jsonschema

    params = MemDatasetParams()
    kwargs = params.to_python({"type": "MEMORY", "datashape": [2, 2, 4, 4], "num_partitions": 2})
    assert kwargs == {"datashape": (2, 2, 4, 4), "num_partitions": 2}
    assert tuple(MemoryDataSet(**kwargs).shape) == (2, 2, 4, 4)
    with pytest.raises(jsonschema.ValidationError):
        params.to_python({"type": "MEMORY", "num_partitions": 0})
