"""numba functions cached on disk, with a cache that notices changed callees.

numba's own on-disk cache (``cache=True``) keys a compiled function by its
bytecode and its closure, but not by the functions it calls: after a jitted
helper changes, a cached caller keeps running the old helper's code.
:func:`cached_njit` compiles with :class:`MyCPUDispatcher`, whose
:class:`MyFunctionCache` also hashes the bytecode of every jitted function the
function refers to (through globals or its closure, recursively).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable

import numba
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher
from numba.core.target_extension import CPU, dispatcher_registry, target_registry

from libertem.common.lazyjit import LazyDispatcher

#: numba's dispatchers take ``py_func, locals, targetoptions, pipeline_class`` (since 0.49)
old_dispatch = False


def hasher(x) -> str:
    """SHA-256 hex digest of ``x`` (bytes; anything else is pickled first)."""
    if not isinstance(x, (bytes, bytearray, memoryview)):
        x = pickle.dumps(x)
    return hashlib.sha256(x).hexdigest()


def _callees(py_func) -> list:
    """The jitted functions that ``py_func`` refers to by global name or closure."""
    found = []
    code = py_func.__code__
    scope = py_func.__globals__
    values = [scope.get(name) for name in code.co_names]
    for cell in py_func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for value in values:
        if isinstance(value, numba.core.dispatcher.Dispatcher):
            found.append(value.py_func)
        elif isinstance(value, LazyDispatcher):
            found.append(value.__wrapped__)
    return found


def _dependency_hash(py_func) -> str:
    """Hash of the bytecode (and constants) of all jitted functions ``py_func`` reaches."""
    seen = {id(py_func)}
    todo = _callees(py_func)
    digest = hashlib.sha256()
    while todo:
        func = todo.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        digest.update(f"{func.__module__}.{func.__qualname__}".encode())
        digest.update(func.__code__.co_code)
        digest.update(repr(func.__code__.co_consts).encode())
        todo.extend(_callees(func))
    return digest.hexdigest()


class MyFunctionCache(FunctionCache):
    """numba's function cache, keyed also by the code of the jitted functions called.

    Parameters
    ----------
    py_func
        The Python function being compiled.
    """

    def _index_key(self, sig, codegen):
        key = super()._index_key(sig, codegen)
        return (*key, _dependency_hash(self._py_func))

    def load_overload(self, *args, **kwargs):
        """Load a compiled overload from the cache; ``None`` (compile anew) if the
        entry cannot be read, e.g. written by another numba version."""
        try:
            return super().load_overload(*args, **kwargs)
        except Exception:
            return None


class MyCPUDispatcher(CPUDispatcher):
    """The CPU dispatcher of numba, caching with :class:`MyFunctionCache`."""

    def enable_caching(self) -> None:
        """Cache compiled code on disk with the dependency-aware cache."""
        self._cache = MyFunctionCache(self.py_func)


class MyCPU(CPU):
    """numba target ``'MyCPU'``: plain CPU code, dispatched by :class:`MyCPUDispatcher`."""


target_registry["MyCPU"] = MyCPU
dispatcher_registry[MyCPU] = MyCPUDispatcher


def cached_njit(*args, **kwargs) -> Callable:
    """Like ``numba.njit(..., cache=True)``, with a cache that notices changed callees.

    Accepts what ``numba.njit`` accepts; use as ``@cached_njit`` or
    ``@cached_njit(nogil=True)``.
    """
    kwargs.setdefault("cache", True)
    kwargs["_target"] = "MyCPU"
    return numba.njit(*args, **kwargs)


__all__ = [
    "MyCPU",
    "MyCPUDispatcher",
    "MyFunctionCache",
    "cached_njit",
    "hasher",
    "old_dispatch",
]
