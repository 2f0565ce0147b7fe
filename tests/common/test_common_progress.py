"""Progress of runs: custom reporters, the tqdm bar, and the pieces that count progress."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from libertem.common.progress import (
    CommsDispatcher,
    PartitionProgressTracker,
    PartitionTrackerNoOp,
    ProgressManager,
    ProgressReporter,
    ProgressState,
    TQDMProgressReporter,
    WorkerQueueEmpty,
)
from libertem.udf import UDF

NAV, SIG = (6, 5), (4, 4)


class Recorder(ProgressReporter):
    def __init__(self):
        super().__init__()
        self.events = []
        self.lock = threading.Lock()

    def start(self, state):
        self.events.append(("start", state))

    def update(self, state):
        with self.lock:
            self.events.append(("update", state))

    def end(self, state):
        self.events.append(("end", state))


class SlowTileUDF(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def get_tiling_preferences(self):
        return {"depth": 1, "total_size": 64}

    def process_tile(self, tile):
        self.results.s[:] += tile.sum(axis=(1, 2))


@pytest.mark.parametrize("with_roi", [False, True])
def test_custom_reporter(ctx, with_roi):
    data = np.ones(NAV + SIG, dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    roi = None
    total = NAV[0] * NAV[1]
    if with_roi:
        roi = np.zeros(NAV, dtype=bool)
        roi[:, :2] = True
        total = int(roi.sum())
    reporter = Recorder()
    res = ctx.run_udf(dataset=ds, udf=SlowTileUDF(), roi=roi, progress=reporter)
    assert np.allclose(res["s"].raw_data, 16)
    kinds = [k for k, _ in reporter.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == 1
    start, end = reporter.events[0][1], reporter.events[-1][1]
    assert isinstance(start, ProgressState)
    assert start.num_frames_total == total and start.num_frames_complete == 0
    assert start.num_part_total == 3
    assert end.num_frames_complete == total and end.num_part_complete == 3
    assert end.num_part_in_progress == 0
    done = [s.num_frames_complete for _, s in reporter.events]
    assert done == sorted(done)
    assert len({s.progress_id for _, s in reporter.events}) == 1


def test_progress_bar_and_iter(ctx, capsys):
    ds = ctx.load("memory", data=np.ones(NAV + SIG, np.float32), sig_dims=2, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SlowTileUDF(), progress=True)
    assert np.allclose(res["s"].data, 16)
    reporter = Recorder()
    items = list(ctx.run_udf_iter(dataset=ds, udf=SlowTileUDF(), progress=reporter))
    assert items and reporter.events[-1][0] == "end"


def test_reporter_ends_when_run_fails(inline_ctx):
    class Failing(SlowTileUDF):
        def process_tile(self, tile):
            raise RuntimeError("nope")

    ds = inline_ctx.load("memory", data=np.ones(NAV + SIG, np.float32), sig_dims=2)
    reporter = Recorder()
    with pytest.raises(RuntimeError, match="nope"):
        inline_ctx.run_udf(dataset=ds, udf=Failing(), progress=reporter)
    assert reporter.events[-1][0] == "end"


class _Task:
    def __init__(self, task_id, n_frames):
        self.task_id, self.n_frames = task_id, n_frames


def test_progress_manager_counts():
    reporter = Recorder()
    tasks = [_Task(0, 10), _Task(1, 5)]
    manager = ProgressManager(tasks, "run-1", reporter)
    manager.handle_start_task("partition_start", {"ident": 0})
    assert manager.state.num_part_in_progress == 1
    manager.handle_tile_update("tile_complete", {"ident": 0, "frames": 4.5})
    manager.handle_tile_update("tile_complete", {"ident": 0, "frames": 100})  # capped
    assert manager.state.num_frames_complete == 10
    manager.handle_end_task("partition_complete", {"ident": 0})
    manager.finalize_task(tasks[0])
    manager.update(1, 2.0)
    assert manager.state.num_frames_complete == 12 and manager.state.num_part_complete == 1
    manager.finalize_task(tasks[1])
    manager.close()
    manager.close()
    assert [k for k, _ in reporter.events].count("end") == 1
    assert reporter.events[-1][1].num_frames_complete == 15


class _Partition:
    class shape:  # noqa: N801 - stands in for a Shape
        class sig:  # noqa: N801
            size = 16

    def get_ident(self):
        return "p0"


class _Tile:
    def __init__(self, n):
        from libertem.common.shape import Shape
        from libertem.common.slice import Slice

        self.slice = Slice((0, 0, 0), Shape((n, 4, 2), sig_dims=2))


def test_partition_tracker_rate_limits(monkeypatch):
    sent = []
    clock = [0.0]
    monkeypatch.setattr("libertem.common.progress.get_time", lambda: clock[0])
    tracker = PartitionProgressTracker(_Partition(), 1.0, send=lambda t, m: sent.append((t, m)))
    tracker.signal_start()
    tracker.signal_tile_complete(_Tile(2))  # half frames: 1 frame, too early to send
    assert [t for t, _ in sent] == ["partition_start"]
    clock[0] = 2.0
    tracker.signal_tile_complete(_Tile(2))
    assert sent[-1] == ("tile_complete", {"ident": "p0", "frames": 2.0})
    tracker.signal_tile_complete(_Tile(4))  # pending until the end
    tracker.signal_complete()
    assert sent[-2] == ("tile_complete", {"ident": "p0", "frames": 2.0})
    assert sent[-1] == ("partition_complete", {"ident": "p0"})
    noop = PartitionTrackerNoOp()
    noop.signal_start()
    noop.signal_tile_complete(None)
    noop.signal_complete()


class _Queue:
    def __init__(self, headers):
        self.headers = list(headers)

    @contextlib.contextmanager
    def get(self, block=True, timeout=None):
        if not self.headers:
            raise WorkerQueueEmpty()
        yield self.headers.pop(0), None


def test_comms_dispatcher():
    got = []
    queue = _Queue(
        [
            {"topic": "tile_complete", "message": {"ident": 1, "frames": 3}},
            {"topic": "other", "message": {}},
            {"topic": "STOP"},
        ]
    )
    CommsDispatcher(queue, {"tile_complete": [lambda t, m: got.append((t, m))]}).monitor_queue()
    assert got == [("tile_complete", {"ident": 1, "frames": 3})]


def test_tqdm_reporter():
    reporter = TQDMProgressReporter()
    state = ProgressState(0, 10, 0, 0, 2, "x")
    reporter.start(state)
    reporter.update(ProgressState(4.5, 10, 0, 1, 2, "x"))
    assert reporter._bar.n == 4
    reporter.end(ProgressState(10, 10, 2, 0, 2, "x"))
    assert reporter._bar is None
