"""Dataset formats and the registry that maps filetype names to them."""

from __future__ import annotations

import importlib

from libertem.common.exceptions import DataSetException

_FORMATS: dict[str, str] = {
    "memory": "libertem.io.dataset.memory:MemoryDataSet",
    "raw": "libertem.io.dataset.raw:RawFileDataSet",
    "npy": "libertem.io.dataset.npy:NPYDataSet",
    "dask": "libertem.io.dataset.dask:DaskDataSet",
    "mrc": "libertem.io.dataset.mrc:MRCDataSet",
    "empad": "libertem.io.dataset.empad:EMPADDataSet",
    "blo": "libertem.io.dataset.blo:BloDataSet",
    "tvips": "libertem.io.dataset.tvips:TVIPSDataSet",
    "dm": "libertem.io.dataset.dm:DMDataSet",
    "ser": "libertem.io.dataset.ser:SERDataSet",
    "seq": "libertem.io.dataset.seq:SEQDataSet",
    "mib": "libertem.io.dataset.mib:MIBDataSet",
    "hdf5": "libertem.io.dataset.hdf5:H5DataSet",
}


def filetypes() -> list[str]:
    """Names accepted by ``Context.load`` besides ``'auto'``."""
    return sorted(_FORMATS)


def get_dataset_cls(filetype: str) -> type:
    """The dataset class registered for ``filetype``.

    Raises
    ------
    DataSetException
        If no format of that name is registered.
    """
    try:
        target = _FORMATS[filetype.lower()]
    except (KeyError, AttributeError):
        raise DataSetException(
            f"unknown filetype {filetype!r}; known: {', '.join(filetypes())} and 'auto'"
        ) from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def detect(path: str, executor=None) -> tuple[type, dict]:
    """Find the format of ``path``: the dataset class and its constructor arguments."""
    from libertem.io.dataset.base.files import check_file

    check_file(path)
    for filetype in _FORMATS:
        cls = get_dataset_cls(filetype)
        params = cls.detect_params(path, executor)
        if params:
            return cls, params["parameters"]
    raise DataSetException(f"{path}: could not determine the file format; pass a filetype")
