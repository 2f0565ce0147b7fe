"""Errors with the Dask executors: unreachable schedulers, unknown specs, failing UDFs
on workers, CUDA-only UDFs on clusters without CUDA; the cluster stays usable."""

from __future__ import annotations

import traceback

import numpy as np
import pytest

from dask_shared import acquire_cluster, call_with_timeout, release_cluster
from libertem.api import Context
from libertem.common.exceptions import ExecutorSpecException, UDFException
from libertem.executor.dask import DaskJobExecutor
from libertem.executor.delayed import DelayedJobExecutor
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from utils import assert_ctx_works


@pytest.fixture(scope="session")
def errors_dask_executor():
    executor = acquire_cluster()
    yield executor
    release_cluster()


@pytest.fixture
def dask_ctx(errors_dask_executor):
    with Context(executor=errors_dask_executor) as ctx:
        yield ctx


class FrobnicationError(Exception):
    """An exception type that only this test module knows."""


class FailingUDF(UDF):
    """Raises in ``process_frame`` on the frame with flat index ``fail_at``."""

    def __init__(self, fail_at=5):
        super().__init__(fail_at=fail_at)

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_frame(self, frame):
        index = self.meta.coordinates
        flat = int(np.ravel_multi_index(tuple(index[0]), self.meta.dataset_shape.nav))
        if flat == self.params.fail_at:
            raise FrobnicationError(f"cannot frobnicate frame {flat}")
        self.results.s[:] = frame.sum()


class FailingMergeUDF(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig")}

    def process_frame(self, frame):
        self.results.s[:] += frame

    def merge(self, dest, src):
        raise FrobnicationError("merge refused")


class CupyOnlyUDF(UDF):
    def get_backends(self):
        return ("cupy",)

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.s[:] = self.xp.sum(frame)


DATA = np.arange(6 * 5 * 4 * 3, dtype=np.float32).reshape((6, 5, 4, 3))


def _dataset(ctx):
    return ctx.load("memory", data=DATA, sig_dims=2, num_partitions=3)


def test_unreachable_scheduler():
    def connect():
        return DaskJobExecutor.connect("tcp://127.0.0.1:1", client_kwargs={"timeout": 3})

    result, exc, _ = call_with_timeout(connect, timeout=30)
    if result is not None:
        result.close()
    assert isinstance(exc, ConnectionError), exc
    assert "127.0.0.1:1" in str(exc)  # raised, not hung (call_with_timeout bounds it)


@pytest.mark.parametrize("spec", ["", "dask-cluster", "cuda", "processes"])
def test_unknown_executor_spec(spec):
    with pytest.raises(ExecutorSpecException, match="spec"):
        Context.make_with(spec)


def test_udf_error_on_worker_surfaces(dask_ctx):
    ds = _dataset(dask_ctx)

    def run():
        return dask_ctx.run_udf(dataset=ds, udf=FailingUDF(fail_at=17))

    _, exc, _ = call_with_timeout(run, timeout=60)
    assert exc is not None
    # its own exception type (as defined in this module) and message
    assert type(exc).__name__ == "FrobnicationError"
    assert "cannot frobnicate frame 17" in str(exc)
    text = "".join(traceback.format_exception(exc))
    assert "process_frame" in text
    assert "FailingUDF" in text
    # the cluster keeps working
    assert_ctx_works(dask_ctx)
    res = dask_ctx.run_udf(dataset=ds, udf=FailingUDF(fail_at=-1))
    assert np.array_equal(res["s"].data, DATA.sum(axis=(2, 3)))


def test_udf_error_in_iter_surfaces(dask_ctx):
    ds = _dataset(dask_ctx)

    def run():
        return list(dask_ctx.run_udf_iter(dataset=ds, udf=FailingUDF(fail_at=0)))

    _, exc, _ = call_with_timeout(run, timeout=60)
    assert type(exc).__name__ == "FrobnicationError"
    assert_ctx_works(dask_ctx)


def test_merge_error_surfaces(dask_ctx):
    ds = _dataset(dask_ctx)
    with pytest.raises(FrobnicationError, match="merge refused"):
        dask_ctx.run_udf(dataset=ds, udf=FailingMergeUDF())
    assert_ctx_works(dask_ctx)


def test_cuda_only_udf_without_cuda_workers(dask_ctx, errors_dask_executor):
    assert not errors_dask_executor.get_available_workers().has_cuda()
    ds = _dataset(dask_ctx)

    def run():
        return dask_ctx.run_udf(dataset=ds, udf=CupyOnlyUDF())

    _, exc, _ = call_with_timeout(run, timeout=60)
    assert isinstance(exc, UDFException), exc  # raised, not hung
    assert "CUDA" in str(exc) or "cuda" in str(exc)
    # also together with a CPU UDF
    _, exc, _ = call_with_timeout(
        lambda: dask_ctx.run_udf(dataset=ds, udf=[SumUDF(), CupyOnlyUDF()]), timeout=60
    )
    assert isinstance(exc, UDFException), exc
    assert_ctx_works(dask_ctx)


def test_udf_error_with_delayed_executor():
    ctx = Context(executor=DelayedJobExecutor())
    ds = _dataset(ctx)
    res = ctx.run_udf(dataset=ds, udf=FailingUDF(fail_at=3))
    with pytest.raises(FrobnicationError, match="frame 3"):
        res["s"].data
    assert_ctx_works(ctx)
