"""The results of ``run_udf`` in a Zarr group, one array per buffer, and read back."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from libertem.common.buffers import to_numpy
from libertem.io.writers.zarr import clear_target, zarr_modules

# marks a group written by write_results_zarr
_RESULTS_MARK = "udf-results"


def _result_dicts(results) -> tuple[list[Mapping], bool]:
    """The result dicts of one or more UDFs, and whether there were several."""
    if hasattr(results, "buffers") and not isinstance(results, Mapping):
        results = results.buffers
    if isinstance(results, Mapping):
        return [results], False
    if isinstance(results, Sequence) and all(isinstance(r, Mapping) for r in results):
        return list(results), True
    raise TypeError(
        "results must be the dict that run_udf returns, or a list/tuple of such dicts, "
        f"got {type(results).__name__}"
    )


def _to_numpy(value) -> np.ndarray:
    return np.asarray(to_numpy(getattr(value, "data", value)))


def write_results_zarr(
    results,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    compressors: Any = "auto",
    zarr_format: int = 3,
) -> str:
    """Write the results of ``run_udf`` to a Zarr group, one array per buffer.

    Each array holds the buffer's ``.data`` (shape and dtype as there) and has the
    attributes ``kind`` (``'nav'``, ``'sig'`` or ``'single'``), ``extra_shape`` and
    ``dtype``. Where a buffer has entries without results (``valid_mask``, e.g.
    ``kind='nav'`` buffers of a run with ROI), the mask is stored as the boolean
    array of the same name in the subgroup ``valid_mask``.

    Parameters
    ----------
    results
        What ``run_udf`` returned: a dict of buffers (one UDF), or a list or tuple
        of them (several UDFs: one subgroup per UDF, named ``'0'``, ``'1'``...);
        also a ``UDFResults`` of ``run_udf_iter``. Plain arrays are accepted as values.
    path
        The group to create (a directory).
    overwrite
        Replace an existing Zarr store at ``path``.
    compressors
        Passed to ``zarr.create_array`` (``None``: uncompressed).
    zarr_format
        3 (default) or 2.

    Returns
    -------
    str
        The path of the store.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    TypeError
        For results that are not buffers or arrays, or buffers of ``object`` dtype.
    """
    zarr, LocalStore = zarr_modules()
    dicts, several = _result_dicts(results)
    arrays = []
    for idx, result in enumerate(dicts):
        for name, buf in result.items():
            data = _to_numpy(buf)
            if data.dtype.kind not in "biufcmM":
                raise TypeError(f"result {name!r}: dtype {data.dtype} cannot be written to Zarr")
            arrays.append((str(idx) if several else "", str(name), buf, data))
    path = os.fspath(path)
    clear_target(path, overwrite)
    root = zarr.open_group(store=LocalStore(path), mode="w", zarr_format=zarr_format)
    root.attrs["libertem"] = {
        "content": _RESULTS_MARK,
        "udfs": len(dicts) if several else None,
    }
    for prefix, name, buf, data in arrays:
        group = root.require_group(prefix) if prefix else root
        attrs = {"dtype": data.dtype.str}
        kind = getattr(buf, "kind", None)
        if kind is not None:
            attrs["kind"] = kind
            attrs["extra_shape"] = list(getattr(buf, "extra_shape", ()))
        group.create_array(name, data=data, compressors=compressors, attributes=attrs)
        valid = getattr(buf, "valid_mask", None)
        if valid is not None and not np.all(valid):
            masks = group.require_group("valid_mask")
            masks.create_array(name, data=np.asarray(valid, dtype=bool), compressors=compressors)
    return path


def read_results_zarr(path: str | os.PathLike, masked: bool = False):
    """Read results written by :func:`write_results_zarr`.

    Parameters
    ----------
    path
        The group.
    masked
        Return buffers with a stored valid mask as ``numpy.ma.MaskedArray``
        (invalid entries masked).

    Returns
    -------
    dict or list of dict
        Buffer name -> array; a list with one dict per UDF if several were written.

    Raises
    ------
    ValueError
        If ``path`` does not hold results written by :func:`write_results_zarr`.
    """
    zarr, LocalStore = zarr_modules()
    path = os.fspath(path)
    try:
        root = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError) as e:
        raise ValueError(f"{path}: not a Zarr group of UDF results ({e})") from e
    info = root.attrs.get("libertem") or {}
    if not isinstance(info, Mapping) or info.get("content") != _RESULTS_MARK:
        raise ValueError(f"{path}: not a Zarr group of UDF results")

    def read(group) -> dict[str, np.ndarray]:
        masks = group["valid_mask"] if "valid_mask" in group else None
        out = {}
        for name, arr in sorted(group.arrays()):
            data = arr[...]
            if masked and masks is not None and name in masks:
                data = np.ma.array(data, mask=~masks[name][...])
            out[name] = data
        return out

    n = info.get("udfs")
    if n is None:
        return read(root)
    return [read(root[str(i)]) for i in range(int(n))]


__all__ = ["read_results_zarr", "write_results_zarr"]
