"""HDF5 datasets: contiguous, chunked and compressed, every frame against h5py."""

import h5py
import numpy as np
import pytest

from libertem.exceptions import DataSetException
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (3, 5), (16, 16)
LAYOUTS = {
    "contiguous": {},
    "chunk-frames": {"chunks": (1, 2, 16, 16)},
    "chunk-rows": {"chunks": (2, 5, 16, 16)},
    "chunk-odd": {"chunks": (1, 4, 16, 16)},
    "gzip": {"chunks": (2, 2, 8, 16), "compression": "gzip"},
    "lzf-shuffle": {"chunks": (1, 1, 16, 16), "compression": "lzf", "shuffle": True},
}


def write(path, layout, dtype=">u2", seed=0):
    data = np.random.default_rng(seed).integers(0, 4000, size=(*NAV, *SIG)).astype(dtype)
    with h5py.File(path, "w") as f:
        f.create_dataset("meta/small", data=np.zeros((2, 2, 2)))
        f.create_dataset("entry/data", data=data, **LAYOUTS[layout])
    with h5py.File(path, "r") as f:
        return f["entry/data"][()]


def shifted(flat, offset):
    out = np.zeros_like(flat)
    idx = np.arange(flat.shape[0]) + offset
    ok = (idx >= 0) & (idx < flat.shape[0])
    out[ok] = flat[idx[ok]]
    return out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_frame(tmp_path, ctx, layout):
    path = str(tmp_path / "d.h5")
    ref = write(path, layout).reshape(-1, *SIG)
    ds = ctx.load("hdf5", path=path, num_partitions=2)
    assert ds.ds_path == "entry/data" and tuple(ds.shape) == (*NAV, *SIG)
    assert ds.dtype == np.dtype("uint16")
    roi = np.ones(NAV, dtype=bool)
    np.testing.assert_array_equal(
        ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data, ref
    )
    roi = np.random.default_rng(2).random(NAV) > 0.5
    np.testing.assert_array_equal(
        ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data, ref[roi.ravel()]
    )
    s, ss = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(s["intensity"].raw_data, ref.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ss["intensity"].raw_data, ref.sum(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize("offset", [3, -4])
@pytest.mark.parametrize("layout", ["contiguous", "chunk-rows", "gzip"])
def test_sync_offset_and_reshape(tmp_path, threads_ctx, layout, offset):
    path = str(tmp_path / "d.h5")
    ref = write(path, layout).reshape(-1, *SIG)
    for backend in ("mmap", "buffered"):
        ds = threads_ctx.load(
            "hdf5", path=path, ds_path="entry/data", sync_offset=offset, io_backend=backend
        )
        roi = np.ones(NAV, dtype=bool)
        got = threads_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
        np.testing.assert_array_equal(got, shifted(ref, offset))
    ds = threads_ctx.load("hdf5", path=path, nav_shape=(2, 4), sig_shape=(8, 32))
    got = threads_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.ones((2, 4), bool))
    np.testing.assert_array_equal(got["intensity"].raw_data, ref[:8].reshape(8, 8, 32))


def test_3d_and_auto(tmp_path, inline_ctx):
    path = str(tmp_path / "s.h5")
    data = np.arange(7 * 4 * 6, dtype=np.float32).reshape(7, 4, 6)
    with h5py.File(path, "w") as f:
        f["stack"] = data
    ds = inline_ctx.load("auto", path=path)
    # detection folds the navigation axes to 2D, as LiberTEM does: (7,) -> (1, 7)
    assert type(ds).__name__ == "H5DataSet" and tuple(ds.shape) == (1, 7, 4, 6)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].raw_data
    np.testing.assert_allclose(res, data.sum(axis=0))


def test_errors(tmp_path, inline_ctx):
    def fails(match, **kw):
        with pytest.raises(DataSetException, match=match) as e:
            inline_ctx.load("hdf5", **kw)
        return e

    e = fails("no such file", path=str(tmp_path / "missing.h5"))
    assert "missing.h5" in str(e.value)
    path = str(tmp_path / "d.h5")
    write(path, "chunk-rows")
    fails("no dataset 'nope'", path=path, ds_path="nope")
    fails("not a dataset", path=path, ds_path="entry")
    # nav_shape may ask for more frames than stored (LiberTEM): those are never read
    assert tuple(inline_ctx.load("hdf5", path=path, nav_shape=(4, 5)).shape.nav) == (4, 5)
    fails("sig_shape", path=path, sig_shape=(3, 3))
    fails("sync_offset", path=path, sync_offset=15)
    fails("io_backend", path=path, io_backend="nope")
    empty = str(tmp_path / "e.h5")
    with h5py.File(empty, "w") as f:
        f["x"] = np.zeros((3, 3))
    fails(f"Unable to infer dataset from file {empty}", path=empty)
    with pytest.raises(DataSetException, match="Unable to infer dataset"):
        inline_ctx.load("auto", path=empty)
    trunc = str(tmp_path / "t.h5")
    with open(path, "rb") as f:
        blob = f.read()
    with open(trunc, "wb") as f:
        f.write(blob[:1000])
    e = fails("t.h5", path=trunc)
    noth5 = tmp_path / "n.h5"
    noth5.write_bytes(b"\x00" * 4096)
    fails("not an HDF5 file", path=str(noth5))
