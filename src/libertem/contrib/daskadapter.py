"""Dask arrays from datasets and from UDF task results."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from sparseconverter import ND_BACKENDS, NUMPY, for_backend

from libertem.common.executor import JobExecutor
from libertem.common.roi import count_selected, normalize_roi
from libertem.io.dataset.base import DataSet, DataTile, Partition, TilingScheme
from libertem.udf.classes import UDF


def _read_partition(
    partition: Partition, dtype, roi, n_frames: int, array_backend=None
) -> np.ndarray:
    sig_shape = tuple(partition.dataset_shape.sig)
    scheme = TilingScheme.make_for_shape(
        (max(1, partition.stop - partition.start), *sig_shape), partition.dataset_shape
    )
    # frames without stored data are not read: they stay zero
    out = np.zeros((n_frames, *sig_shape), dtype=dtype)
    for tile in partition.get_tiles(scheme, dtype, roi):
        start = tile.slice.origin[0]
        target = out[(slice(start, start + tile.slice.shape[0]), *tile.slice.get(sig_only=True))]
        target[...] = tile.data
    if array_backend is not None and array_backend != NUMPY:
        return for_backend(out, array_backend)
    return out


def make_dask_array(
    dataset: DataSet, dtype="float32", roi: np.ndarray | None = None, array_backend=None
):
    """A Dask array of the dataset, one chunk per partition.

    Parameters
    ----------
    dataset
        An initialized dataset (from ``Context.load``).
    dtype
        Dtype of the array.
    roi
        Boolean navigation mask: the array then holds only the selected frames,
        flat along one axis.
    array_backend
        Array type of the chunks: ``None`` or ``'numpy'`` for numpy arrays, or
        another n-dimensional backend (``'sparse.COO'``, ``'sparse.GCXS'``,
        ``'cupy'``, ...).

    Returns
    -------
    (dask.array.Array, workers)
        The array (navigation-shaped without ROI) and a worker map to pass as
        ``compute(workers=...)`` (chunk key -> hosts that hold its data);
        ``None`` when every worker can read every chunk.

    Raises
    ------
    ValueError
        For an array backend that holds only 2D arrays (the scipy.sparse ones).
    """
    if array_backend is not None and array_backend not in ND_BACKENDS:
        raise ValueError(
            f"make_dask_array: array_backend={array_backend!r} cannot hold arrays of more "
            f"than two axes; choose one of {sorted(ND_BACKENDS)}"
        )
    roi_flat = normalize_roi(roi, dataset.shape.nav)
    sig_shape = tuple(dataset.shape.sig)
    chunks = []
    workers = {}
    # one graph node for the ROI, shared by the partitions' tasks
    roi_node = None if roi_flat is None else dask.delayed(roi_flat, pure=True)
    for partition in dataset.get_partitions():
        n = count_selected(roi_flat, partition.start, partition.stop)
        if n == 0:
            continue
        block = dask.delayed(_read_partition, pure=True)(
            partition, dtype, roi_node, n, array_backend
        )
        meta = _read_partition_meta(len(sig_shape) + 1, dtype, array_backend)
        chunks.append(da.from_delayed(block, shape=(n, *sig_shape), dtype=dtype, meta=meta))
        get_locations = getattr(partition, "get_locations", None)
        locations = get_locations() if get_locations is not None else None
        if locations:
            workers[block.key] = list(locations)
    if not chunks:
        array = da.zeros((0, *sig_shape), dtype=dtype)
    else:
        array = da.concatenate(chunks, axis=0)
    if roi_flat is None:
        array = array.reshape(tuple(dataset.shape))
    if array_backend is not None and array_backend != NUMPY:
        # Dask may infer a numpy meta for the reshaped array; say what the chunks are
        meta = _read_partition_meta(array.ndim, dtype, array_backend)
        array = da.Array(array.dask, array.name, array.chunks, meta=meta)
    return array, (workers or None)


def task_results_array(
    dataset: DataSet, udf: UDF, roi: np.ndarray | None = None, executor: JobExecutor | None = None
) -> dict[str, da.Array]:
    """The UDF's per-task (per-partition) results as Dask arrays, before merging.

    ``kind='nav'`` buffers are concatenated along the (ROI-compressed) frames, one
    chunk per task; ``'sig'`` and ``'single'`` buffers are stacked, one entry per task.
    Computing the final result from these needs a merge equivalent to the UDF's.
    """
    from libertem.executor.delayed import DelayedJobExecutor
    from libertem.executor.inline import InlineJobExecutor
    from libertem.udf.runner import UDFRunner

    plan = UDFRunner([udf]).plan(dataset, executor or InlineJobExecutor(), roi)
    try:
        delayed = DelayedJobExecutor()
        delayed.register_master_udfs(plan.udfs)
        per_task = [
            results[0] for results, _task in delayed.run_tasks(plan.tasks, plan.params, None)
        ]
        out = {}
        for name, decl in plan.mains[0].mergeable.items():
            chunks = [results[name].raw_data for results in per_task]
            if decl.kind == "nav":
                out[name] = da.concatenate(chunks, axis=0)
            else:
                out[name] = da.stack(chunks)
        return out
    finally:
        plan.release()


def _read_partition_meta(ndim: int, dtype, array_backend):
    """An empty array of the chunk type, for Dask's ``meta``."""
    empty = np.empty((0,) * ndim, dtype=dtype)
    if array_backend is None or array_backend == NUMPY:
        return empty
    return for_backend(empty, array_backend)


__all__ = ["DataSet", "DataTile", "NUMPY", "make_dask_array", "task_results_array"]
