"""Pickling code by value so that tracebacks still name its file and line.

cloudpickle replaces the file name of every code object it pickles by value with
``<dynamic-code>``; tracebacks from a worker then cannot show the user's file and
line. :func:`dumps` pickles like :func:`cloudpickle.dumps` but keeps the file name.
"""

from __future__ import annotations

import io
import types
from collections import ChainMap

import cloudpickle

_DYNAMIC = "<dynamic-code>"
_reduce_code = cloudpickle.Pickler.dispatch_table.get(types.CodeType)


def _reduce_code_keeping_filename(code: types.CodeType):
    ctor, args = _reduce_code(code)
    args = tuple(
        code.co_filename if isinstance(arg, str) and arg == _DYNAMIC else arg for arg in args
    )
    return ctor, args


class FilenamePickler(cloudpickle.Pickler):
    """A :class:`cloudpickle.Pickler` whose code objects keep ``co_filename``."""

    if _reduce_code is not None:
        dispatch_table = ChainMap(
            {types.CodeType: _reduce_code_keeping_filename}, cloudpickle.Pickler.dispatch_table
        )


def dumps(obj, protocol: int | None = None, buffer_callback=None) -> bytes:
    """``cloudpickle.dumps(obj)``, keeping the file names of code pickled by value."""
    with io.BytesIO() as f:
        FilenamePickler(f, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
        return f.getvalue()


__all__ = ["FilenamePickler", "dumps"]
