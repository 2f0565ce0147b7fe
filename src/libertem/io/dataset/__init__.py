"""Dataset formats and the registry that maps filetype names to them.

``Context.load(filetype, ...)`` looks the filetype up here; ``'auto'`` asks each
registered format whether it can open a path (:func:`detect`), those whose file
name extensions match first (:func:`get_search_order`).
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

import numpy as np

from libertem.common.async_utils import sync_to_async
from libertem.common.exceptions import DataSetArgumentError, DataSetException
from libertem.common.scheduler import Scheduler
from libertem.io.dataset.base import DataSet
from libertem.io.dataset.base.checks import check_dataset

#: filetype name -> dotted import path of its dataset class ("package.module.ClassName");
#: ``register_dataset_cls`` and ``unregister_dataset_cls`` change this very dict
filetypes: dict[str, Any] = {
    "hdf5": "libertem.io.dataset.hdf5.H5DataSet",
    "raw": "libertem.io.dataset.raw.RawFileDataSet",
    "raw_csr": "libertem.io.dataset.raw_csr.RawCSRDataSet",
    "mib": "libertem.io.dataset.mib.MIBDataSet",
    "blo": "libertem.io.dataset.blo.BloDataSet",
    "k2is": "libertem.io.dataset.k2is.K2ISDataSet",
    "ser": "libertem.io.dataset.ser.SERDataSet",
    "frms6": "libertem.io.dataset.frms6.FRMS6DataSet",
    "empad": "libertem.io.dataset.empad.EMPADDataSet",
    "dm": "libertem.io.dataset.dm.DMDataSet",
    "seq": "libertem.io.dataset.seq.SEQDataSet",
    "mrc": "libertem.io.dataset.mrc.MRCDataSet",
    "tvips": "libertem.io.dataset.tvips.TVIPSDataSet",
    "npy": "libertem.io.dataset.npy.NPYDataSet",
    "dask": "libertem.io.dataset.dask.DaskDataSet",
    "memory": "libertem.io.dataset.memory.MemoryDataSet",
    "zarr": "libertem.io.dataset.zarr.ZarrDataSet",
}


def register_dataset_cls(filetype: str, cls: str) -> None:
    """Register a dataset class under ``filetype``.

    Parameters
    ----------
    filetype
        The name passed to ``Context.load`` (case-insensitive).
    cls
        Where the class is: ``'package.module.ClassName'`` (or
        ``'package.module:ClassName'``), imported when first used; stored as given in
        :data:`filetypes`.
    """
    if not isinstance(cls, str) or not (":" in cls or "." in cls):
        raise ValueError(f"cls must be 'module.ClassName' or 'module:ClassName', got {cls!r}")
    filetypes[filetype.lower()] = cls


def unregister_dataset_cls(filetype: str) -> None:
    """Remove ``filetype`` from the registry (``KeyError`` if it is not registered)."""
    del filetypes[filetype.lower()]


def get_dataset_cls(filetype: str) -> type[DataSet]:
    """The dataset class registered for ``filetype``: imported from the dotted path
    stored in :data:`filetypes` (a class stored there is returned as it is).

    Raises
    ------
    DataSetException
        If no format of that name is registered, or its module cannot be imported.
    """
    try:
        target = filetypes[filetype.lower()]
    except (KeyError, AttributeError):
        raise DataSetException(
            f"unknown filetype {filetype!r}; known: {', '.join(sorted(filetypes))} and 'auto'"
        ) from None
    if isinstance(target, type):
        return target
    if ":" in target:
        module, name = target.split(":")
    else:
        module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise DataSetException(f"filetype {filetype!r}: cannot import {target}: {e}") from e


def _classes():
    for filetype in list(filetypes):
        try:
            yield filetype, get_dataset_cls(filetype)
        except DataSetException:
            continue


def build_extension_map() -> dict[str, list[str]]:
    """File name extensions (lower case, no dot) and the filetypes that read them."""
    result: dict[str, list[str]] = {}
    for filetype, cls in _classes():
        for ext in sorted(cls.get_supported_extensions()):
            result.setdefault(ext.lower(), []).append(filetype)
    return result


def get_extensions() -> set[str]:
    """All file name extensions of the registered formats."""
    return set(build_extension_map())


def get_search_order(path: str | np.ndarray) -> list[str]:
    """The filetypes to try for ``path``: those reading its extension first, then the rest."""
    if isinstance(path, np.ndarray):
        return ["memory"] if "memory" in filetypes else []
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    first = build_extension_map().get(ext, [])
    return first + [f for f in filetypes if f not in first]


def detect(path: str | np.ndarray, executor=None) -> dict[str, Any]:
    """The format of ``path`` and the parameters to open it.

    Returns
    -------
    dict
        ``{"type": filetype, "parameters": {...}}`` (plus any ``"info"`` the format
        reports), or an empty dict if no format recognises the file.

    Raises
    ------
    DataSetException
        If ``path`` is not a readable file.
    """
    from libertem.io.dataset.base.files import check_file

    if isinstance(path, np.ndarray):
        return {"type": "memory", "parameters": {"data": path}}
    is_dir = os.path.isdir(path)  # directory formats: Zarr stores
    if not is_dir:
        check_file(path)
    for filetype in get_search_order(path):
        try:
            cls = get_dataset_cls(filetype)
        except DataSetException:
            continue
        try:
            params = cls.detect_params(os.fspath(path), executor)
        except OSError:
            if not is_dir:
                raise
            continue  # a format of files, handed a directory
        if params:
            return {"type": filetype, **params}
    return {}


def _check_arguments(cls: type, name: str, args: tuple, kwargs: dict) -> None:
    """Refuse arguments that the constructor cannot take (``DataSetArgumentError``);
    what the constructor itself raises (e.g. ``TypeError`` for a missing shape)
    reaches the caller unchanged."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise DataSetArgumentError(f"{name}: invalid arguments: {e}") from e


