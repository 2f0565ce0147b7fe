"""Zarr on the default Dask Context (the shared local cluster): partitions decode their
chunks in the worker processes, and exports are written from them."""

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.io.writers.results.zarr import read_results_zarr, write_results_zarr
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF


@pytest.fixture(scope="module")
def dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_zarr_on_dask(tmp_path, dask_ctx):
    ctx = dask_ctx
    data = np.random.default_rng(7).integers(0, 1000, (6, 8, 12, 10)).astype(np.uint16)
    path = str(tmp_path / "in.zarr")
    arr = zarr.create_array(
        store=path,
        shape=data.shape,
        dtype=data.dtype,
        chunks=(1, 4, 12, 10),
        compressors=ZstdCodec(level=3),
    )
    arr[...] = data
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert len(list(ds.get_partitions())) == 3
    flat = data.reshape(-1, 12, 10)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(res[0]["intensity"].raw_data, flat.sum(axis=0))
    np.testing.assert_allclose(res[1]["intensity"].raw_data, flat.sum(axis=(1, 2)))
    roi = np.random.default_rng(8).random((6, 8)) > 0.5
    picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_array_equal(picked, data[roi])
    summed = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_allclose(summed, data[roi].sum(axis=0))

    out = str(tmp_path / "out.zarr")
    ds5 = ctx.load("zarr", path=path, num_partitions=5)
    ctx.export_dataset(ds5, path=out)
    np.testing.assert_array_equal(zarr.open_array(out, mode="r")[...], data)
    sel = str(tmp_path / "sel.zarr")
    ctx.export_dataset(ds5, path=sel, roi=roi)
    np.testing.assert_array_equal(zarr.open_array(sel, mode="r")[...], data[roi])

    results = str(tmp_path / "res.zarr")
    write_results_zarr(res, results)
    back = read_results_zarr(results)
    np.testing.assert_allclose(back[0]["intensity"], flat.sum(axis=0))
