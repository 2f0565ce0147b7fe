"""Build Dask graphs for UDF runs instead of computing them."""

from __future__ import annotations

import copy
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np

from libertem.common.backend import get_use_cuda
from libertem.common.buffer_helpers import fill_value
from libertem.common.buffers import (
    ArrayWithMask,
    BufferWrapper,
    PlaceholderBufferWrapper,
)
from libertem.common.executor import (
    Environment,
    TaskCommHandler,
    TaskProtocol,
    resolve_params,
)
from libertem.common.math import prod
from libertem.common.scheduler import Worker, WorkerSet
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.executor.base import BaseJobExecutor, TaskEnvironment
from libertem.executor.utils.dask_buffer import (
    DaskBufferWrapper,
    DaskPreallocBufferWrapper,
    DaskResultBufferWrapper,
)
from libertem.executor.utils.delayed_unpack import (
    build_mapping,
    flatten_nested,
    rebuild_nested,
)
from libertem.io.dataset.base import DataSet
from libertem.udf.backends import get_resources_for_backends
from libertem.udf.classes import UDF, overrides, refuse_result_only
from libertem.udf.data import MergeAttrMapping, UDFData
from libertem.udf.merge import collect_results
from libertem.udf.mixins import UDFMergeAllMixin
from libertem.udf.results import UDFResults
from libertem.udf.runner import UDFRunner
from libertem.udf.validation import required_resources
from libertem.utils.devices import detect

try:  # helper C's module; the name is only re-exported here
    from libertem.corrections import CorrectionSet
except ImportError:  # pragma: no cover
    CorrectionSet = None


# --- the pieces of a delayed run ---------------------------------------------------------


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


def _get_results(udf, merged, shapes) -> dict[str, np.ndarray]:
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


def _unwrap_leaf(item):
    """The Dask array of a lazy, not final buffer (a dict of them for UDFData); else ``item``."""
    if isinstance(item, UDFData):
        return {name: _unwrap_leaf(buf) for name, buf in item.as_dict().items()}
    if isinstance(item, DaskBufferWrapper) and not isinstance(item, DaskResultBufferWrapper):
        return item.raw_data
    return item


def _chunk_nav(array, decl: BufferWrapper | None, sizes: tuple[int, ...]):
    """A ``kind='nav'`` result as one Dask chunk per partition (``sizes`` frames each)."""
    if decl is None or decl.kind != "nav" or not sizes:
        return array
    array = da.asarray(array)
    if array.ndim == 0 or array.shape[0] != sum(sizes) or array.chunks[0] == sizes:
        return array
    return array.rechunk((sizes, *array.chunks[1:]))


def _clean_copy(udf: UDF, region: Slice | None = None) -> UDF:
    """A fresh instance of ``udf`` with a copy of its meta (optionally another region)."""
    fresh = type(udf)(**udf._kwargs)
    meta = copy.copy(udf.meta)
    if region is not None:
        meta.slice = region
    fresh.meta = meta
    return fresh


# --- the executor ------------------------------------------------------------------------