def load(filetype: str, *args, enable_async: bool = False, executor, **kwargs):
    """Open and initialize a dataset (what ``Context.load`` does).

    Parameters
    ----------
    filetype
        A registered filetype, ``'auto'`` (detect from ``path``), or a ``DataSet``
        subclass.
    *args, **kwargs
        Passed to the dataset class.
    enable_async
        Return a coroutine that opens the dataset in a thread.
    executor
        The executor the dataset is initialized with (its workers count for the
        partitioning).

    Raises
    ------
    DataSetException
        For an unknown filetype, undetectable files, wrong arguments, or data that
        cannot be read as described.
    """
    if enable_async:
        return sync_to_async(load, None, filetype, *args, executor=executor, **kwargs)
    if isinstance(filetype, type) and issubclass(filetype, DataSet):
        cls, name = filetype, filetype.__name__
    elif not isinstance(filetype, str):
        raise DataSetException(f"filetype must be a string, got {type(filetype).__name__}")
    elif filetype.lower() == "auto":
        path = kwargs.pop("path", args[0] if args else None)
        if path is None:
            raise DataSetException("filetype 'auto' needs a path")
        found = detect(path, executor)
        if not found:
            raise DataSetException(f"{path}: could not determine the file format; pass a filetype")
        cls, name = get_dataset_cls(found["type"]), found["type"]
        kwargs = {**found["parameters"], **kwargs}
        args = ()
    else:
        cls, name = get_dataset_cls(filetype), filetype
    _check_arguments(cls, name, args, kwargs)
    dataset = cls(*args, **kwargs)
    if executor is not None:
        workers = executor.get_available_workers().compute_workers()
        dataset.set_num_cores(max(1, len(workers)))
    dataset = dataset.initialize(executor)
    check_dataset(dataset, getattr(dataset, "path", None) or name)
    dataset.check_valid()
    return dataset


__all__ = [
    "DataSet",
    "DataSetException",
    "Scheduler",
    "build_extension_map",
    "detect",
    "filetypes",
    "get_dataset_cls",
    "get_extensions",
    "get_search_order",
    "load",
    "register_dataset_cls",
    "sync_to_async",
    "unregister_dataset_cls",
]
