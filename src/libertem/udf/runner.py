"""Main-node side of a run: validate, plan tasks, merge partial results in order."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.common.exceptions import UDFException
from libertem.common.progress import ProgressReporter
from libertem.common.roi import count_selected, normalize_roi
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.executor.base import JobExecutor
from libertem.io.dataset.base import DataSet, TilingRequest, make_tiling_scheme
from libertem.io.dataset.base.tiling import DEFAULT_TILE_BYTES, LARGE_TILE_BYTES
from libertem.udf.base import UDF, find_method, overrides
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta
from libertem.udf.partition_runner import UDFRunParams, UDFTask, aux_buffers
from libertem.udf.validation import check_clean_copy, required_resources

# partial results held back to merge in partition order, at most (bytes)
MAX_WAITING_BYTES = 512 * 1024 * 1024


@dataclass
class RunPlan:
    """Everything decided on the main node before a run starts.

    Attributes
    ----------
    udfs
        The UDFs, on the main node.
    mains
        Per UDF, its full-size result buffers and merge logic.
    tasks
        One task per partition with selected frames.
    params
        What all tasks share (shipped once).
    dataset_shape
        Shape of the dataset.
    roi
        Flat boolean ROI, or ``None``.
    n_selected
        Number of selected frames.
    """

    udfs: list[UDF]
    mains: list[_MainUDF]
    tasks: list[UDFTask]
    params: UDFRunParams
    dataset_shape: Shape
    roi: np.ndarray | None
    n_selected: int

    def all_done(self) -> BufferWrapper:
        """A damage buffer with every selected frame done."""
        done = np.ones(self.dataset_shape.nav.size, dtype=bool)
        if self.roi is not None:
            done = self.roi.copy()
        return _damage_buffer(done, self.dataset_shape)

    def release(self) -> None:
        """Point aux data back at the whole dataset after the run."""
        for udf in self.udfs:
            for buf in aux_buffers(udf):
                buf.bind_aux(0, self.dataset_shape.nav.size, None)


def _damage_buffer(damage: np.ndarray, shape: Shape) -> BufferWrapper:
    buf = BufferWrapper("nav", dtype=bool)
    buf.set_storage(damage)
    buf.set_result_context(shape, None)
    return buf


@dataclass
class UDFResults:
    """Partial or final results of a run.

    Attributes
    ----------
    buffers
        One dict per UDF: buffer name -> :class:`BufferWrapper`.
    damage
        Navigation-shaped boolean buffer: which frames are already processed.
    """

    buffers: tuple[dict[str, BufferWrapper], ...]
    damage: BufferWrapper

    def __getitem__(self, index: int) -> dict[str, BufferWrapper]:
        """The results of the UDF at ``index`` (same as ``buffers[index]``)."""
        return self.buffers[index]


class _MainUDF:
    """A UDF on the main node: its full-size buffers and how partial results merge in."""

    def __init__(self, udf: UDF, meta: UDFMeta, sig_shape: tuple[int, ...], n_selected: int):
        self.udf = udf
        udf.meta = meta
        declared = udf.get_result_buffers()
        for buf in declared.values():
            buf.allocate(n_selected, sig_shape)
        self.declared = declared
        self.mergeable = {k: b for k, b in declared.items() if b.use != "result_only"}
        self.custom_merge = overrides(udf, "merge")
        self.merge_all_only = not self.custom_merge and overrides(udf, "merge_all")
        self.pending: dict[Slice, UDFData] = {}
        if not (self.custom_merge or self.merge_all_only):
            for name, buf in self.mergeable.items():
                if buf.kind != "nav":
                    raise UDFException(
                        f"{type(udf).__name__} declares buffer {name!r} of kind={buf.kind!r} "
                        "but does not implement merge(dest, src) (or merge_all) to combine "
                        "partial results of partitions"
                    )
        udf.results = UDFData(declared)

    def merge(self, partial: dict[str, np.ndarray], start: int, n: int, sig_dims: int) -> None:
        if self.merge_all_only:
            key = Slice((start,), Shape((n,), sig_dims=0))
            self.pending[key] = UDFData(partial)
            return
        if not self.custom_merge:
            for name, arr in partial.items():
                self.mergeable[name].raw_data[start : start + n] = arr
            return
        for buf in self.mergeable.values():
            buf.set_view_nav_range(start, start + n)
        try:
            self.udf.merge(dest=UDFData(self.mergeable), src=UDFData(partial))
        finally:
            for buf in self.mergeable.values():
                buf.reset_view()

    def apply_merge_all(self) -> None:
        if not self.merge_all_only or not self.pending:
            return
        ordered = dict(sorted(self.pending.items(), key=lambda item: item[0].origin[0]))
        merged = self.udf.merge_all(ordered)
        for name, arr in merged.items():
            target = self.mergeable[name].raw_data
            target[...] = np.asarray(arr).reshape(target.shape)

    def results(self, dataset_shape: Shape, roi: np.ndarray | None) -> dict[str, BufferWrapper]:
        self.apply_merge_all()
        for buf in self.declared.values():
            buf.reset_view()
        computed = self.udf.get_results()
        out = {}
        for name, value in computed.items():
            decl = self.declared.get(name)
            if decl is None:
                raise UDFException(
                    f"{type(self.udf).__name__}.get_results returned {name!r}, which is not "
                    f"a declared buffer ({sorted(self.declared)})"
                )
            out[name] = _as_result(decl, value, dataset_shape, roi)
        return out


def _as_result(decl, value, dataset_shape: Shape, roi) -> BufferWrapper:
    arr = value.raw_data if isinstance(value, BufferWrapper) else np.asarray(value)
    result = BufferWrapper(decl.kind, decl.extra_shape, arr.dtype, decl.where, decl.use)
    if decl.kind == "nav":
        n = dataset_shape.nav.size if roi is None else int(np.count_nonzero(roi))
        arr = arr.reshape((n, *decl.extra_shape))
    result.set_storage(arr)
    result.set_result_context(dataset_shape, roi)
    return result


def _tiling_request(udfs: Sequence[UDF], methods: Sequence[str]) -> TilingRequest:
    sizes, depths = [], []
    for udf in udfs:
        prefs = udf.get_tiling_preferences() or {}
        size = prefs.get("total_size", UDF.TILE_SIZE_BEST_FIT)
        if size == UDF.TILE_SIZE_BEST_FIT:
            sizes.append(DEFAULT_TILE_BYTES)
        elif isinstance(size, (int, float)) and math.isinf(size):
            sizes.append(LARGE_TILE_BYTES)
        else:
            sizes.append(int(size))
        depth = prefs.get("depth", UDF.TILE_DEPTH_DEFAULT)
        if depth != UDF.TILE_DEPTH_DEFAULT and not (
            isinstance(depth, float) and math.isinf(depth)
        ):
            depths.append(int(depth))
    return TilingRequest(
        total_size=min(sizes) if sizes else DEFAULT_TILE_BYTES,
        depth=min(depths) if depths else None,
        full_frames=any(m != "tile" for m in methods),
        whole_partition=any(m == "partition" for m in methods),
    )


class UDFRunner:
    """Runs UDFs over a dataset with an executor; the data is read once for all of them.

    Parameters
    ----------
    udfs
        The UDFs to run together.
    """

    def __init__(self, udfs: Sequence[UDF]):
        if not udfs:
            raise UDFException("no UDF given")
        for udf in udfs:
            if not isinstance(udf, UDF):
                raise UDFException(f"expected UDF instances, got {type(udf).__name__}")
        self._udfs = list(udfs)

    def run_for_dataset(
        self,
        dataset: DataSet,
        executor: JobExecutor,
        roi: np.ndarray | None = None,
        progress: bool = False,
        backends: Sequence[str] | None = None,
    ) -> tuple[dict[str, BufferWrapper], ...]:
        """Run to completion; return one dict of results per UDF."""
        (final,) = self.run_for_dataset_iter(
            dataset, executor, roi, progress, backends, partial=False
        )
        return final.buffers

    def plan(
        self,
        dataset: DataSet,
        executor: JobExecutor,
        roi: np.ndarray | None = None,
        backends: Sequence[str] | None = None,
    ) -> RunPlan:
        """Validate the UDFs and inputs, negotiate tiling, create tasks and main buffers.

        Everything that can be known before work starts is checked here, so bad
        input fails before any task runs.
        """
        udfs = self._udfs
        for udf in udfs:
            check_clean_copy(udf)
        resources = required_resources(udfs, backends, executor.get_available_workers().has_cuda())
        methods = [find_method(udf) for udf in udfs]
        shape = dataset.shape
        sig_shape = tuple(shape.sig)
        sig_dims = len(sig_shape)
        roi_flat = normalize_roi(roi, shape.nav)
        n_selected = count_selected(roi_flat, 0, shape.nav.size)
        input_dtypes = [
            np.result_type(udf.get_preferred_input_dtype(), dataset.dtype) for udf in udfs
        ]
        read_dtype = input_dtypes[0] if len(set(input_dtypes)) == 1 else np.dtype(dataset.dtype)

        partitions = dataset.get_partitions()
        tasks, start = [], 0
        for partition in partitions:
            n = count_selected(roi_flat, partition.start, partition.stop)
            if n:
                tasks.append(UDFTask(partition, len(tasks), start, n, resources))
            start += n
        max_depth = max((p.stop - p.start for p in partitions), default=1)
        scheme = make_tiling_scheme(
            _tiling_request(udfs, methods),
            sig_shape,
            dataset.get_base_shape(),
            max(d.itemsize for d in input_dtypes),
            max_depth,
            dataset.get_preferred_depth(),
        )

        roi_nav = None if roi_flat is None else roi_flat.reshape(tuple(shape.nav))
        frame_indices = None if roi_flat is None else (0, np.flatnonzero(roi_flat))
        mains = []
        for udf, dtype in zip(udfs, input_dtypes):
            meta = UDFMeta(
                dataset_shape=shape,
                partition_shape=Shape((n_selected, *sig_shape), sig_dims=sig_dims),
                dataset_dtype=dataset.dtype,
                input_dtype=dtype,
                roi=roi_nav,
                tiling_scheme=scheme,
                frame_indices=frame_indices,
            )
            meta.slice = Slice((0,) * (sig_dims + 1), meta.partition_shape)
            mains.append(_MainUDF(udf, meta, sig_shape, n_selected))
            for buf in aux_buffers(udf):
                buf.bind_aux(0, shape.nav.size, roi_flat)
            if overrides(udf, "preprocess"):
                udf.preprocess()

        params = UDFRunParams(
            udf_specs=[(type(udf), udf._kwargs) for udf in udfs],
            input_dtypes=input_dtypes,
            read_dtype=read_dtype,
            dataset_shape=shape,
            dataset_dtype=np.dtype(dataset.dtype),
            roi=roi_flat,
            tiling_scheme=scheme,
            backends=None if backends is None else tuple(backends),
        )
        return RunPlan(udfs, mains, tasks, params, shape, roi_flat, n_selected)

    def run_for_dataset_iter(
        self,
        dataset: DataSet,
        executor: JobExecutor,
        roi: np.ndarray | None = None,
        progress: bool = False,
        backends: Sequence[str] | None = None,
        partial: bool = True,
    ) -> Iterator[UDFResults]:
        """Run, yielding :class:`UDFResults` after each merged partition (if ``partial``)
        and once at the end.

        Executors that build graphs instead of computing (they have a ``run_plan``
        method) get the whole plan and return the results in one step.
        """
        plan = self.plan(dataset, executor, roi, backends)
        run_plan = getattr(executor, "run_plan", None)
        if run_plan is not None:
            try:
                buffers = run_plan(plan)
            finally:
                plan.release()
            yield UDFResults(buffers=buffers, damage=plan.all_done())
            return
        yield from self._execute(plan, executor, progress, partial)

    def _execute(
        self, plan: RunPlan, executor: JobExecutor, progress: bool, partial: bool
    ) -> Iterator[UDFResults]:
        shape, roi_flat, mains = plan.dataset_shape, plan.roi, plan.mains
        sig_dims = len(shape.sig)
        damage = np.zeros(shape.nav.size, dtype=bool)
        reporter = ProgressReporter(plan.n_selected, progress)

        def snapshot() -> UDFResults:
            return UDFResults(
                buffers=tuple(main.results(shape, roi_flat) for main in mains),
                damage=_damage_buffer(damage.copy(), shape),
            )

        def merge(partials, task: UDFTask) -> None:
            for main, part in zip(mains, partials):
                main.merge(part, task.compressed_start, task.n_frames, sig_dims)
            p = task.partition
            damage[p.start : p.stop] = True if roi_flat is None else roi_flat[p.start : p.stop]

        # Partial results are merged in partition order, whatever order tasks finish
        # in, so that floating-point results are the same from run to run. Should too
        # much pile up behind a straggling task, the waiting ones are merged anyway.
        waiting: dict[int, tuple[list, UDFTask, int]] = {}
        waiting_bytes = 0
        merged_early: set[int] = set()
        next_id = 0
        finished = False
        try:
            handle = executor.scatter(plan.params)
            for partials, task in executor.run_tasks(
                plan.tasks, handle, uuid.uuid4().hex, reporter.update
            ):
                reporter.task_done(task.task_id, task.n_frames)
                nbytes = sum(np.asarray(a).nbytes for part in partials for a in part.values())
                waiting[task.task_id] = (partials, task, nbytes)
                waiting_bytes += nbytes
                merged_any = False
                while next_id in waiting or next_id in merged_early:
                    if next_id in waiting:
                        partials, task, nbytes = waiting.pop(next_id)
                        waiting_bytes -= nbytes
                        merge(partials, task)
                        merged_any = True
                    merged_early.discard(next_id)
                    next_id += 1
                if waiting_bytes > MAX_WAITING_BYTES:
                    for task_id in sorted(waiting):
                        partials, task, _ = waiting.pop(task_id)
                        merge(partials, task)
                        merged_early.add(task_id)
                    waiting_bytes = 0
                    merged_any = True
                if partial and merged_any:
                    yield snapshot()
            for task_id in sorted(waiting):
                merge(*waiting.pop(task_id)[:2])
            finished = True
        finally:
            reporter.close(finished)
            plan.release()
        yield snapshot()
