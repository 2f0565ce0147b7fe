"""The UDF library and an analysis on worker processes (the shared Dask cluster): the
UDFs, masks and files must survive pickling and separate processes."""

from __future__ import annotations

import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.udf.com import CoMUDF, RegressionOptions
from libertem.udf.record import RecordUDF
from libertem.udf.stddev import StdDevUDF


@pytest.fixture(scope="module")
def dask_ctx():
    executor = acquire_cluster()
    with Context(executor=executor) as ctx:
        yield ctx
    release_cluster()


def test_library_on_worker_processes(dask_ctx, tmp_path):
    rng = np.random.default_rng(61)
    data = rng.random((6, 7, 12, 14)).astype(np.float32)
    ds = dask_ctx.load("memory", data=data, num_partitions=4)
    path = tmp_path / "recorded.npy"
    com, std, _ = dask_ctx.run_udf(
        ds,
        [
            CoMUDF.with_params(cy=6, cx=7, r=5, regression=RegressionOptions.SUBTRACT_MEAN),
            StdDevUDF(),
            RecordUDF(path),
        ],
    )
    assert np.array_equal(np.load(path), data)
    assert np.allclose(std["std"].data, data.std(axis=(0, 1)), rtol=1e-5)
    ys, xs = np.mgrid[0:12, 0:14]
    mask = np.hypot(ys - 6, xs - 7) <= 5
    total = (data * mask).sum(axis=(2, 3))
    shift_y = (data * mask * ys).sum(axis=(2, 3)) / total - 6
    assert np.allclose(com["raw_shifts"].data[..., 0], shift_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(com["field_y"].data, shift_y - shift_y.mean(), rtol=1e-4, atol=1e-5)
    res = dask_ctx.run(dask_ctx.create_ring_analysis(ds, cx=7, cy=6, ri=2, ro=5))
    ring = (np.hypot(ys - 6, xs - 7) <= 5) & (np.hypot(ys - 6, xs - 7) > 2)
    assert np.allclose(res.intensity.raw_data, (data * ring).sum(axis=(2, 3)), rtol=1e-5)
