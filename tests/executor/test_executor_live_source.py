"""A live source streams its frames to the tasks: the dataset's TaskCommHandler pushes
them on the worker's queue (after the task is scheduled), the partition reads them with
``worker_context.get_worker_queue()``. This is how libertem-live's detectors work; the
source here mimics them (DataSet subclass, ``get_base_shape(roi)`` without default,
tiles whose ``tile_slice`` counts from the dataset's first frame)."""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest

from libertem.api import Context
from libertem.common.executor import JobCancelledError, TaskCommHandler
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.exceptions import UDFRunCancelled
from libertem.executor.pipelined import PipelinedExecutor
from libertem.io.dataset.base import DataSet, DataSetMeta, DataTile, Partition
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CHUNK = 3  # frames per FRAMES message


class StreamHandler(TaskCommHandler):
    """Sends the frames of each task's partition, in chunks, to the worker's queue."""

    def __init__(self, frames: np.ndarray, stop_after: int | None = None):
        self._frames = frames
        self._stop_after = stop_after
        self.calls: list[str] = []

    def start(self):
        self.calls.append("start")

    def done(self):
        self.calls.append("done")

    def handle_task(self, task, queue):
        self.calls.append("handle_task")
        if self._stop_after is not None and self.calls.count("handle_task") > self._stop_after:
            raise JobCancelledError("the detector stopped")
        p = task.get_partition()
        queue.put({"type": "BEGIN_TASK"})
        for a in range(p.start, p.stop, CHUNK):
            chunk = np.ascontiguousarray(self._frames[a : min(a + CHUNK, p.stop)])
            queue.put({"type": "FRAMES", "count": len(chunk)}, payload=memoryview(chunk).cast("B"))
        queue.put({"type": "END_PARTITION"})


class StreamPartition(Partition):
    def get_tiles(self, tiling_scheme, dest_dtype="float32", roi=None, array_backend=None):
        queue = self._worker_context.get_worker_queue()
        sig = tuple(self.meta.shape.sig)
        with queue.get() as (header, _):
            assert header["type"] == "BEGIN_TASK", header
        pos = self.start
        while True:
            with queue.get() as (header, payload):
                if header["type"] == "END_PARTITION":
                    break
                n = header["count"]
                raw = np.frombuffer(payload, dtype=self.meta.raw_dtype).reshape((n, *sig))
                data = raw.astype(dest_dtype)  # a copy: the payload is only valid here
            tile_slice = Slice((pos, 0, 0), Shape((n, *sig), sig_dims=2))
            yield DataTile(data, tile_slice=tile_slice, scheme_idx=0)
            pos += n
        assert pos == self.stop


class StreamSource(DataSet):
    """``frames`` (flat navigation) arrive from a 'detector' while the run goes on."""

    def __init__(self, frames: np.ndarray, nav_shape, frames_per_partition: int, **handler):
        super().__init__()
        self._frames = frames
        self._nav_shape = tuple(nav_shape)
        self._fpp = frames_per_partition
        self._handler_kwargs = handler
        self.handler: StreamHandler | None = None

    def initialize(self, executor):
        shape = Shape(self._nav_shape + self._frames.shape[1:], sig_dims=2)
        self._meta = DataSetMeta(shape=shape, raw_dtype=self._frames.dtype)
        return self

    @property
    def shape(self):
        return self._meta.shape

    @property
    def dtype(self):
        return self._meta.raw_dtype

    def check_valid(self):
        return True

    def need_decode(self, read_dtype, roi, corrections):
        return True

    def get_base_shape(self, roi):
        return (1, *self.shape.sig)

    def get_partitions(self):
        n = self.shape.nav.size
        for part_slice, _start, _stop in Partition.make_slices(self.shape, n // self._fpp):
            yield StreamPartition(meta=self._meta, partition_slice=part_slice)

    def get_task_comm_handler(self):
        self.handler = StreamHandler(self._frames, **self._handler_kwargs)
        return self.handler


@pytest.fixture(scope="module")
def pipelined_ctx():
    executor = PipelinedExecutor(spec=PipelinedExecutor.make_spec(cpus=2, cudas=[]))
    ctx = Context(executor=executor)
    yield ctx
    executor.close()


@pytest.fixture(params=["inline", "pipelined"])
def live_ctx(request, inline_ctx):
    if request.param == "inline":
        return inline_ctx
    return request.getfixturevalue("pipelined_ctx")


def _frames(n=24, sig=(6, 5), seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, size=(n, *sig)).astype(np.uint16)


def test_frames_stream_to_the_tasks(live_ctx):
    frames = _frames()
    ds = StreamSource(frames, nav_shape=(4, 6), frames_per_partition=5).initialize(None)
    total, sumsig = live_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    expected = frames.astype(np.float64)
    np.testing.assert_allclose(total["intensity"].data, expected.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        sumsig["intensity"].data, expected.sum(axis=(1, 2)).reshape(4, 6), rtol=1e-6
    )
    assert ds.handler.calls[0] == "start" and ds.handler.calls[-1] == "done"
    assert ds.handler.calls.count("handle_task") == 4  # 24 frames, 5 per partition -> 4


def test_partial_results_of_a_stream(live_ctx):
    frames = _frames(n=12, sig=(4, 4), seed=4)
    ds = StreamSource(frames, nav_shape=(3, 4), frames_per_partition=4).initialize(None)
    parts = list(live_ctx.run_udf_iter(dataset=ds, udf=SumSigUDF()))
    assert len(parts) >= 2
    final = parts[-1]
    assert final.damage.data.all()
    np.testing.assert_allclose(
        final.buffers[0]["intensity"].data, frames.sum(axis=(1, 2)).reshape(3, 4)
    )


def test_a_stream_that_stops_cancels_the_run(live_ctx):
    frames = _frames(n=12, sig=(4, 4), seed=5)
    ds = StreamSource(frames, nav_shape=(3, 4), frames_per_partition=3, stop_after=2)
    ds.initialize(None)
    with pytest.raises((JobCancelledError, UDFRunCancelled)):
        live_ctx.run_udf(dataset=ds, udf=SumUDF())
    # data left over from the abandoned run is skipped; the context stays usable
    ok = StreamSource(frames, nav_shape=(3, 4), frames_per_partition=3).initialize(None)
    res = live_ctx.run_udf(dataset=ok, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, frames.sum(axis=0))
