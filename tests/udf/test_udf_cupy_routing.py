"""CuPy routing without a GPU: a stand-in for CuPy (numpy underneath) proves placement,
``xp``, ``where='device'`` buffers and the transfer of results to the host."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from libertem.api import Context
from libertem.common import backend
from libertem.common.exceptions import UDFException
from libertem.executor.inline import InlineJobExecutor
from libertem.udf import UDF
from libertem.udf.com import CoMUDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fake_cupy  # noqa: E402

FAKE_CUPY_PATH = str(Path(fake_cupy.__file__).resolve())


class RecordUDF(UDF):
    """Records where and how it ran: device class, array module, input and buffer types."""

    def __init__(self, backends=("numpy", "cupy")):
        super().__init__(backends=backends)

    def get_backends(self):
        return tuple(self.params.backends)

    def get_result_buffers(self):
        return {
            "device_sum": self.buffer(kind="nav", dtype="float64", where="device"),
            "host_sum": self.buffer(kind="nav", dtype="float64"),
            "on_cuda": self.buffer(kind="nav", dtype="int64"),
            "xp_is_fake": self.buffer(kind="nav", dtype="int64"),
            "tile_on_device": self.buffer(kind="nav", dtype="int64"),
            "buffer_on_device": self.buffer(kind="nav", dtype="int64"),
            "pid": self.buffer(kind="nav", dtype="int64"),
        }

    def process_tile(self, tile):
        r = self.results
        sums = self.xp.sum(tile.reshape((tile.shape[0], -1)), axis=1)
        r.device_sum[:] += sums
        r.host_sum[:] += np.asarray(sums)
        r.on_cuda[:] = self.meta.device_class == "cuda"
        r.xp_is_fake[:] = getattr(self.xp, "__is_fake__", False)
        r.tile_on_device[:] = type(tile).__name__ == "DeviceArray"
        r.buffer_on_device[:] = type(r.device_sum).__name__ == "DeviceArray"
        r.pid[:] = os.getpid()


@pytest.fixture
def cuda_process(monkeypatch):
    """This process acts as a CUDA worker with the CuPy stand-in."""
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy.build())
    previous = backend.get_use_cuda()
    backend.set_use_cuda(0)
    yield
    if previous is None:
        backend.set_use_cpu(0)
    else:
        backend.set_use_cuda(previous)


@pytest.fixture
def data():
    return np.random.default_rng(5).random((4, 6, 8, 10)).astype(np.float32)


@pytest.mark.parametrize("use_roi", [False, True])
def test_cupy_udf_on_cuda_worker_gets_device_arrays(cuda_process, data, use_roi):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((4, 6), dtype=bool)
    roi[1:3, 2:5] = True
    res = ctx.run_udf(dataset=ds, udf=RecordUDF(), roi=roi if use_roi else None)
    selected = data[roi] if use_roi else data.reshape((-1, 8, 10))
    for name in ("on_cuda", "xp_is_fake", "tile_on_device", "buffer_on_device"):
        assert np.all(res[name].raw_data == 1), name
    # device buffers come back to the main node as plain numpy arrays
    assert type(res["device_sum"].raw_data) is np.ndarray
    assert np.allclose(res["device_sum"].raw_data, selected.sum(axis=(1, 2)))
    assert np.allclose(res["host_sum"].raw_data, selected.sum(axis=(1, 2)))


def test_cuda_backend_runs_with_numpy_on_cuda_worker(cuda_process, data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=RecordUDF(backends=("cuda",)))
    assert np.all(res["on_cuda"].raw_data == 1)
    assert np.all(res["xp_is_fake"].raw_data == 0)
    assert np.all(res["tile_on_device"].raw_data == 0)


def test_backends_argument_restricts_to_numpy(cuda_process, data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=RecordUDF(), backends=("numpy",))
    assert np.all(res["on_cuda"].raw_data == 0)
    assert np.all(res["tile_on_device"].raw_data == 0)
    assert np.allclose(res["device_sum"].raw_data, data.reshape((-1, 80)).sum(axis=1))


def test_builtin_udfs_on_cupy_equal_cpu(cuda_process, data):
    masks = [lambda: np.ones((8, 10)), lambda: np.arange(80.0).reshape((8, 10))]
    udfs = [SumUDF(), SumSigUDF(), ApplyMasksUDF(masks), StdDevUDF(), CoMUDF.with_params()]
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data, num_partitions=3)
    on_device = ctx.run_udf(dataset=ds, udf=udfs)
    on_cpu = ctx.run_udf(dataset=ds, udf=udfs, backends=("numpy",))
    for device_res, cpu_res in zip(on_device, on_cpu):
        assert device_res.keys() == cpu_res.keys()
        for key in cpu_res:
            assert type(device_res[key].raw_data) is np.ndarray, key
            assert np.allclose(
                device_res[key].data, cpu_res[key].data, equal_nan=True, rtol=1e-5
            ), key


def test_cupy_only_udf_without_cuda_is_a_clear_error(data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data)
    with pytest.raises(UDFException, match="CUDA"):
        ctx.run_udf(dataset=ds, udf=RecordUDF(backends=("cupy",)))
    res = ctx.run_udf(dataset=ds, udf=RecordUDF())  # CuPy-capable UDFs fall back to CPU
    assert np.all(res["on_cuda"].raw_data == 0)


def test_detect_without_gpu_reports_no_cuda():
    from libertem.utils.devices import detect

    devices = detect()
    assert devices["cudas"] == [] or len(devices["cudas"]) > 0
    assert len(devices["cpus"]) >= 1
    if not devices["cudas"]:
        assert devices["has_cupy"] is False


@pytest.fixture(scope="module")
def hybrid_ctx():
    """A Dask cluster with one CPU worker and one (stand-in) CUDA worker."""
    from libertem.executor.dask import DaskJobExecutor, cluster_spec

    spec = cluster_spec(
        cpus=[0], cudas=[0], has_cupy=True, num_service=0, options={"preload": [FAKE_CUPY_PATH]}
    )
    executor = DaskJobExecutor.make_local(spec=spec)
    ctx = Context(executor=executor)
    yield ctx
    ctx.close()
    executor.close()


def test_placement_on_hybrid_cluster(hybrid_ctx, data):
    ds = hybrid_ctx.load("memory", data=data, num_partitions=8)
    cpu_only = hybrid_ctx.run_udf(dataset=ds, udf=RecordUDF(backends=("numpy",)))
    assert np.all(cpu_only["on_cuda"].raw_data == 0)
    cuda_only = hybrid_ctx.run_udf(dataset=ds, udf=RecordUDF(backends=("cupy",)))
    assert np.all(cuda_only["on_cuda"].raw_data == 1)
    assert np.all(cuda_only["tile_on_device"].raw_data == 1)
    assert np.allclose(cuda_only["device_sum"].raw_data, data.reshape((-1, 80)).sum(axis=1))
    cpu_pids = set(np.unique(cpu_only["pid"].raw_data))
    cuda_pids = set(np.unique(cuda_only["pid"].raw_data))
    assert cpu_pids.isdisjoint(cuda_pids)


def test_hybrid_udf_uses_both_kinds_of_workers(hybrid_ctx, data):
    ds = hybrid_ctx.load("memory", data=data, num_partitions=12)
    seen = set()
    for _ in range(5):
        res = hybrid_ctx.run_udf(dataset=ds, udf=RecordUDF())
        seen |= set(np.unique(res["on_cuda"].raw_data))
        assert np.allclose(res["device_sum"].raw_data, data.reshape((-1, 80)).sum(axis=1))
        if seen == {0, 1}:
            break
    assert seen == {0, 1}
