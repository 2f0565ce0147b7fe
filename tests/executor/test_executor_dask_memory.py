"""Many small runs on a Dask cluster do not grow the main process: partition data does
not stay behind in Dask's message logs (the long soak is ``bench/bench_soak.py``)."""

from __future__ import annotations

import gc
import os

import numpy as np
import psutil
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.udf.sum import SumUDF

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def memory_dask_ctx():
    executor = acquire_cluster()
    with Context(executor=executor) as ctx:
        yield ctx
    release_cluster()


def _rss() -> int:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss


def test_small_runs_do_not_grow_the_main_process(memory_dask_ctx):
    ctx = memory_dask_ctx
    # 1 MiB of frames in four partitions of 256 KiB: each would fit Dask's message log
    data = np.random.default_rng(3).random((16, 16, 32, 32), dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    expected = data.sum(axis=(0, 1))
    for _ in range(10):
        ctx.run_udf(dataset=ds, udf=SumUDF())
    before = _rss()
    workers_before = ctx.executor.run_each_worker(_rss)
    runs = 100
    for _ in range(runs):
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, expected, rtol=1e-5)
    grown = (_rss() - before) / MIB
    # carrying the data in every task message would leave ~1 MiB per run behind
    assert grown < 30, f"main process grew {grown:.1f} MiB over {runs} runs"
    workers_after = ctx.executor.run_each_worker(_rss)
    for name, rss in workers_after.items():
        if name in workers_before:
            assert (rss - workers_before[name]) / MIB < 30, (name, workers_before, rss)
