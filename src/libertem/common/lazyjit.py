"""numba-compiled functions whose module does not import numba.

Importing numba takes about a fifth of a second, and every fresh process pays it: the
main process and each worker of a Dask cluster. Modules on the common data path (the
readers of raw and NumPy files, for example) hold compiled kernels for other formats
and decoders; :func:`lazy_njit` lets them define those kernels without importing
numba. numba is imported, and the function handed to ``numba.njit``, on first use:
a call, an attribute of the dispatcher (``.py_func``, ``.signatures``, ...), or a
compilation of other numba code that refers to it (as a global, through a closure, or
as an argument).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

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


__all__ = ["LazyDispatcher", "lazy_njit"]
