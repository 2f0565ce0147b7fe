"""The pieces a delayed run's Dask graph is built from: the structure of a task's
results, task and merge wrappers, and the final results (for
:class:`~libertem.executor.delayed.DelayedJobExecutor`)."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import dask.array as da
import numpy as np

from libertem.common.buffer_helpers import fill_value
from libertem.common.buffers import (
    ArrayWithMask,
    BufferWrapper,
    PlaceholderBufferWrapper,
)
from libertem.common.slice import Slice
from libertem.executor.utils.dask_buffer import (
    DaskBufferWrapper,
    DaskPreallocBufferWrapper,
    DaskResultBufferWrapper,
)
from libertem.udf.classes import UDF
from libertem.udf.data import MergeAttrMapping, UDFData
from libertem.udf.merge import collect_results


class BufferStructure(NamedTuple):
    """One buffer of a task's result, as :func:`structure_from_task` describes it."""

    udf_index: int
    name: str
    kind: str
    extra_shape: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: np.dtype


def structure_from_task(udfs, task) -> list[BufferStructure]:
    """What a task returns, flat: one :class:`BufferStructure` per buffer of each UDF.

    ``udfs`` are the main-node UDFs (their ``meta`` set); the order is that of
    their declared buffers, ``use='result_only'`` ones left out, which is the
    order :func:`task_wrap` flattens the task's result in.
    """
    structure = []
    for index, udf in enumerate(udfs):
        sig_shape = tuple(udf.meta.dataset_shape.sig)
        for name, buf in udf.get_result_buffers().items():
            if buf.use == "result_only":
                continue
            shape = buf.storage_shape(task.n_frames, sig_shape)
            structure.append(
                BufferStructure(index, name, buf.kind, buf.extra_shape, shape, np.dtype(buf.dtype))
            )
    return structure


def task_wrap(task, *args, **kwargs) -> tuple:
    """Run ``task(*args, **kwargs)``; its per-UDF result dicts flattened into one tuple."""
    return tuple(arr for part in task(*args, **kwargs) for arr in part.values())


def delayed_to_buffer_wrappers(flat_delayed, flat_structure, partition, roi=None, as_buffer=True):
    """The delayed outputs of :func:`task_wrap` as per-UDF dicts of Dask results.

    Parameters
    ----------
    flat_delayed
        One ``dask.delayed`` object per entry of ``flat_structure``.
    flat_structure
        From :func:`structure_from_task`.
    partition
        The task's partition (sizes the buffers).
    roi
        The run's ROI, or ``None``.
    as_buffer
        :class:`DaskPreallocBufferWrapper` objects if true, else plain Dask arrays.

    Returns
    -------
    list of dict
        One dict per UDF: buffer name -> buffer (or array).
    """
    n_udfs = 1 + max((entry.udf_index for entry in flat_structure), default=-1)
    out: list[dict[str, Any]] = [{} for _ in range(n_udfs)]
    for item, entry in zip(flat_delayed, flat_structure):
        array = da.from_delayed(item, shape=entry.shape, dtype=entry.dtype)
        if as_buffer:
            buf = DaskPreallocBufferWrapper(array, entry.kind, entry.extra_shape, entry.dtype)
            buf.set_shape_partition(partition, roi)
            out[entry.udf_index][entry.name] = buf
        else:
            out[entry.udf_index][entry.name] = array
    return out


def make_copy(array_dict) -> dict[str, np.ndarray]:
    """A copy of each array of ``array_dict`` (merges in graphs must not change inputs)."""
    return {name: np.array(arr, copy=True) for name, arr in array_dict.items()}


