"""Build Dask graphs for UDF runs instead of computing them."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from libertem.common.backend import get_use_cuda
from libertem.common.buffers import (
    BufferWrapper,
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
from libertem.executor.utils.delayed_graph import (
    chunk_nav,
    clean_copy,
    delayed_to_buffer_wrappers,
    get_results,
    make_copy,
    merge_wrap,
    structure_from_task,
    task_wrap,
    unwrap_leaf,
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
from libertem.udf.mixins import UDFMergeAllMixin
from libertem.udf.results import UDFResults
from libertem.udf.runner import UDFRunner
from libertem.udf.validation import required_resources
from libertem.utils.devices import detect

try:  # helper C's module; the name is only re-exported here
    from libertem.corrections import CorrectionSet
except ImportError:  # pragma: no cover
    CorrectionSet = None


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
            name: chunk_nav(array, main.declared.get(name), sizes)
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
                clean_copy(udf, region),
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
                get_results, clean_copy(udf), arrays, shapes, _delayed_kwargs={"pure": False}
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
                chunk_nav(array, declared[name], sizes),
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
        return rebuild_nested([unwrap_leaf(item) for item in flat], mapping)

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
