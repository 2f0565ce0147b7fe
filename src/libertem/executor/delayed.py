"""Build Dask graphs for UDF runs instead of computing them."""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.executor.base import TaskEnvironment
from libertem.executor.integration import DaskSchedulerExecutor
from libertem.executor.utils.dask_buffer import DaskResultBufferWrapper
from libertem.udf.base import UDF, overrides
from libertem.udf.data import UDFData
from libertem.udf.validation import required_resources


def _item(results, udf_index: int, name: str):
    return results[udf_index][name]


def partial_chunk(
    partial, udf_index: int, name: str, decl: BufferWrapper, n_frames: int, sig_shape
) -> da.Array:
    """Buffer ``name`` of UDF ``udf_index`` in a task's (delayed) result, as a Dask array."""
    shape = decl.storage_shape(n_frames, tuple(sig_shape))
    item = dask.delayed(_item, pure=True)(partial, udf_index, name)
    return da.from_delayed(item, shape=shape, dtype=decl.dtype)


def _merge_step(udf_cls, kwargs, meta, decls, dest, partials, index, start, n):
    """One custom ``merge`` of a task's partial result into copies of the merged buffers."""
    src = partials[index]
    udf = udf_cls(**kwargs)
    udf.meta = meta
    buffers = {}
    for name, decl in decls.items():
        buf = BufferWrapper(decl.kind, decl.extra_shape, decl.dtype, decl.where, decl.use)
        buf.set_storage(np.array(dest[name], copy=True))
        buf.set_view_nav_range(start, start + n)
        buffers[name] = buf
    udf.merge(dest=UDFData(buffers), src=UDFData(src))
    return {name: buf.raw_data for name, buf in buffers.items()}


def _get_results(udf_cls, kwargs, meta, decls, merged):
    """``get_results`` of a clean copy over the merged buffers."""
    udf = udf_cls(**kwargs)
    udf.meta = meta
    buffers = {}
    for name, decl in decls.items():
        buf = BufferWrapper(decl.kind, decl.extra_shape, decl.dtype, decl.where, decl.use)
        buf.set_storage(np.asarray(merged[name]))
        buffers[name] = buf
    udf.results = UDFData(buffers)
    return {name: np.asarray(value) for name, value in udf.get_results().items()}


class DelayedJobExecutor(DaskSchedulerExecutor):
    """Returns UDF results as Dask arrays; nothing runs until they are computed.

    ``run_udf`` on a Context with this executor returns
    :class:`~libertem.executor.utils.dask_buffer.DaskResultBufferWrapper` objects
    with ``delayed_data`` / ``delayed_raw_data``. ``kind='nav'`` results are
    chunked by partition. A UDF's ``merge_all`` is preferred: it is called once with
    Dask arrays, which gives a flat graph; otherwise a custom ``merge`` is chained in
    ``dask.delayed`` calls.
    """

    @staticmethod
    def get_resources_from_udfs(udfs: UDF | Sequence[UDF]) -> dict[str, int]:
        """Worker resources to pass to ``compute(resources=...)`` for these UDFs."""
        if isinstance(udfs, UDF):
            udfs = [udfs]
        return required_resources(udfs, None, has_cuda=True)

    def run_plan(self, plan) -> tuple[dict[str, BufferWrapper], ...]:
        """Turn a run plan into Dask arrays of the results."""
        env = TaskEnvironment(worker="delayed")
        partials = [dask.delayed(task, pure=False)(plan.params, env) for task in plan.tasks]
        return tuple(
            self._results_for_udf(plan, index, main, partials)
            for index, main in enumerate(plan.mains)
        )

    def _results_for_udf(self, plan, index, main, partials):
        udf = main.udf
        sig_shape = tuple(plan.dataset_shape.sig)
        decls = {name: buf for name, buf in main.mergeable.items()}

        def chunk(partial, task, name):
            return partial_chunk(partial, index, name, decls[name], task.n_frames, sig_shape)

        if overrides(udf, "merge_all"):
            ordered = {
                Slice((task.compressed_start,), Shape((task.n_frames,), sig_dims=0)): UDFData(
                    {name: chunk(p, task, name) for name in decls}
                )
                for p, task in zip(partials, plan.tasks)
            }
            merged = {name: buf.raw_data for name, buf in decls.items()}
            if ordered:
                merged.update(udf.merge_all(ordered))
        elif main.custom_merge:
            acc = {name: buf.raw_data.copy() for name, buf in decls.items()}
            for p, task in zip(partials, plan.tasks):
                acc = dask.delayed(_merge_step, pure=True)(
                    type(udf),
                    udf._kwargs,
                    udf.meta,
                    decls,
                    acc,
                    p,
                    index,
                    task.compressed_start,
                    task.n_frames,
                )
            merged = {
                name: da.from_delayed(
                    dask.delayed(_item, pure=True)([acc], 0, name),
                    shape=decl.raw_data.shape,
                    dtype=decl.dtype,
                )
                for name, decl in decls.items()
            }
        else:
            merged = {}
            for name, decl in decls.items():
                chunks = [chunk(p, task, name) for p, task in zip(partials, plan.tasks)]
                merged[name] = (
                    da.concatenate(chunks, axis=0) if chunks else da.from_array(decl.raw_data)
                )
        return self._final(plan, main, merged)

    def _final(self, plan, main, merged) -> dict[str, BufferWrapper]:
        udf = main.udf
        declared = main.declared
        if type(udf).get_results is UDF.get_results:
            results = {
                name: da.asarray(value)
                for name, value in merged.items()
                if declared[name].use is None
            }
        else:
            arrays = {name: merged.get(name, buf.raw_data) for name, buf in declared.items()}
            computed = dask.delayed(_get_results, pure=True)(
                type(udf), udf._kwargs, udf.meta, declared, arrays
            )
            results = {}
            for name, decl in declared.items():
                if decl.use == "private":
                    continue
                shape = decl.storage_shape(plan.n_selected, tuple(plan.dataset_shape.sig))
                item = dask.delayed(_item, pure=True)([computed], 0, name)
                results[name] = da.from_delayed(item, shape=shape, dtype=decl.dtype)
        return {
            name: DaskResultBufferWrapper.from_dask(
                declared[name], array, plan.dataset_shape, plan.roi
            )
            for name, array in results.items()
        }