def merge_wrap(udf, dest_dict, src_dict, raw_damage) -> dict[str, np.ndarray]:
    """One custom ``udf.merge`` of a task's results into copies of the merged buffers.

    Parameters
    ----------
    udf
        A UDF whose ``meta.slice`` is the merged task's region (in selected frames).
    dest_dict
        The merged buffers so far (full size); not changed.
    src_dict
        The task's results.
    raw_damage
        Flat boolean mask (whole navigation space) of the frames merged before
        this step (for ``meta.get_valid_nav_mask``), or ``None``.

    Returns
    -------
    dict
        The merged buffers after this step.
    """
    merged = make_copy(dest_dict)
    start, n = udf.meta.slice.origin[0], udf.meta.slice.shape[0]
    set_source = getattr(udf.meta, "set_valid_nav_source", None)
    if raw_damage is not None and set_source is not None:
        roi = udf.meta.roi
        set_source(raw_damage, None if roi is None else roi.reshape(-1))
    buffers = {}
    for name, decl in udf.get_result_buffers().items():
        if name not in merged:
            continue
        buf = BufferWrapper(decl.kind, decl.extra_shape, decl.dtype, decl.where, decl.use)
        buf.set_storage(merged[name])
        buf.set_view_nav_range(start, start + n)
        buffers[name] = buf
    dest = MergeAttrMapping({name: buf.view for name, buf in buffers.items()})
    udf.merge(dest=dest, src=MergeAttrMapping(src_dict))
    return {name: buf.raw_data for name, buf in buffers.items()}


def get_results(udf, merged, shapes) -> dict[str, np.ndarray]:
    """``get_results`` of a clean UDF copy over the merged buffers, checked and completed
    as on the main node; a ``use='result_only'`` buffer it leaves out holds the fill
    value (``shapes``: name -> raw shape)."""
    buffers = {}
    for name, decl in udf.get_result_buffers().items():
        if decl.use == "result_only":
            buffers[name] = PlaceholderBufferWrapper(
                decl.kind, decl.extra_shape, decl.dtype, decl.where, decl.use
            )
            continue
        buf = BufferWrapper(decl.kind, decl.extra_shape, decl.dtype, decl.where, decl.use)
        buf.set_storage(np.asarray(merged[name]))
        buffers[name] = buf
    udf.results = UDFData(buffers)
    collected = collect_results(buffers, udf.get_results())
    out = {}
    for name, value in collected.items():
        value = value.arr if isinstance(value, ArrayWithMask) else value
        out[name] = np.asarray(getattr(value, "raw_data", value))
    for name, buf in buffers.items():
        if name not in out and buf.use == "result_only":
            out[name] = np.full(shapes[name], fill_value(buf.dtype), dtype=buf.dtype)
    return out


def unwrap_leaf(item):
    """The Dask array of a lazy, not final buffer (a dict of them for UDFData); else ``item``."""
    if isinstance(item, UDFData):
        return {name: unwrap_leaf(buf) for name, buf in item.as_dict().items()}
    if isinstance(item, DaskBufferWrapper) and not isinstance(item, DaskResultBufferWrapper):
        return item.raw_data
    return item


def chunk_nav(array, decl: BufferWrapper | None, sizes: tuple[int, ...]):
    """A ``kind='nav'`` result as one Dask chunk per partition (``sizes`` frames each)."""
    if decl is None or decl.kind != "nav" or not sizes:
        return array
    array = da.asarray(array)
    if array.ndim == 0 or array.shape[0] != sum(sizes) or array.chunks[0] == sizes:
        return array
    return array.rechunk((sizes, *array.chunks[1:]))


def clean_copy(udf: UDF, region: Slice | None = None) -> UDF:
    """A fresh instance of ``udf`` with a copy of its meta (optionally another region)."""
    fresh = type(udf)(**udf._kwargs)
    meta = copy.copy(udf.meta)
    if region is not None:
        meta.slice = region
    fresh.meta = meta
    return fresh


__all__ = [
    "BufferStructure",
    "chunk_nav",
    "clean_copy",
    "delayed_to_buffer_wrappers",
    "get_results",
    "make_copy",
    "merge_wrap",
    "structure_from_task",
    "task_wrap",
    "unwrap_leaf",
]
