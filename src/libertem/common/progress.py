"""Progress bars for runs, fed with frame counts from wherever tasks run."""

from __future__ import annotations

from tqdm.auto import tqdm


class ProgressReporter:
    """A tqdm bar over the selected frames of a run, or nothing when disabled.

    Parameters
    ----------
    total
        Number of frames the run processes.
    enabled
        Show the bar.
    """

    def __init__(self, total: int, enabled: bool):
        self._total = total
        self._bar = tqdm(total=total, unit="frame", disable=not enabled) if enabled else None
        self._done = 0.0

    def update(self, frames: float) -> None:
        """Advance by ``frames`` (fractions for parts of frames)."""
        if self._bar is None:
            return
        self._done += frames
        target = min(int(self._done), self._total)
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)

    def close(self, finished: bool = True) -> None:
        """Complete (if ``finished``) and close the bar."""
        if self._bar is None:
            return
        if finished and self._bar.n < self._total:
            self._bar.update(self._total - self._bar.n)
        self._bar.close()
