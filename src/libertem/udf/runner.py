"""Main-node side of a run: validate, plan tasks, merge partial results in order."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Iterator, Sequence

import numpy as np

from libertem.common.backend import get_use_cuda
from libertem.common.buffers import BufferWrapper
from libertem.common.exceptions import UDFException, UDFRunCancelled
from libertem.common.executor import JobCancelledError, TaskCommHandler, enter_scatter, scattered
from libertem.common.lazyjit import working
from libertem.common.progress import ProgressManager, ProgressReporter
from libertem.common.roi import count_selected, normalize_roi
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.udf.backends import choose_backend, host_sources
from libertem.udf.classes import UDF, overrides
from libertem.udf.merge import MainUDF
from libertem.udf.meta import UDFMeta
from libertem.udf.mixins import find_method
from libertem.udf.negotiation import negotiate_scheme
from libertem.udf.params import UDFParams
from libertem.udf.partition_runner import UDFPartRunner, aux_buffers
from libertem.udf.results import ResultsForDataSet, UDFResults
from libertem.udf.run_plan import (
    RunPlan,
    comm_handler,
    executor_threads_per_worker,
    resolve_corrections,
    resolve_input_dtypes,
    resolve_reporter,
    resolve_tile_dtypes,
)
from libertem.udf.task import UDFTask
from libertem.udf.validation import check_clean_copy, required_resources

# partial results held back to merge in partition order, at most (bytes)
MAX_WAITING_BYTES = 512 * 1024 * 1024


class UDFRunner:
    """Runs UDFs over a dataset with an executor; the data is read once for all of them.

    Parameters
    ----------
    udfs
        The UDFs to run together.
    debug
        Check more (e.g. contiguous views) at some cost in speed.
    progress_reporter
        Receives the progress of runs with ``progress=True`` (default: a tqdm bar).
    """

    def __init__(
        self,
        udfs: list[UDF],
        debug: bool = False,
        progress_reporter: ProgressReporter | None = None,
    ):
        if not udfs:
            raise ValueError("empty list of UDFs - nothing to do!")
        for udf in udfs:
            if not isinstance(udf, UDF):
                raise UDFException(f"expected UDF instances, got {type(udf).__name__}")
        self._udfs = list(udfs)
        self._debug = debug
        self._progress_reporter = progress_reporter
        #: the raw task results of the run in progress (for parameter updates)
        self.current_results: ResultsForDataSet | None = None

    @classmethod
    def get_part_runner_cls(cls) -> type[UDFPartRunner]:
        """The class that runs the UDFs over one partition on a worker."""
        return UDFPartRunner

    # planning ---------------------------------------------------------------------
    def plan(
        self,
        dataset,
        executor,
        roi: np.ndarray | None = None,
        backends: Sequence[str] | None = None,
        corrections=None,
    ) -> RunPlan:
        """Validate the UDFs and inputs, negotiate tiling, create tasks and main buffers.

        Everything that can be known before work starts is checked here, so bad
        input fails before any task runs. ``executor=None`` plans a dry run in this
        process (see :meth:`dry_run`).
        """
        udfs = self._udfs
        for udf in udfs:
            check_clean_copy(udf)
        if isinstance(backends, str):
            backends = (backends,)
        if executor is None:  # a dry run, planned for this process
            has_cuda = get_use_cuda() is not None
        else:
            has_cuda = executor.get_available_workers().has_cuda()
        resources = required_resources(udfs, backends, has_cuda)
        methods = [find_method(udf) for udf in udfs]
        shape = dataset.shape
        sig_shape = tuple(shape.sig)
        sig_dims = len(sig_shape)
        roi_flat = normalize_roi(roi, shape.nav)
        n_selected = count_selected(roi_flat, 0, shape.nav.size)
        corrections = resolve_corrections(dataset, corrections)
        dataset_backends = tuple(getattr(dataset, "array_backends", None) or ("numpy",))
        corrected = corrections is not None and corrections.have_corrections()
        host_numpy_only = not has_cuda and dataset_backends[0] == "numpy"
        input_dtypes, read_dtype = resolve_input_dtypes(
            udfs,
            dataset.dtype,
            stored_dtype=getattr(dataset, "stored_dtype", dataset.dtype),
            corrected=corrected,
            host_numpy_only=host_numpy_only,
        )
        tile_dtypes, read_dtype = resolve_tile_dtypes(
            udfs, input_dtypes, read_dtype, dataset.dtype, corrected, host_numpy_only
        )
        sources = host_sources(dataset_backends)

        roi_nav = None if roi_flat is None else roi_flat.reshape(tuple(shape.nav))
        selection = Slice((0,) * (sig_dims + 1), Shape((n_selected, *sig_shape), sig_dims))
        device_class = "cuda" if "CUDA" in resources else "cpu"
        threads = executor_threads_per_worker(executor)
        for udf, dtype in zip(udfs, input_dtypes):
            dev, backend, _ = choose_backend(udf.get_backends(), backends, device_class, sources)
            udf._backend = backend
            udf.set_meta(
                UDFMeta(
                    partition_slice=selection,
                    dataset_shape=shape,
                    roi=roi_nav,
                    dataset_dtype=dataset.dtype,
                    input_dtype=dtype,
                    corrections=corrections,
                    device_class=dev,
                    threads_per_worker=threads,
                    array_backend=backend,
                )
            )

        partitions = list(dataset.get_partitions())
        scheme = negotiate_scheme(
            udfs, methods, dataset, partitions, input_dtypes, sig_shape, corrections
        )
        params = UDFParams(
            kwargs=[udf._kwargs for udf in udfs],
            roi=roi_flat,
            corrections=corrections,
            tiling_scheme=scheme,
            udf_classes=[type(udf) for udf in udfs],
            input_dtypes=input_dtypes,
            read_dtype=read_dtype,
            tile_dtypes=tile_dtypes,
            dataset_shape=shape,
            dataset_dtype=np.dtype(dataset.dtype),
            backends=None if backends is None else tuple(backends),
            dataset_backends=dataset_backends,
        )
        udf_backends = [udf.get_backends() for udf in udfs]
        tasks, start = [], 0
        for partition in partitions:
            n = count_selected(roi_flat, partition.start, partition.stop)
            if n:
                tasks.append(
                    UDFTask(
                        partition,
                        len(tasks),
                        params.udf_classes,
                        udf_backends,
                        params.backends,
                        self.get_part_runner_cls(),
                        None,
                        n,
                        compressed_start=start,
                        resources=resources,
                    )
                )
            start += n

        mains = []
        merge_all = executor is not None and getattr(executor, "run_plan", None) is not None
        for udf in udfs:
            udf.meta._tiling_scheme = scheme
            # the main node merges host arrays: preprocess, merge and get_results use numpy
            udf._backend = udf.BACKEND_NUMPY
            mains.append(MainUDF(udf, sig_shape, n_selected, merge_all=merge_all))
            for buf in aux_buffers(udf):
                buf.bind_aux(0, shape.nav.size, roi_flat)
            if overrides(udf, "preprocess"):
                udf.preprocess()
        return RunPlan(udfs, mains, tasks, params, shape, roi_flat, n_selected)

    # running -----------------------------------------------------------------------
    def run_for_dataset(
        self,
        dataset,
        executor,
        roi: np.ndarray | None = None,
        progress: bool | ProgressReporter = False,
        corrections=None,
        backends=None,
        main_process_gpu: int | None = None,
        dry: bool = False,
    ) -> UDFResults:
        """Run to completion; return the :class:`UDFResults` (``.buffers``: one dict per UDF)."""
        for udf in self._udfs:
            udf.set_main_process_gpu(main_process_gpu)
        (final,) = self.run_for_dataset_sync(
            dataset,
            executor,
            roi=roi,
            progress=progress,
            corrections=corrections,
            backends=backends,
            dry=dry,
            iterate=False,
        )
        return final

    def run_for_dataset_sync(
        self,
        dataset,
        executor,
        roi: np.ndarray | None = None,
        progress: bool | ProgressReporter = False,
        corrections=None,
        backends=None,
        dry: bool = False,
        iterate: bool = True,
        copy_needed: bool = False,
    ) -> Iterator[UDFResults]:
        """Run, yielding :class:`UDFResults` after each merged partition (if ``iterate``)
        and once at the end.

        ``dry=True`` processes no data: the results are the buffers as allocated
        and pre-processed. ``copy_needed`` is accepted for compatibility; partial
        results are always snapshots that later merges do not change.

        Executors that build graphs instead of computing (they have a ``run_plan``
        method) get the whole plan and return the results in one step.
        """
        plan = self.plan(dataset, executor, roi, backends, corrections)
        if dry:
            plan.release()
            yield plan.results(np.zeros(plan.dataset_shape.nav.size, dtype=bool))
            return
        run_plan = getattr(executor, "run_plan", None)
        if run_plan is not None:
            try:
                buffers = run_plan(plan)
            finally:
                plan.release()
            yield UDFResults(buffers=buffers, damage=plan.all_done())
            return
        reporter = resolve_reporter(progress, self._progress_reporter)
        yield from self._execute(plan, executor, reporter, iterate, comm_handler(dataset))

    async def run_for_dataset_async(
        self,
        dataset,
        executor,
        cancel_id,
        roi: np.ndarray | None = None,
        corrections=None,
        backends=None,
        progress: bool | ProgressReporter = False,
        dry: bool = False,
        iterate: bool = True,
    ) -> AsyncGenerator[UDFResults, None]:
        """Like :meth:`run_for_dataset_sync`, as an async generator (the run goes on in a
        thread). ``cancel_id`` is accepted for compatibility; closing the generator
        cancels the run."""
        from libertem.common.async_utils import async_generator

        executor = executor.ensure_sync() if hasattr(executor, "ensure_sync") else executor
        gen = self.run_for_dataset_sync(
            dataset,
            executor,
            roi=roi,
            progress=progress,
            corrections=corrections,
            backends=backends,
            dry=dry,
            iterate=iterate,
        )
        async for item in async_generator(gen):
            yield item

    def results_for_dataset_sync(
        self,
        dataset,
        executor,
        environment=None,
        roi: np.ndarray | None = None,
        progress: bool = False,
        corrections=None,
        backends=None,
        dry: bool = False,
    ) -> tuple[ResultsForDataSet, object, UDFParams]:
        """Start the tasks of a run; return ``(results, params_handle, params)``.

        ``results`` yields the raw ``(partials, task)`` pairs as tasks finish,
        without merging. ``environment`` is accepted for compatibility: executors
        create the task environments themselves. ``dry=True`` starts no task.
        """
        plan = self.plan(dataset, executor, roi, backends, corrections)
        plan.release()
        handle = enter_scatter(executor, plan.params)
        tasks = [] if dry else plan.tasks
        comms = None if dry else comm_handler(dataset)
        gen = executor.run_tasks(tasks, handle, uuid.uuid4().hex, comms)
        return (
            ResultsForDataSet(gen, plan.params, handle, executor, plan.udfs),
            handle,
            plan.params,
        )

    @classmethod
    def dry_run(cls, udfs, dataset, roi=None) -> UDFResults:
        """The results the UDFs declare for ``dataset``, without processing any data.

        The run is planned for this process (one CPU worker with all cores, as the
        inline executor offers); no executor is needed.
        """
        return cls(list(udfs)).run_for_dataset(dataset, None, roi=roi, dry=True)

    @classmethod
    def inspect_udf(
        cls, udf: UDF, dataset, roi: np.ndarray | None = None
    ) -> dict[str, BufferWrapper]:
        """The result buffers (names, kinds, shapes, dtypes) ``udf`` returns for ``dataset``.

        Runs on a clean copy; no data is processed.
        """
        return dict(cls.dry_run([udf.copy()], dataset, roi).buffers[0])

    # merging -----------------------------------------------------------------------
    def _execute(
        self, plan: RunPlan, executor, reporter, partial: bool, comms: TaskCommHandler
    ) -> Iterator[UDFResults]:
        """Run the plan's tasks and merge their results in partition order.

        With ``partial``, yield the results after each merged partition (the last
        of them is complete), else once at the end. ``comms`` is the dataset's
        ``TaskCommHandler`` (it may send data to the tasks, e.g. from a live source).
        """
        shape, roi_flat, mains = plan.dataset_shape, plan.roi, plan.mains
        damage = np.zeros(shape.nav.size, dtype=bool)
        progress = ProgressManager(plan.tasks, uuid.uuid4().hex, reporter)
        n_merged = 0

        def merge(partials, task: UDFTask) -> None:
            nonlocal n_merged
            p = task.partition
            nav_range = (p.start, p.stop)
            for main, part in zip(mains, partials):
                main.merge(part, task.compressed_start, task.n_frames, damage, nav_range, roi_flat)
            damage[p.start : p.stop] = True if roi_flat is None else roi_flat[p.start : p.stop]
            n_merged += 1

        # Partial results are merged in partition order, whatever order tasks finish
        # in, so that floating-point results are the same from run to run. Should too
        # much pile up behind a straggling task, the waiting ones are merged anyway.
        waiting: dict[int, tuple[list, UDFTask, int]] = {}
        waiting_bytes = 0
        merged_early: set[int] = set()
        next_id = 0
        results = None
        yielded = False
        plan.params.progress = reporter is not None
        scope = contextlib.ExitStack()
        try:
            scope.enter_context(working())  # no kernel compilation while the run goes on
            handle = scope.enter_context(scattered(executor, plan.params))
            progress.connect(comms)
            gen = executor.run_tasks(plan.tasks, handle, uuid.uuid4().hex, comms)
            results = ResultsForDataSet(gen, plan.params, handle, executor, plan.udfs)
            self.current_results = results
            for partials, task in results:
                progress.finalize_task(task)
                nbytes = sum(np.asarray(a).nbytes for part in partials for a in part.values())
                waiting[task.task_id] = (partials, task, nbytes)
                waiting_bytes += nbytes
                ready = []
                while next_id in waiting or next_id in merged_early:
                    if next_id in waiting:
                        ready.append(waiting.pop(next_id))
                    merged_early.discard(next_id)
                    next_id += 1
                if waiting_bytes > MAX_WAITING_BYTES:
                    for task_id in sorted(waiting):
                        ready.append(waiting.pop(task_id))
                        merged_early.add(task_id)
                for partials, task, nbytes in ready:
                    waiting_bytes -= nbytes
                    merge(partials, task)
                    if partial:
                        yielded = True
                        yield plan.results(damage.copy())
            for task_id in sorted(waiting):
                merge(*waiting.pop(task_id)[:2])
                if partial:
                    yielded = True
                    yield plan.results(damage.copy())
        except JobCancelledError as e:
            raise UDFRunCancelled(f"UDF run cancelled after {n_merged} partitions") from e
        finally:
            if results is not None:
                results.close()
            scope.close()
            progress.close()
            plan.release()
        for udf in plan.udfs:
            udf.cleanup()
        if not yielded:
            yield plan.results(damage)


__all__ = [
    "RunPlan",
    "UDFRunner",
    "UDFResults",
    "comm_handler",
    "executor_threads_per_worker",
    "resolve_input_dtypes",
    "resolve_reporter",
]
