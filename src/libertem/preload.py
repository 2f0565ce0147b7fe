"""Imported by every executor before it runs tasks (and by Dask workers at start, as a
Dask ``preload`` module): the heavy imports happen once, up front, and optional
extensions that change what can be read are active everywhere.

Importing it imports numpy, sparse, matplotlib's colour maps, PyTorch (if installed),
libertem, ``hdf5plugin`` (if installed: HDF5 files with its compression filters, such
as LZ4, then open without a user import) and ``numba.cuda``, and raises this
process's limit of open files to the hard limit.
"""

from __future__ import annotations

import importlib
import logging

import matplotlib.cm  # noqa: F401
import matplotlib.colors  # noqa: F401
import numpy  # noqa: F401
import sparse  # noqa: F401

import libertem  # noqa: F401
from libertem.common.backend import set_file_limit

log = logging.getLogger(__name__)


def _optional(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    except Exception as e:  # an installed extension that fails to load must not stop work
        log.warning("could not import %s: %r", name, e)


#: raise the soft limit of open files to the hard limit (where the OS has one)
raise_open_file_limit = set_file_limit


for _name in ("torch", "hdf5plugin", "numba.cuda"):
    _optional(_name)
raise_open_file_limit()

__all__ = ["raise_open_file_limit"]
