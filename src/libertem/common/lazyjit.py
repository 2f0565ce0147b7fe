"""numba-compiled functions that cost nothing until they are used, and kernels whose
first calls do not wait for numba.

Importing numba takes about a fifth of a second, and every fresh process pays it: the
main process and each worker of a Dask cluster. Modules on the common data path (the
readers of raw and NumPy files, for example) hold compiled kernels for other formats
and decoders; :func:`lazy_njit` lets them define those kernels without importing
numba. numba is imported, and the function handed to ``numba.njit``, on first use:
a call, an attribute of the dispatcher (``.py_func``, ``.signatures``, ...), or a
compilation of other numba code that refers to it (as a global, through a closure, or
as an argument).

Compiling a kernel takes from a few tenths of a second to seconds, once per machine
when numba's on-disk cache can be written (``cache=True``), else once per process.
:class:`KernelWithTwin` pairs a kernel with a NumPy function that computes the same
values bit for bit (its *twin*): calls run the twin until the kernel is ready for
the types of the arguments. The first call with new types asks for the kernel; it is
compiled (or loaded from the cache) in a background thread that starts when the
process has had no work for :data:`IDLE_S` seconds (the UDF runners mark their work
with :func:`working`: after a run, not between its partitions), or at once when the
twin has already taken :data:`TWIN_SECONDS_BEFORE_COMPILE` seconds (a long run). The
compiler holds the interpreter lock most of the time, so it would slow down a short
first run that it shares the process with. So a first run never waits for the
compiler, and results do not depend on which of the two ran.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_lock = threading.RLock()


class LazyDispatcher:
    """A function for ``numba.njit(**options)``, compiled (and numba imported) on first use.

    Behaves like the numba dispatcher it becomes: calls, attributes and ``inspect``
    signatures go to it (or to the Python function, for the signature). numba code
    that refers to it sees the dispatcher.

    Parameters
    ----------
    py_func
        The Python function.
    options
        Keyword arguments of ``numba.njit``.
    """

    def __init__(self, py_func: Callable, options: dict[str, Any]):
        self.__dict__["_py_func"] = py_func
        self.__dict__["_options"] = dict(options)
        self.__dict__["_dispatcher"] = None
        functools.update_wrapper(self, py_func)

    def materialize(self):
        """The numba dispatcher (made on the first call of this method)."""
        dispatcher = self.__dict__["_dispatcher"]
        if dispatcher is None:
            with _lock:
                dispatcher = self.__dict__["_dispatcher"]
                if dispatcher is None:
                    from libertem.common.numba.cache import cached_njit

                    options = dict(self.__dict__["_options"])
                    if options.pop("_cached_njit", False):
                        dispatcher = cached_njit(**options)(self.__dict__["_py_func"])
                    else:
                        import numba

                        dispatcher = numba.njit(**options)(self.__dict__["_py_func"])
                    self.__dict__["_dispatcher"] = dispatcher
        return dispatcher

    def __call__(self, *args, **kwargs):
        return self.materialize()(*args, **kwargs)

    def __getattr__(self, name: str):
        # also ``_numba_type_``, by which numba types what is not one of its own objects:
        # code that refers to this object compiles as if it referred to the dispatcher
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    def __setattr__(self, name: str, value) -> None:
        self.__dict__[name] = value

    def __reduce__(self):
        if "<locals>" in self.__qualname__:  # made by a factory: as numba pickles it
            return (_rebuild, (self.__dict__["_py_func"], self.__dict__["_options"]))
        return (_lookup, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        state = "compiled" if self.__dict__["_dispatcher"] is not None else "not compiled yet"
        return f"<LazyDispatcher {self.__qualname__} ({state})>"


def _lookup(module: str, qualname: str):
    import importlib

    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild(py_func: Callable, options: dict[str, Any]) -> LazyDispatcher:
    return LazyDispatcher(py_func, options)


def lazy_njit(*args, **options):
    """Like ``numba.njit``, without importing numba before the function is first used.

    Use as ``@lazy_njit`` or ``@lazy_njit(nogil=True, cache=True)``. With
    ``cached=True``, the function is compiled by
    :func:`~libertem.common.numba.cache.cached_njit` (a disk cache that notices
    changed callees) instead.
    """
    if options.pop("cached", False):
        options["_cached_njit"] = True
    if args and callable(args[0]) and len(args) == 1 and not options:
        return LazyDispatcher(args[0], {})
    if args:
        raise TypeError("lazy_njit takes the function, or keyword arguments only")
    return lambda fn: LazyDispatcher(fn, options)


#: ``LIBERTEM_KERNELS``: ``'background'`` (default: compile in a background thread and
#: run the twin meanwhile), ``'wait'`` (compile in the first call and wait for it, as
#: plain numba does) or ``'twin'`` (never compile; the NumPy twins only)
KERNEL_MODES = ("background", "wait", "twin")
_compiling: set[threading.Thread] = set()
#: kernels asked for and not compiled yet: (kernel, signature key, arguments)
_deferred: list[tuple[KernelWithTwin, tuple, tuple]] = []
#: seconds the interpreter waits at exit for compilations still running
EXIT_WAIT_S = 60.0
#: seconds spent in a twin after which its kernel is compiled without waiting for the
#: process to be idle: the run is long enough for the compilation to pay off
TWIN_SECONDS_BEFORE_COMPILE = 0.5
#: seconds without work after which the kernels asked for are compiled (environment
#: variable ``LIBERTEM_KERNEL_IDLE_S``)
IDLE_S = 0.05


def idle_seconds() -> float:
    """:data:`IDLE_S`, or ``LIBERTEM_KERNEL_IDLE_S`` where it is set."""
    try:
        return float(os.environ.get("LIBERTEM_KERNEL_IDLE_S", IDLE_S))
    except ValueError:
        return IDLE_S


_state = {"busy": 0, "atexit": False}


def kernel_mode() -> str:
    """How :class:`KernelWithTwin` gets its kernels (``LIBERTEM_KERNELS``, see
    :data:`KERNEL_MODES`)."""
    mode = os.environ.get("LIBERTEM_KERNELS", "background")
    return mode if mode in KERNEL_MODES else "background"


def _signature_key(args) -> tuple:
    """What numba's type of the arguments depends on, cheaply: per array its dtype,
    dimensions, layout, writeability and alignment; else the Python type."""
    key = []
    for a in args:
        if isinstance(a, np.ndarray):
            flags = a.flags
            layout = "C" if flags.c_contiguous else ("F" if flags.f_contiguous else "A")
            key.append((a.dtype, a.ndim, layout, flags.writeable, flags.aligned))
        else:
            key.append(type(a))
    return tuple(key)


def wait_for_compilations(timeout: float = EXIT_WAIT_S, start: bool = True) -> None:
    """Wait for the kernels compiling in the background in this process (at most
    ``timeout`` seconds each). With ``start``, kernels asked for and not started yet
    are compiled now (and waited for) too.

    At exit it waits for compilations that run (an interpreter that ends under a
    compiling thread may crash on its way out), and starts none.
    """
    if start:
        start_deferred_compilations()
    with _lock:
        threads = list(_compiling)
    for thread in threads:
        thread.join(timeout)


def start_deferred_compilations() -> None:
    """Start compiling, in a background thread, the kernels asked for so far (no-op if
    there are none, or that thread runs already and takes them too)."""
    with _lock:
        if not _deferred or _compiling:
            return
        thread = threading.Thread(
            target=_compile_deferred, name="libertem kernel compiler", daemon=True
        )
        _compiling.add(thread)
        if not _state["atexit"]:
            _state["atexit"] = True
            atexit.register(wait_for_compilations, start=False)
        thread.start()


@contextlib.contextmanager
def working() -> Iterator[None]:
    """Mark work in progress (a partition, a run): kernels asked for meanwhile are
    compiled once the process has been idle for :data:`IDLE_S` seconds after it."""
    with _lock:
        _state["busy"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["busy"] -= 1
            idle = _state["busy"] == 0 and bool(_deferred) and not _compiling
        if idle:
            timer = threading.Timer(idle_seconds(), _start_if_idle)
            timer.daemon = True
            timer.start()


def _start_if_idle() -> None:
    with _lock:
        idle = _state["busy"] == 0
    if idle:
        start_deferred_compilations()


def _compile_deferred() -> None:
    try:
        while True:
            with _lock:
                if not _deferred:
                    return
                kernel, key, args = _deferred.pop(0)
            try:
                kernel._compile(key, args)
            finally:
                with _lock:
                    kernel._pending.discard(key)
    finally:
        with _lock:
            _compiling.discard(threading.current_thread())
            restart = bool(_deferred)
        if restart:  # asked for while this thread was on its way out
            start_deferred_compilations()


class KernelWithTwin:
    """A compiled kernel and a NumPy *twin* that computes the same values, bit for bit.

    Calls run the kernel once it is compiled for the types of the arguments, the twin
    until then; see the module documentation and :data:`KERNEL_MODES`. The twin must
    do the same floating-point operations in the same order as the kernel (the tests
    of each kernel check that they agree).

    Parameters
    ----------
    kernel
        The kernel, usually a :class:`LazyDispatcher` (``@lazy_njit(cache=True)``).
    twin
        The NumPy function with the kernel's signature and results.
    """

    def __init__(self, kernel, twin: Callable):
        self.kernel = kernel
        self.twin = twin
        self._ready: dict[tuple, Callable] = {}
        self._pending: set[tuple] = set()
        self._twin_seconds: dict[tuple, float] = {}
        functools.update_wrapper(self, twin)

    def __call__(self, *args):
        key = _signature_key(args)
        fn = self._ready.get(key)
        if fn is not None:
            return fn(*args)
        fn = self._get(key, args)
        if fn is not self.twin:
            return fn(*args)
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            spent = self._twin_seconds.get(key, 0.0) + time.perf_counter() - t0
            self._twin_seconds[key] = spent
            if spent > TWIN_SECONDS_BEFORE_COMPILE and key in self._pending:
                start_deferred_compilations()

    @property
    def _numba_type_(self):
        # numba code that calls this object calls the kernel (compiled when that code is)
        kernel = self.kernel
        dispatcher = kernel.materialize() if hasattr(kernel, "materialize") else kernel
        return dispatcher._numba_type_

    def compiled_for(self, *args) -> bool:
        """Whether calls with arguments of these types run the compiled kernel."""
        fn = self._ready.get(_signature_key(args))
        return fn is not None and fn is not self.twin

    def compile_now(self, *args) -> bool:
        """Compile the kernel for the types of ``args`` and wait for it; whether it
        runs compiled from now on (``False`` where numba cannot compile it)."""
        key = _signature_key(args)
        self._compile(key, args)
        return self._ready.get(key) is not self.twin

    def _get(self, key: tuple, args) -> Callable:
        mode = kernel_mode()
        if mode == "twin":
            return self.twin
        if mode == "wait":
            self._compile(key, args)
            return self._ready[key]
        with _lock:
            if key in self._ready:
                return self._ready[key]
            if key not in self._pending:
                self._pending.add(key)
                _deferred.append((self, key, args))
        return self.twin

    def _compile(self, key: tuple, args) -> None:
        if key in self._ready:
            return
        try:
            kernel = self.kernel
            dispatcher = kernel.materialize() if hasattr(kernel, "materialize") else kernel
            import numba

            dispatcher.compile(tuple(numba.typeof(a) for a in args))
            fn = dispatcher
        except Exception as e:  # noqa: BLE001 - the twin computes the same
            log.debug("compiling %r for %r failed: %r", self.kernel, key, e)
            fn = self.twin
        self._ready[key] = fn

    def __repr__(self) -> str:
        return f"<KernelWithTwin {getattr(self.twin, '__qualname__', self.twin)!r}>"


__all__ = [
    "EXIT_WAIT_S",
    "IDLE_S",
    "KERNEL_MODES",
    "TWIN_SECONDS_BEFORE_COMPILE",
    "KernelWithTwin",
    "LazyDispatcher",
    "idle_seconds",
    "kernel_mode",
    "lazy_njit",
    "start_deferred_compilations",
    "wait_for_compilations",
    "working",
]
