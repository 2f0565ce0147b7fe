"""Progress of UDF runs: what workers report, how the main node adds it up, who shows it.

Workers report the frames their tiles covered (:class:`PartitionProgressTracker`);
on the main node a :class:`ProgressManager` turns the reports of all tasks into a
:class:`ProgressState` and hands it to a :class:`ProgressReporter`, for example the
tqdm bar of :class:`TQDMProgressReporter` (``run_udf(..., progress=True)``) or a
reporter of your own (``run_udf(..., progress=MyReporter())``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from libertem.common.queues import WorkerQueueEmpty
from libertem.common.task_comm import CommsDispatcher

if TYPE_CHECKING:
    from libertem.common.task_comm import TaskCommHandler
    from libertem.io.dataset.base import DataTile, Partition
    from libertem.udf.task import UDFTask

#: topics of the progress messages workers send
TOPIC_START = "partition_start"
TOPIC_TILE = "tile_complete"
TOPIC_END = "partition_complete"


def get_time() -> float:
    """Monotonic clock used to rate-limit progress messages (seconds)."""
    return time.monotonic()


@dataclass(frozen=True)
class ProgressState:
    """A snapshot of a run's progress.

    Attributes
    ----------
    num_frames_complete
        Frames processed so far (fractional while tiles cover parts of frames).
    num_frames_total
        Frames the run processes (those the ROI selects).
    num_part_complete, num_part_in_progress, num_part_total
        Partitions done, being processed, and in total.
    progress_id
        Identifies the run.
    """

    num_frames_complete: float
    num_frames_total: int
    num_part_complete: int
    num_part_in_progress: int
    num_part_total: int
    progress_id: str


class ProgressReporter:
    """Receives the progress of runs; subclass it to show progress your own way.

    Pass an instance as ``run_udf(..., progress=reporter)``. :meth:`start` is
    called once before work starts, :meth:`update` whenever progress was made,
    :meth:`end` once the run is over (also when it failed or was cancelled).
    """

    def __init__(self):
        pass

    def start(self, state: ProgressState) -> None:
        """A run starts."""

    def update(self, state: ProgressState) -> None:
        """Progress was made."""

    def end(self, state: ProgressState) -> None:
        """The run is over."""


class TQDMProgressReporter(ProgressReporter):
    """Shows progress as a tqdm bar over the frames of the run."""

    def __init__(self):
        super().__init__()
        self._bar = None

    def start(self, state: ProgressState) -> None:
        """Open the bar."""
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.num_frames_total, unit="frame")

    def update(self, state: ProgressState) -> None:
        """Move the bar to the number of complete frames."""
        if self._bar is None:
            return
        target = max(0, min(int(round(state.num_frames_complete, 6)), state.num_frames_total))
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)

    def end(self, state: ProgressState) -> None:
        """Update the bar a last time and close it."""
        if self._bar is None:
            return
        self.update(state)
        self._bar.close()
        self._bar = None


class ProgressManager:
    """Adds up the progress reports of a run's tasks and feeds a :class:`ProgressReporter`.

    Parameters
    ----------
    tasks
        The tasks of the run; each has a ``task_id`` and ``n_frames``.
    progress_id
        Identifies the run (in every :class:`ProgressState`).
    reporter
        Who is told; ``None`` keeps count without telling anybody.

    Notes
    -----
    Messages carry the task's id as ``'ident'``; tile messages carry the frames
    covered as ``'frames'``. A task counts as complete, with all its frames, once
    :meth:`finalize_task` is called for it (its result arrived), whatever its
    messages said. Thread safe.
    """

    def __init__(
        self,
        tasks: Iterable[UDFTask],
        progress_id: str,
        reporter: ProgressReporter | None = None,
    ):
        tasks = list(tasks)
        self._frames = {t.task_id: float(t.n_frames) for t in tasks}
        self._done: dict[Any, float] = {}
        self._running: set = set()
        self._complete: set = set()
        self._reporter = reporter
        self._lock = threading.Lock()
        self._closed = False
        self._state = ProgressState(
            num_frames_complete=0.0,
            num_frames_total=int(sum(self._frames.values())),
            num_part_complete=0,
            num_part_in_progress=0,
            num_part_total=len(tasks),
            progress_id=progress_id,
        )
        if reporter is not None:
            reporter.start(self._state)

    @property
    def state(self) -> ProgressState:
        """The current progress."""
        return self._state

    def connect(self, comms: TaskCommHandler) -> None:
        """Subscribe to the progress topics of a task communication handler."""
        comms.subscribe(TOPIC_START, self.handle_start_task)
        comms.subscribe(TOPIC_TILE, self.handle_tile_update)
        comms.subscribe(TOPIC_END, self.handle_end_task)

    def _publish(self, **changes) -> None:
        self._state = replace(
            self._state,
            num_frames_complete=sum(self._done.values()),
            num_part_complete=len(self._complete),
            num_part_in_progress=len(self._running),
            **changes,
        )
        if self._reporter is not None and not self._closed:
            self._reporter.update(self._state)

    def handle_start_task(self, topic: str, message: dict[str, Any]) -> None:
        """A task started."""
        with self._lock:
            ident = message["ident"]
            if ident not in self._complete:
                self._running.add(ident)
            self._publish()

    def handle_tile_update(self, topic: str, message: dict[str, Any]) -> None:
        """A task processed ``message['frames']`` more frames."""
        with self._lock:
            ident = message["ident"]
            if ident in self._complete:
                return
            if ident not in self._running:
                self._running.add(ident)
            limit = self._frames.get(ident, float("inf"))
            self._done[ident] = min(limit, self._done.get(ident, 0.0) + message["frames"])
            self._publish()

    def handle_end_task(self, topic: str, message: dict[str, Any]) -> None:
        """A task finished processing (its result may still be on the way)."""
        with self._lock:
            self._running.discard(message["ident"])
            self._publish()

    def finalize_task(self, task: UDFTask) -> None:
        """The result of ``task`` arrived: count it complete."""
        with self._lock:
            self._running.discard(task.task_id)
            self._complete.add(task.task_id)
            self._done[task.task_id] = float(task.n_frames)
            self._publish()

    def update(self, task_id, frames: float) -> None:
        """Shortcut for a tile message: task ``task_id`` processed ``frames`` more frames."""
        self.handle_tile_update(TOPIC_TILE, {"ident": task_id, "frames": frames})

    def close(self) -> None:
        """The run is over: tell the reporter (once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._reporter is not None:
                self._reporter.end(self._state)


class PartitionTrackerNoOp:
    """A :class:`PartitionProgressTracker` that reports nothing."""

    def signal_start(self, *args, **kwargs) -> None:
        """Do nothing."""

    def signal_tile_complete(self, *args, **kwargs) -> None:
        """Do nothing."""

    def signal_complete(self, *args, **kwargs) -> None:
        """Do nothing."""


class PartitionProgressTracker:
    """Worker side: counts the frames the tiles of a partition covered, sends them rate-limited.

    Parameters
    ----------
    partition
        The partition being processed.
    min_message_interval
        Seconds between two tile messages at least; frames seen in between are
        added to the next message.
    send
        ``send(topic, message)`` delivers a message to the main node. By default
        the partition's worker context (``set_worker_context``) is used, with the
        partition's ident; without one nothing is sent.
    ident
        Identifies the task in the messages (default: the partition's ident).
    """

    def __init__(
        self,
        partition: Partition,
        min_message_interval: float = 1.0,
        *,
        send: Callable[[str, dict], None] | None = None,
        ident=None,
    ):
        self._interval = float(min_message_interval)
        self._sig_size = max(1, int(partition.shape.sig.size))
        self._pending = 0.0
        self._last = get_time()
        if ident is None:
            get_ident = getattr(partition, "get_ident", None)
            ident = get_ident() if get_ident is not None else id(partition)
        self._ident = ident
        if send is None:
            context = getattr(partition, "_worker_context", None)
            if context is not None:

                def send(topic, message):
                    context.signal(self._ident, topic, message)

        self._send = send

    def _emit(self, topic: str, **fields) -> None:
        if self._send is not None:
            self._send(topic, {"ident": self._ident, **fields})

    def signal_start(self) -> None:
        """Processing of the partition starts."""
        self._last = get_time()
        self._emit(TOPIC_START)

    def should_send_progress(self, elements: int) -> float:
        """Add ``elements`` processed pixels; the frames to send now (0 within the interval)."""
        self._pending += elements / self._sig_size
        now = get_time()
        if now - self._last < self._interval:
            return 0
        self._last = now
        return self._pending

    def signal_tile_complete(self, tile: DataTile) -> None:
        """A tile was processed; sends the frames covered since the last message when due."""
        sl = getattr(tile, "tile_slice", None) or getattr(tile, "slice", None)
        elements = sl.shape.size if sl is not None else int(tile.size)
        frames = self.should_send_progress(elements)
        if frames:
            self._pending = 0.0
            self._emit(TOPIC_TILE, frames=frames)

    def signal_complete(self) -> None:
        """The partition is done: send what is pending and the end message."""
        if self._pending:
            self._emit(TOPIC_TILE, frames=self._pending)
            self._pending = 0.0
        self._emit(TOPIC_END)


__all__ = [
    "CommsDispatcher",
    "PartitionProgressTracker",
    "PartitionTrackerNoOp",
    "ProgressManager",
    "ProgressReporter",
    "ProgressState",
    "TQDMProgressReporter",
    "WorkerQueueEmpty",
    "get_time",
]
