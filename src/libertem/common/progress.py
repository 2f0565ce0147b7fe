"""Progress bars for runs, fed with frame counts from wherever tasks run."""

from __future__ import annotations

import threading

from tqdm.auto import tqdm


class ProgressReporter:
    """A tqdm bar over the selected frames of a run, or nothing when disabled.

    Tasks report frames as they go (possibly from other threads or, forwarded by
    the executor, other processes); when a task's result arrives, the task is
    counted as complete, whatever its reports said.

    Parameters
    ----------
    total
        Number of frames the run processes.
    enabled
        Show the bar.
    """

    def __init__(self, total: int, enabled: bool):
        self._total = total
        self._bar = tqdm(total=total, unit="frame") if enabled else None
        self._per_task: dict[int, float] = {}
        self._done = 0.0
        self._lock = threading.Lock()

    def update(self, task_id: int, frames: float) -> None:
        """Task ``task_id`` processed ``frames`` more frames (fractions for parts of frames)."""
        if self._bar is None:
            return
        with self._lock:
            self._per_task[task_id] = self._per_task.get(task_id, 0.0) + frames
            self._done += frames
            self._refresh()

    def task_done(self, task_id: int, n_frames: int) -> None:
        """Task ``task_id`` finished all its ``n_frames`` frames."""
        if self._bar is None:
            return
        with self._lock:
            reported = self._per_task.get(task_id, 0.0)
            self._per_task[task_id] = float(n_frames)
            self._done += n_frames - reported
            self._refresh()

    def _refresh(self) -> None:
        target = max(0, min(int(round(self._done, 6)), self._total))
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)

    def close(self, finished: bool = True) -> None:
        """Complete (if ``finished``) and close the bar."""
        if self._bar is None:
            return
        with self._lock:
            if finished and self._bar.n < self._total:
                self._bar.update(self._total - self._bar.n)
            self._bar.close()