class DelayedJobExecutor(BaseJobExecutor):
    """Returns UDF results as Dask arrays; nothing runs until they are computed.

    ``run_udf`` on a Context with this executor returns
    :class:`~libertem.executor.utils.dask_buffer.DaskResultBufferWrapper` objects
    with ``delayed_data`` / ``delayed_raw_data``. ``kind='nav'`` results are
    chunked by partition. A UDF's ``merge_all`` is preferred: it is called once with
    Dask arrays, which gives a flat graph; otherwise a custom ``merge`` is chained in
    ``dask.delayed`` calls (:func:`merge_wrap`).

    Parameters
    ----------
    main_process_gpu
        CUDA device the graph's tasks may use when computed in this process.
    """

    def __init__(self, main_process_gpu: int | None = None):
        super().__init__(main_process_gpu=main_process_gpu)
        self._master_udfs: list[UDF] | None = None

    # graph building ----------------------------------------------------------------------
    def run_delayed(self, fn, *args, _delayed_kwargs=None, **kwargs):
        """``dask.delayed(fn, **_delayed_kwargs)(*args, **kwargs)``: a node of the graph."""
        return dask.delayed(fn, **(_delayed_kwargs or {}))(*args, **kwargs)

    def register_master_udfs(self, udfs) -> None:
        """The main-node UDFs of the run whose tasks :meth:`run_tasks` gets next."""
        self._master_udfs = list(udfs)

    def run_tasks(
        self,
        tasks: Sequence[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Yield ``(results, task)`` per task without running anything.

        ``results`` is a list (one dict per UDF) of lazy
        :class:`DaskPreallocBufferWrapper` results; needs the run's main-node UDFs
        from :meth:`register_master_udfs`.
        """
        if self._master_udfs is None:
            raise RuntimeError(
                "DelayedJobExecutor.run_tasks needs the run's UDFs: call register_master_udfs"
            )
        env = TaskEnvironment(worker="delayed")
        params = resolve_params(params_handle)
        for task in tasks:
            structure = structure_from_task(self._master_udfs, task)
            flat = self._task_outputs(task, params, env, structure)
            partition = task.get_partition()
            yield delayed_to_buffer_wrappers(flat, structure, partition, params.roi), task

    def _task_outputs(self, task, params, env, structure) -> tuple:
        if not structure:
            return ()
        outputs = self.run_delayed(
            task_wrap, task, params, env, _delayed_kwargs={"pure": False, "nout": len(structure)}
        )
        return tuple(outputs) if len(structure) > 1 else (outputs[0],)

    def run_plan(self, plan) -> tuple[dict[str, BufferWrapper], ...]:
        """Turn a run plan (see ``UDFRunner.plan``) into Dask arrays of the results."""
        self.register_master_udfs(plan.udfs)
        env = TaskEnvironment(worker="delayed")
        per_task = []
        for task in plan.tasks:
            structure = structure_from_task(plan.udfs, task)
            flat = self._task_outputs(task, plan.params, env, structure)
            per_udf = [{} for _ in plan.udfs]
            for item, entry in zip(flat, structure):
                per_udf[entry.udf_index][entry.name] = item
            arrays = delayed_to_buffer_wrappers(
                flat, structure, task.partition, plan.roi, as_buffer=False
            )
            arrays += [{} for _ in range(len(plan.udfs) - len(arrays))]
            per_task.append((task, per_udf, arrays))
        return tuple(
            self._results_for_udf(plan, index, main, per_task)
            for index, main in enumerate(plan.mains)
        )

    def _results_for_udf(self, plan, index, main, per_task) -> dict[str, BufferWrapper]:
        udf = main.udf
        decls = dict(main.mergeable)
        if overrides(udf, "merge_all"):
            ordered = {
                Slice((task.compressed_start,), Shape((task.n_frames,), sig_dims=0)): (
                    MergeAttrMapping(arrays[index])
                )
                for task, _items, arrays in per_task
            }
            merged = {name: da.from_array(buf.raw_data) for name, buf in decls.items()}
            if ordered:
                returned = dict(udf.merge_all(ordered))
                declared = list(main.declared)
                if not set(returned) <= set(declared):
                    raise ValueError(
                        f"Returned result names from merge_all ({list(returned)}) are not "
                        f"contained within declared result buffer names ({declared})"
                    )
                merged.update(returned)
        elif main.custom_merge:
            merged = self._merge_chain(plan, udf, index, decls, per_task)
        else:
            merged = {}
            for name, decl in decls.items():
                chunks = [arrays[index][name] for _task, _items, arrays in per_task]
                merged[name] = (
                    da.concatenate(chunks, axis=0) if chunks else da.from_array(decl.raw_data)
                )
        sizes = tuple(task.n_frames for task, _items, _arrays in per_task)
        merged = {
            name: _chunk_nav(array, main.declared.get(name), sizes)
            for name, array in merged.items()
        }
        return self._final(plan, main, merged, sizes)

    def _merge_chain(self, plan, udf, index, decls, per_task) -> dict[str, da.Array]:
        acc = make_copy({name: buf.raw_data for name, buf in decls.items()})
        if not per_task:
            return {name: da.from_array(arr) for name, arr in acc.items()}
        damage = np.zeros(plan.dataset_shape.nav.size, dtype=bool)
        for task, items, _arrays in per_task:
            p = task.partition
            region = Slice((task.compressed_start,), Shape((task.n_frames,), sig_dims=0))
            acc = self.run_delayed(
                merge_wrap,
                _clean_copy(udf, region),
                acc,
                items[index],
                damage.copy(),
                _delayed_kwargs={"pure": False},
            )
            damage[p.start : p.stop] = True if plan.roi is None else plan.roi[p.start : p.stop]
        return {
            name: da.from_delayed(acc[name], shape=decl.raw_data.shape, dtype=decl.dtype)
            for name, decl in decls.items()
        }

    def _final(self, plan, main, merged, sizes=()) -> dict[str, BufferWrapper]:
        udf = main.udf
        declared = main.declared
        if type(udf).get_results is UDF.get_results:
            refuse_result_only(declared)
            results = {
                name: da.asarray(value)
                for name, value in merged.items()
                if declared[name].use is None
            }
        else:
            arrays = {name: merged.get(name, buf.raw_data) for name, buf in main.mergeable.items()}
            sig_shape = tuple(plan.dataset_shape.sig)
            shapes = {
                name: decl.storage_shape(plan.n_selected, sig_shape)
                for name, decl in declared.items()
            }
            computed = self.run_delayed(
                _get_results, _clean_copy(udf), arrays, shapes, _delayed_kwargs={"pure": False}
            )
            results = {}
            for name, decl in declared.items():
                if decl.use == "private":
                    continue
                results[name] = da.from_delayed(
                    computed[name], shape=shapes[name], dtype=decl.dtype
                )
        return {
            name: DaskResultBufferWrapper.from_dask(
                declared[name],
                _chunk_nav(array, declared[name], sizes),
                plan.dataset_shape,
                plan.roi,
            )
            for name, array in results.items()
        }

    # everything else runs right away, here ------------------------------------------------
    @staticmethod
    def get_resources_from_udfs(udfs, user_backends=None) -> dict[str, int]:
        """Worker resources to pass to ``compute(resources=...)`` for these UDFs."""
        if isinstance(udfs, UDF):
            udfs = [udfs]
        return required_resources(list(udfs), user_backends, has_cuda=True)

    @staticmethod
    def unwrap_results(results):
        """``results`` with its lazy buffers replaced by their Dask arrays.

        Walks any nest of ``dict``, ``list`` and ``tuple`` and returns the same
        structure with the same container types. :class:`DaskBufferWrapper` and
        :class:`DaskPreallocBufferWrapper` objects (and the buffers of a
        :class:`UDFData`, which becomes a dict) are replaced by their Dask arrays;
        final results (:class:`DaskResultBufferWrapper`) and every other value stay
        as they are. A :class:`UDFResults` stands for its tuple of buffer dicts.
        """
        if isinstance(results, UDFResults):
            results = results.buffers
        flat = flatten_nested(results, ignore_types=(UDFData,))
        mapping = build_mapping(results, ignore_types=(UDFData,))
        return rebuild_nested([_unwrap_leaf(item) for item in flat], mapping)

    def _compute(self, *args, udfs=None, user_backends=None, traverse=True, **kwargs):
        """Compute all Dask collections in the nests ``args`` in one ``dask.compute`` call.

        Each argument goes through :meth:`unwrap_results` first; values that are not
        Dask collections come back as the very same objects.

        Parameters
        ----------
        *args
            Nests of results (e.g. what ``run_udf`` returned), Dask arrays, ...
        udfs
            UDFs whose backends decide the Dask ``resources`` of the computation.
        user_backends
            Backends the user asked for (with ``udfs``).
        traverse
            Passed to :func:`dask.compute` (look into lists, tuples and dicts).
        **kwargs
            Passed to :func:`dask.compute`.

        Returns
        -------
        The computed nest for one argument, else a tuple with one per argument.

        Raises
        ------
        ValueError
            If both ``udfs`` and ``resources`` are given.
        """
        if udfs is not None:
            if "resources" in kwargs:
                raise ValueError("Cannot specify both udfs and resources to compute")
            kwargs["resources"] = self.get_resources_from_udfs(udfs, user_backends)
        unwrapped = [self.unwrap_results(arg) for arg in args]
        computed = dask.compute(*unwrapped, traverse=traverse, **kwargs)
        return computed[0] if len(args) == 1 else computed

    def modify_buffer_type(self, buf):
        """``buf`` as a :class:`DaskBufferWrapper` (lazy storage)."""
        return DaskBufferWrapper.from_buffer(buf)

    def get_udf_runner(self) -> type:
        """:class:`DelayedUDFRunner`."""
        return DelayedUDFRunner

    def run_function(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, called here and now."""
        return fn(*args, **kwargs)

    def map(self, fn, iterable):
        """``[fn(item) for item in iterable]``, called here and now."""
        return [fn(item) for item in iterable]

    def run_each_worker(self, fn, *args, **kwargs):
        """``{'delayed': fn(*args, **kwargs)}``."""
        return {"delayed": fn(*args, **kwargs)}

    def run_each_host(self, fn, *args, **kwargs):
        """``{hostname: fn(*args, **kwargs)}``."""
        return {socket.gethostname(): fn(*args, **kwargs)}

    def get_available_workers(self) -> WorkerSet:
        """One stand-in worker: the graph runs wherever it is computed."""
        return WorkerSet([Worker("delayed", socket.gethostname(), self._local_resources(), 1)])


class DelayedUDFRunner(UDFRunner):
    """The UDF runner of :class:`DelayedJobExecutor`: results are Dask graphs."""

    def results_for_dataset_sync(
        self,
        dataset: DataSet,
        executor: DelayedJobExecutor,
        environment: Environment | None = None,
        roi: np.ndarray | None = None,
        progress: bool = False,
        corrections=None,
        backends=None,
        dry: bool = False,
    ):
        """Like ``UDFRunner.results_for_dataset_sync``; the task results are lazy buffers."""
        executor.register_master_udfs(self._udfs)
        return super().results_for_dataset_sync(
            dataset, executor, environment, roi, progress, corrections, backends, dry
        )


__all__ = [
    "BufferWrapper",
    "CorrectionSet",
    "DaskBufferWrapper",
    "DaskPreallocBufferWrapper",
    "DaskResultBufferWrapper",
    "DataSet",
    "DelayedJobExecutor",
    "DelayedUDFRunner",
    "Environment",
    "MergeAttrMapping",
    "TaskCommHandler",
    "TaskProtocol",
    "UDF",
    "UDFData",
    "UDFMergeAllMixin",
    "UDFResults",
    "UDFRunner",
    "Worker",
    "WorkerSet",
    "delayed_to_buffer_wrappers",
    "detect",
    "get_resources_for_backends",
    "get_use_cuda",
    "make_copy",
    "merge_wrap",
    "prod",
    "structure_from_task",
    "task_wrap",
]
