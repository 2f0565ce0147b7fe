"""Dask arrays from datasets and from UDF task results."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from libertem.common.roi import count_selected, normalize_roi
from libertem.executor.base import JobExecutor, TaskEnvironment
from libertem.io.dataset.base import DataSet, Partition, TilingScheme
from libertem.udf.base import UDF


def _read_partition(partition: Partition, dtype, roi_part, n_frames: int) -> np.ndarray:
    sig_shape = tuple(partition.dataset_shape.sig)
    scheme = TilingScheme(max(1, partition.stop - partition.start), sig_shape, sig_shape)
    out = np.empty((n_frames, *sig_shape), dtype=dtype)
    for tile in partition.get_tiles(scheme, dtype, roi_part):
        start = tile.slice.origin[0]
        target = out[(slice(start, start + tile.slice.shape[0]), *tile.slice.get(sig_only=True))]
        target[...] = tile.data
    return out


def make_dask_array(dataset: DataSet, dtype="float32", roi: np.ndarray | None = None):
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

    Returns
    -------
    (dask.array.Array, workers)
        The array (navigation-shaped without ROI) and a worker map to pass as
        ``compute(workers=...)``; ``None`` when every worker can read every chunk.
    """
    roi_flat = normalize_roi(roi, dataset.shape.nav)
    sig_shape = tuple(dataset.shape.sig)
    chunks = []
    for partition in dataset.get_partitions():
        n = count_selected(roi_flat, partition.start, partition.stop)
        if n == 0:
            continue
        roi_part = None if roi_flat is None else roi_flat[partition.start : partition.stop]
        block = dask.delayed(_read_partition, pure=True)(partition, dtype, roi_part, n)
        chunks.append(da.from_delayed(block, shape=(n, *sig_shape), dtype=dtype))
    if not chunks:
        array = da.zeros((0, *sig_shape), dtype=dtype)
    else:
        array = da.concatenate(chunks, axis=0)
    if roi_flat is None:
        array = array.reshape(tuple(dataset.shape))
    return array, None


def task_results_array(
    dataset: DataSet, udf: UDF, roi: np.ndarray | None = None, executor: JobExecutor | None = None
) -> dict[str, da.Array]:
    """The UDF's per-task (per-partition) results as Dask arrays, before merging.

    ``kind='nav'`` buffers are concatenated along the (ROI-compressed) frames, one
    chunk per task; ``'sig'`` and ``'single'`` buffers are stacked, one entry per task.
    Computing the final result from these needs a merge equivalent to the UDF's.
    """
    from libertem.executor.delayed import partial_chunk
    from libertem.executor.inline import InlineJobExecutor
    from libertem.udf.runner import UDFRunner

    plan = UDFRunner([udf]).plan(dataset, executor or InlineJobExecutor(), roi)
    try:
        env = TaskEnvironment(worker="delayed")
        sig_shape = tuple(dataset.shape.sig)
        partials = [dask.delayed(task, pure=False)(plan.params, env) for task in plan.tasks]
        out = {}
        for name, decl in plan.mains[0].mergeable.items():
            chunks = [
                partial_chunk(p, 0, name, decl, task.n_frames, sig_shape)
                for p, task in zip(partials, plan.tasks)
            ]
            if decl.kind == "nav":
                out[name] = da.concatenate(chunks, axis=0)
            else:
                out[name] = da.stack(chunks)
        return out
    finally:
        plan.release()
