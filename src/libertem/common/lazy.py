"""Module attributes that are imported from where they live on first access.

Several modules document names of other layers (LiberTEM's module layout), or
names whose import is slow (Dask, numba, scipy.sparse). :func:`lazy_names` gives
such a module the ``__getattr__`` and ``__dir__`` of PEP 562 that resolve them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(
    module_name: str, where: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a module with names that live elsewhere.

    Parameters
    ----------
    module_name
        The module's ``__name__``.
    where
        Name -> the module that defines it (imported on first access), or
        ``"module:attribute"`` where the name there is another one.

    Returns
    -------
    tuple
        Assign it as ``__getattr__, __dir__ = lazy_names(__name__, WHERE)``.

    Examples
    --------
    >>> getattr_, dir_ = lazy_names("m", {"sqrt": "math"})
    >>> getattr_("sqrt")(4.0)
    2.0
    >>> lazy_names("m", {"root": "math:sqrt"})[0]("root")(9.0)
    3.0
    """

    def __getattr__(name: str):
        source = where.get(name)
        if source is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        source, _, attr = source.partition(":")
        return getattr(importlib.import_module(source), attr or name)

    def __dir__() -> list[str]:
        module = sys.modules.get(module_name)
        own = vars(module) if module is not None else {}
        return sorted(set(own) | set(where))

    return __getattr__, __dir__


class LazyModule:
    """A module imported on first attribute access (``sparse = LazyModule("sparse")``).

    For modules that are slow to import (pydata.sparse imports numba) and needed only
    on some paths: checks on the hot path must not touch the proxy (they would import
    the module); see :func:`libertem.common.sparse.is_sparse` for how to ask whether an
    object belongs to a module without importing it.

    Parameters
    ----------
    name
        The module's name, e.g. ``'scipy.sparse'``.
    """

    def __init__(self, name: str):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__dict__["_lazy_name"])
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazily imported module {self.__dict__['_lazy_name']!r}>"


__all__ = ["LazyModule", "lazy_names"]
