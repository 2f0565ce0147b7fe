"""What a task may use where it runs: threads, a GPU, a way to talk to the main node."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from libertem.common.cupy import use_gpu
from libertem.common.threading import set_num_threads, set_numba_threads
from libertem.utils.devices import has_cupy

if TYPE_CHECKING:
    from libertem.common.task_comm import WorkerContext


class Environment:
    """What a task may use where it runs.

    Parameters
    ----------
    threads_per_worker
        Threads the task may use for its own parallel code (numba, BLAS); ``None``
        leaves it to the libraries. UDFs read it as ``meta.threads_per_worker``.
    threaded_executor
        Whether tasks run in threads of a shared process (then the process-wide
        BLAS limits are the executor's business, not the task's).
    worker_context
        Sends messages to the main node (progress); ``None``: nobody listens.
    gpu_id
        CUDA device the task uses, or ``None``.
    """

    def __init__(
        self,
        threads_per_worker: int | None,
        threaded_executor: bool,
        worker_context: WorkerContext | None = None,
        gpu_id: int | None = None,
    ):
        self._threads_per_worker = threads_per_worker
        self._threaded_executor = bool(threaded_executor)
        self._worker_context = worker_context
        self._gpu_id = gpu_id

    @property
    def threads_per_worker(self) -> int | None:
        """Threads the task may use (``None``: not limited)."""
        return self._threads_per_worker

    @property
    def threaded_executor(self) -> bool:
        """Whether the task runs in a thread shared with other tasks' threads."""
        return self._threaded_executor

    @property
    def worker_context(self) -> WorkerContext | None:
        """The :class:`WorkerContext` for messages to the main node."""
        return self._worker_context

    @property
    def gpu_id(self) -> int | None:
        """The CUDA device given to the task, or ``None``."""
        return self._gpu_id

    @property
    def device_class(self) -> str:
        """``'cuda'`` if the task has a CUDA device (given, or this worker's), else ``'cpu'``."""
        from libertem.common.backend import get_use_cuda

        return "cuda" if self._gpu_id is not None or get_use_cuda() is not None else "cpu"

    @property
    def has_cupy(self) -> bool:
        """Whether CuPy can be imported here."""
        return has_cupy()

    @contextlib.contextmanager
    def enter(self, enable_gpu: bool = True) -> Iterator[Environment]:
        """Set up thread limits (and the GPU, if ``enable_gpu``) while the task runs.

        In a threaded executor only numba's (per-thread) limit is set here: the
        BLAS limits and warning filters are process-wide, the executor sets them.
        """
        with contextlib.ExitStack() as stack:
            if self._threaded_executor:
                if self._threads_per_worker is not None:
                    stack.enter_context(set_numba_threads(self._threads_per_worker))
            else:
                stack.enter_context(set_num_threads(self._threads_per_worker))
            if enable_gpu:
                stack.enter_context(use_gpu(self._gpu_id))
            yield self


__all__ = ["Environment"]
