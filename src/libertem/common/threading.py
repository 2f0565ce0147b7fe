"""Limiting the threads of numerical libraries: BLAS/OpenMP, numba, pyFFTW, PyTorch.

Every ``set_*`` function is a context manager that sets a limit for the ``with``
block and restores the previous one afterwards; a library that is not installed
is left alone. :func:`set_num_threads` (all pools of a running process) and
:func:`mitigations` are the ones tasks run under (see
:class:`~libertem.common.environment.Environment`); :func:`set_num_threads_env` is
for processes started inside the block, which read the limits from the environment.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

#: environment variables read by OpenMP, OpenBLAS, MKL, numexpr and BLIS at startup
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

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
    capped at the number of threads numba was started with. A process that has not
    imported numba runs no numba code yet: numba is left alone (importing it and
    starting its threads would cost a good part of a second).
    """
    if n is None:
        yield
        return
    n = max(1, int(n))
    numba = sys.modules.get("numba")
    if numba is None or not hasattr(numba, "get_num_threads"):
        with limit_thread_pools(n):
            yield
        return
    # numba's thread pool starts on first use (loading modules): before the pools are found
    previous = numba.get_num_threads()
    with limit_thread_pools(n):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


def _detect(name: str) -> ModuleType | None:
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def detect_pyfftw() -> ModuleType | None:
    """The ``pyfftw`` module (imported if installed), or ``None``."""
    return _detect("pyfftw")


def detect_pytorch() -> ModuleType | None:
    """The ``torch`` module (imported if installed), or ``None``."""
    return _detect("torch")


@contextlib.contextmanager
def set_fftw_threads(n: int) -> Iterator[None]:
    """Let pyFFTW's planners use ``n`` threads in the block (if pyFFTW is installed)."""
    pyfftw = detect_pyfftw()
    if pyfftw is None:
        yield
        return
    previous = pyfftw.config.NUM_THREADS
    pyfftw.config.NUM_THREADS = int(n)
    try:
        yield
    finally:
        pyfftw.config.NUM_THREADS = previous


@contextlib.contextmanager
def set_torch_threads(n: int) -> Iterator[None]:
    """Let PyTorch use ``n`` intra-op threads in the block (if PyTorch is installed)."""
    torch = detect_pytorch()
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def set_numba_threads(n: int) -> Iterator[None]:
    """Let numba's parallel code in this thread use ``n`` threads in the block.

    The limit is capped at the number of threads numba was started with; without
    numba imported in this process, nothing is set (no numba code runs here yet).
    """
    numba = sys.modules.get("numba")
    if numba is None or not hasattr(numba, "get_num_threads"):
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def set_num_threads_env(n: int = 1, set_numba: bool | None = None) -> Iterator[None]:
    """Set the thread-count environment variables to ``n`` in the block.

    Processes started in the block (e.g. worker processes) start their thread
    pools with ``n`` threads. The previous values are restored afterwards.

    Parameters
    ----------
    n
        Number of threads.
    set_numba
        Also set ``NUMBA_NUM_THREADS``. By default only if numba is not imported
        yet in this process (numba reads it once, and refuses a changed value
        for its running thread pool).
    """
    names = list(THREAD_ENV_VARS)
    if set_numba is None:
        set_numba = "numba" not in sys.modules
    if set_numba:
        names.append("NUMBA_NUM_THREADS")
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(int(n)) for name in names})
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ThreadpoolWrapper:
    """Limits the BLAS/OpenMP thread pools of this process with threadpoolctl.

    Finding the pools means inspecting the loaded shared libraries, which takes
    milliseconds; the wrapper does it once and again only when
    :meth:`check_update` sees that modules were imported since. Native libraries
    can also appear without a new Python module (loaded lazily by one), so the
    first ``repeats`` checks inspect again regardless.

    Parameters
    ----------
    repeats
        Number of checks that inspect the libraries even if no module was imported.

    Examples
    --------
    >>> wrapper = ThreadpoolWrapper()
    >>> with wrapper(1):
    ...     pass  # BLAS calls here use one thread
    """

    def __init__(self, repeats: int = 2):
        self._repeats = int(repeats)
        self._checks = 0
        self._modules = -1
        self._controller = None

    def check_update(self) -> None:
        """Inspect the loaded thread-pool libraries again if they may have changed."""
        from threadpoolctl import ThreadpoolController

        n_modules = len(sys.modules)
        if self._controller is None or self._checks < self._repeats or n_modules != self._modules:
            self._controller = ThreadpoolController()
            self._modules = n_modules
        self._checks += 1

    @property
    def controller(self):
        """The ``threadpoolctl.ThreadpoolController`` (after :meth:`check_update`)."""
        self.check_update()
        return self._controller

    @contextlib.contextmanager
    def __call__(self, n: int) -> Iterator[None]:
        """Limit every pool to ``n`` threads in the block; pools are set back afterwards."""
        changed = []
        for lib in self.controller.lib_controllers:
            current = lib.num_threads
            if current != n:
                lib.set_num_threads(int(n))
                changed.append((lib, current))
        try:
            yield
        finally:
            for lib, current in reversed(changed):
                lib.set_num_threads(current)


__all__ = [
    "ThreadpoolWrapper",
    "detect_pyfftw",
    "detect_pytorch",
    "set_fftw_threads",
    "set_num_threads_env",
    "set_numba_threads",
    "set_torch_threads",
    "limit_thread_pools",
    "mitigations",
    "set_num_threads",
    "thread_controller",
]
