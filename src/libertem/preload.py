"""Imported by every executor before it runs tasks (and by Dask workers at start, as a
Dask ``preload`` module): optional extensions that change what can be read are
active everywhere.

Importing it imports numpy, PyTorch (if installed), libertem, ``hdf5plugin`` (if
installed: HDF5 files with its compression filters, such as LZ4, then open without a
user import) and, in CUDA workers, ``numba.cuda``, and raises this process's limit of
open files to the hard limit.

Unlike LiberTEM's, it does not import pydata.sparse (and with it numba), matplotlib,
or ``numba.cuda`` in CPU-only processes: each worker process would pay for them at
start (about half a second of CPU time), and the code that needs them imports them.
"""

from __future__ import annotations

import importlib
import logging
import os

import numpy  # noqa: F401

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


for _name in ("torch", "hdf5plugin"):
    _optional(_name)
if os.environ.get("LIBERTEM_USE_CUDA", "") not in ("", "-1"):
    _optional("numba.cuda")
raise_open_file_limit()

__all__ = ["raise_open_file_limit"]
