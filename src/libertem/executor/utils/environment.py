"""What a task may use where it runs: threads, a GPU, a way to talk to the main node."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from libertem.utils.devices import has_cupy

if TYPE_CHECKING:
    from libertem.common.executor import WorkerContext

# threadpoolctl warns about OpenMP runtimes it finds side by side; harmless for us
_HARMLESS_WARNINGS = (r".*OpenMP.*", r".*threadpoolctl.*")


@contextlib.contextmanager
def mitigations() -> Iterator[None]:
    """Silence warnings that libraries give when tasks limit their threads.

    threadpoolctl warns when it finds several OpenMP runtimes loaded at once
    (common with numba, BLAS and others side by side); this does not affect our
    use, so :meth:`Environment.enter` runs its limits inside this block.
    """
    with warnings.catch_warnings():
        for message in _HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
        yield


_CONTROLLER: dict = {"controller": None, "modules": -1}


def thread_controller():
    """The :class:`threadpoolctl.ThreadpoolController` of this process, made once.

    Finding the thread pools means reading the list of loaded libraries, which
    takes milliseconds; it is done again only when modules were imported since.
    """
    from threadpoolctl import ThreadpoolController

    n_modules = len(sys.modules)
    if _CONTROLLER["controller"] is None or _CONTROLLER["modules"] != n_modules:
        with mitigations():
            _CONTROLLER["controller"] = ThreadpoolController()
        _CONTROLLER["modules"] = n_modules
    return _CONTROLLER["controller"]


@contextlib.contextmanager
def limit_thread_pools(n: int) -> Iterator[None]:
    """Limit the BLAS/OpenMP thread pools (threadpoolctl) to ``n`` threads in the block.

    Only the pools whose limit differs are touched, and set back afterwards.
    """
    changed = []
    for lib in thread_controller().lib_controllers:
        current = lib.num_threads
        if current != n:
            lib.set_num_threads(n)
            changed.append((lib, current))
    try:
        yield
    finally:
        for lib, current in reversed(changed):
            lib.set_num_threads(current)


@contextlib.contextmanager
def set_num_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP (threadpoolctl) and numba to ``n`` threads in the block.

    ``None`` leaves the limits as they are. numba's limit is per thread and is
    capped at the number of threads numba was started with.
    """
    if n is None:
        yield
        return
    import numba

    n = max(1, int(n))
    previous = numba.get_num_threads()
    with limit_thread_pools(n):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


@contextlib.contextmanager
def use_gpu(device: int | None) -> Iterator[None]:
    """Use CUDA device ``device`` (for CuPy and ``get_use_cuda``) in the block.

    ``None`` changes nothing. The previous device choice is restored afterwards.
    """
    if device is None:
        yield
        return
    from libertem.common import backend

    previous = dict(backend._state)
    backend.set_use_cuda(device)
    cupy_device = None
    if has_cupy():
        import cupy

        cupy_device = cupy.cuda.Device(int(device))
        cupy_device.__enter__()
    try:
        yield
    finally:
        if cupy_device is not None:
            cupy_device.__exit__(None, None, None)
        backend._state.update(previous)


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
                stack.enter_context(_numba_threads(self._threads_per_worker))
            else:
                stack.enter_context(set_num_threads(self._threads_per_worker))
            if enable_gpu:
                stack.enter_context(use_gpu(self._gpu_id))
            yield self


@contextlib.contextmanager
def _numba_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


__all__ = [
    "Environment",
    "limit_thread_pools",
    "mitigations",
    "set_num_threads",
    "thread_controller",
    "use_gpu",
]
