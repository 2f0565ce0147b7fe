"""Worker processes that die during a run: the run ends with :class:`WorkerLostError`
(a :class:`UDFRunCancelled`) naming what happened, and the Context keeps working.

A dedicated local cluster (two CPU workers): its workers are killed on purpose.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from dask_shared import call_with_timeout, wait_until
from libertem.api import Context
from libertem.common.exceptions import UDFRunCancelled
from libertem.executor.dask import DaskJobExecutor, WorkerLostError, cluster_spec
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from utils import assert_ctx_works

MAIN_PID = os.getpid()


@pytest.fixture(scope="module")
def fault_ctx():
    spec = cluster_spec(cpus=range(2), cudas=[], has_cupy=False, num_service=0)
    executor = DaskJobExecutor.make_local(spec=spec)
    with Context(executor=executor) as ctx:
        yield ctx


class KillWorkerUDF(UDF):
    """Kills the worker process running it with ``signum`` (never this test process)."""

    def __init__(self, signum, main_pid=MAIN_PID, only_first=False):
        super().__init__(signum=signum, main_pid=main_pid, only_first=only_first)

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_partition(self, partition):
        first = self.meta.slice.origin[0] == 0
        if os.getpid() != self.params.main_pid and (first or not self.params.only_first):
            os.kill(os.getpid(), self.params.signum)
        self.results.s[:] = partition.sum(axis=(-1, -2))


DATA = np.arange(8 * 4 * 5 * 6, dtype=np.float32).reshape((8, 4, 5, 6))


def _workers(ctx) -> int:
    return len(ctx.executor.client.scheduler_info(n_workers=-1)["workers"])


def _run_killing(ctx, signum, only_first=False):
    ds = ctx.load("memory", data=DATA, sig_dims=2, num_partitions=4)

    def run():
        return ctx.run_udf(dataset=ds, udf=KillWorkerUDF(signum, only_first=only_first))

    _, exc, _ = call_with_timeout(run, timeout=120)
    return exc


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGBUS])
def test_all_workers_die(fault_ctx, signum):
    exc = _run_killing(fault_ctx, signum)
    assert isinstance(exc, WorkerLostError), repr(exc)
    assert isinstance(exc, UDFRunCancelled)
    text = str(exc)
    assert "died" in text and "partition" in text, text
    # right away: the next run waits for the workers the nannies bring back
    _, exc, _ = call_with_timeout(lambda: assert_ctx_works(fault_ctx), timeout=90)
    assert exc is None, repr(exc)
    assert wait_until(lambda: _workers(fault_ctx) == 2, timeout=60)
    assert_ctx_works(fault_ctx)


def test_one_worker_dies(fault_ctx):
    exc = _run_killing(fault_ctx, signal.SIGKILL, only_first=True)
    assert isinstance(exc, WorkerLostError), repr(exc)
    assert "partition [0, 8)" in str(exc), str(exc)  # the one it was processing
    # right away, before the lost worker is back: runs on the workers that are left
    res = fault_ctx.run_udf(
        dataset=fault_ctx.load("memory", data=DATA, sig_dims=2, num_partitions=4), udf=SumUDF()
    )
    np.testing.assert_allclose(res["intensity"].data, DATA.sum(axis=(0, 1)))
    assert wait_until(lambda: _workers(fault_ctx) == 2, timeout=60)
    assert_ctx_works(fault_ctx)
