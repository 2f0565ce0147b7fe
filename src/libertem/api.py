"""The user entry point: :class:`Context`."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from libertem.analysis.context_mixin import AnalysisMixin
from libertem.common.async_utils import (  # noqa: F401 - documented here too
    async_generator,
    run_agen_get_last,
    run_gen_get_last,
)
from libertem.common.buffers import BufferWrapper
from libertem.common.exceptions import ExecutorSpecException  # noqa: F401 - documented here
from libertem.common.lazy import lazy_names
from libertem.common.progress import ProgressReporter
from libertem.common.roi import normalize_roi
from libertem.executor.base import JobExecutor
from libertem.executor.specs import make_executor
from libertem.udf.auto import AutoUDF
from libertem.udf.classes import UDF
from libertem.udf.result_generator import (  # noqa: F401 - documented here too
    ResultAsyncGenerator,
    ResultGenerator,
    RunUDFAGenType,
    RunUDFAGenTypeL,
    RunUDFGenType,
    RunUDFGenTypeL,
)
from libertem.udf.results import UDFResults  # noqa: F401 - documented here too

if TYPE_CHECKING:  # documented names, for type checkers only
    from libertem.io.dataset.base import DataSet
    from libertem.viz.base import Live2DPlot  # noqa: F401


class Context(AnalysisMixin):
    """Loads datasets and runs UDFs on them with an executor.

    Parameters
    ----------
    executor
        Where the work runs. By default a local Dask.distributed cluster with one
        single-threaded worker process per CPU core (and per CUDA device).
    plot_class
        Class used for live plots (default :class:`~libertem.viz.mpl.MPLLive2DPlot`).

    Examples
    --------
    >>> from libertem.api import Context
    >>> from libertem.executor.inline import InlineJobExecutor
    >>> from libertem.udf.sum import SumUDF
    >>> ctx = Context(executor=InlineJobExecutor())
    >>> ds = ctx.load("memory", datashape=(4, 4, 8, 8), sig_dims=2)
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.shape
    (8, 8)
    """

    def __init__(self, executor: JobExecutor | None = None, plot_class=None):
        owns_executor = executor is None
        if executor is None:
            executor = self._create_local_executor()
        self.executor = executor
        self.plot_class = plot_class
        self._closed = False
        # closes what this Context created when it is closed, collected, or at exit
        self._finalizer = weakref.finalize(self, executor.close) if owns_executor else None

    def _create_local_executor(self) -> JobExecutor:
        """The executor of a Context created without one (subclasses choose another).

        By default a local Dask.distributed cluster with one single-threaded worker
        process per CPU core and per CUDA device.
        """
        return make_executor("dask")

    @classmethod
    def make_with(
        cls,
        executor_spec: str = "dask",
        *,
        cpus: int | Sequence[int] | None = None,
        gpus: int | Sequence[int] | None = None,
        plot_class=None,
        snooze_timeout: float | None = None,
        main_process_gpu: int | bool | None = None,
    ) -> Context:
        """A Context with a common executor choice.

        Parameters
        ----------
        executor_spec
            ``'inline'`` (alias ``'synchronous'``): this thread; ``'threads'``: a thread
            pool; ``'dask'``: a local Dask cluster; ``'dask-make-default'``: the same,
            made Dask's default scheduler; ``'dask-integration'``: whatever Dask
            scheduler is current; ``'delayed'``: results as Dask graphs;
            ``'pipelined'``: one pinned worker process per core.
        cpus
            Number (or ids) of CPU workers (``0``: none; a Dask cluster then has only
            its service worker).
        gpus
            Number (or ids) of CUDA workers.
        plot_class
            Class used for live plots.
        snooze_timeout
            For ``'dask'`` and ``'dask-make-default'``: stop the workers after this
            many idle seconds (they come back on the next run); ignored otherwise.
        main_process_gpu
            CUDA device for work in this process (see
            :func:`libertem.executor.base.make_canonical`).

        Raises
        ------
        ExecutorSpecException
            For an unknown spec, ``cpus`` for ``'inline'``, ``'synchronous'``,
            ``'dask-integration'`` or ``'delayed'``, ``gpus`` for those or
            ``'threads'``, or GPUs (also ``main_process_gpu``) that are not there.
        ValueError
            For a ``main_process_gpu`` that is not a bool, an int or ``None``.
        """
        ctx = cls(
            executor=make_executor(
                executor_spec,
                cpus=cpus,
                gpus=gpus,
                snooze_timeout=snooze_timeout,
                main_process_gpu=main_process_gpu,
            ),
            plot_class=plot_class,
        )
        ctx._finalizer = weakref.finalize(ctx, ctx.executor.close)
        return ctx

    # datasets -----------------------------------------------------------------
    def load(self, filetype: str, *args, io_backend=None, **kwargs) -> DataSet:
        """Open a dataset.

        Parameters
        ----------
        filetype
            A format name (``'raw'``, ``'npy'``, ``'hdf5'``, ``'mib'``, ..., see
            :data:`libertem.io.dataset.filetypes`), ``'memory'``, or ``'auto'``
            (detect the format of ``path``).
        *args, **kwargs
            Passed to the dataset class, in its order: e.g. ``path``, ``nav_shape``,
            ``sig_shape``, ``dtype``, ``sync_offset``.
        io_backend
            How to read the files: an :class:`~libertem.io.dataset.base.IOBackend`
            (``MMapBackend()``, ``BufferedBackend()``, ``DirectBackend()``) or its id;
            ``None``: the format's default.

        Raises
        ------
        DataSetException
            For an unknown filetype or data that cannot be read as described.
        """
        from libertem.io.dataset import load

        if io_backend is not None:
            kwargs["io_backend"] = io_backend
        return load(filetype, *args, executor=self.executor, **kwargs)

    # running UDFs ---------------------------------------------------------------
    def run_udf(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi=None,
        corrections=None,
        progress: bool | ProgressReporter = False,
        backends=None,
        plots=None,
        sync=True,
    ):
        """Run one UDF, or several in one pass over the data.

        Parameters
        ----------
        dataset
            The dataset.
        udf
            A UDF, or a list or tuple of UDFs.
        roi
            Which frames to process: a boolean mask over the navigation axes (dense,
            or sparse: ``sparse.COO``, ``scipy.sparse``), the coordinates of one frame
            (a tuple), or pairs ``(coordinates, selected)``.
        corrections
            A :class:`~libertem.corrections.CorrectionSet` (dark frame, gain map,
            excluded pixels) applied to the data on the fly; by default the
            dataset's own corrections, if it has any.
        progress
            ``True`` for a progress bar, or a
            :class:`~libertem.common.progress.ProgressReporter` that receives the
            progress.
        backends
            Restrict the array backends, e.g. ``('numpy',)``.
        plots
            Live plots: ``True`` for one plot per plottable result channel, a list
            with one list of channels per UDF, or a list of plot objects; see
            :mod:`libertem.viz`.
        sync
            ``False`` returns an awaitable instead.

        Returns
        -------
        dict or tuple of dict
            Buffer name -> :class:`~libertem.common.buffers.BufferWrapper`, one dict
            per UDF; a single dict when ``udf`` is a single UDF.
        """
        kwargs = dict(
            dataset=dataset,
            udf=udf,
            roi=roi,
            corrections=corrections,
            progress=progress,
            backends=backends,
            plots=plots,
        )
        if sync:
            return self._run_sync(**kwargs, iterate=False)
        return self._run_async(**kwargs, iterate=False)

    def run_udf_iter(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi=None,
        corrections=None,
        progress: bool | ProgressReporter = False,
        backends=None,
        plots=None,
        sync=True,
    ) -> ResultGenerator | ResultAsyncGenerator:
        """Run UDFs, yielding partial results as partitions finish.

        Yields :class:`~libertem.udf.results.UDFResults` with ``.buffers`` (a tuple of
        dicts, one per UDF) and ``.damage``; the last item holds the final results.
        Closing the generator cancels the remaining work. With ``sync=False`` this is
        an async generator. The arguments are those of :meth:`run_udf`; the
        generator's ``update_parameters_experimental`` changes UDF parameters while
        the run goes on.
        """
        kwargs = dict(
            dataset=dataset,
            udf=udf,
            roi=roi,
            corrections=corrections,
            progress=progress,
            backends=backends,
            plots=plots,
        )
        if sync:
            return self._run_sync(**kwargs, iterate=True)
        return self._run_async(**kwargs, iterate=True)

    def _run_sync(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi=None,
        corrections=None,
        progress: bool | ProgressReporter = False,
        backends=None,
        plots=None,
        iterate: bool = False,
    ):
        """Run UDFs in this thread: every run of this Context goes through here.

        Returns the results (as :meth:`run_udf`), or with ``iterate=True`` a
        :class:`ResultGenerator` of partial results (as :meth:`run_udf_iter`). The
        async variants drive what this returns from a thread, so subclasses can
        prepare and finish runs here (e.g. start and end a live acquisition). All
        arguments are passed by keyword.
        """
        from libertem.udf.runner import UDFRunner

        udfs, single = self._udf_list(udf)
        roi = normalize_roi(roi, dataset.shape.nav)
        plot_objects = self._prepare_plots(plots, dataset, udfs, roi)
        runner = UDFRunner(udfs)
        run_kwargs = dict(roi=roi, progress=progress, corrections=corrections, backends=backends)
        if iterate or plot_objects:
            gen = runner.run_for_dataset_sync(dataset, self.executor, **run_kwargs)
            results = ResultGenerator(self._wrap_iter_with_plots(gen, plot_objects, True), runner)
            if iterate:
                return results
            final = run_gen_get_last(results)
        else:
            final = runner.run_for_dataset(dataset, self.executor, **run_kwargs)
        return final.buffers[0] if single else final.buffers

    def _run_async(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi=None,
        corrections=None,
        progress: bool | ProgressReporter = False,
        backends=None,
        plots=None,
        iterate: bool = False,
    ):
        """The async counterpart of :meth:`_run_sync`: an awaitable of the results, or
        (``iterate=True``) a :class:`ResultAsyncGenerator`; live plots are updated in
        the event loop."""
        kwargs = dict(
            dataset=dataset,
            udf=udf,
            roi=roi,
            corrections=corrections,
            progress=progress,
            backends=backends,
        )
        if not iterate and not plots:
            return asyncio.to_thread(self._run_sync, **kwargs, iterate=False)
        udfs, single = self._udf_list(udf)
        plot_objects = self._prepare_plots(
            plots, dataset, udfs, normalize_roi(roi, dataset.shape.nav)
        )
        agen = ResultAsyncGenerator(self._run_sync(**kwargs, iterate=True))
        if plot_objects:
            agen = self._wrap_iter_with_plots(agen, plot_objects, False)
        if iterate:
            return agen

        async def last():
            final = await run_agen_get_last(agen)
            return final.buffers[0] if single else final.buffers

        return last()

    def map(
        self,
        dataset: DataSet,
        f,
        roi=None,
        progress: bool | ProgressReporter = False,
        corrections=None,
        backends=None,
    ) -> BufferWrapper:
        """Apply ``f`` to every frame; return the ``kind='nav'`` result buffer.

        The result's per-frame shape and dtype are found by calling ``f`` on a
        frame of zeros. See :class:`~libertem.udf.auto.AutoUDF`.
        """
        return self.run_udf(
            dataset=dataset,
            udf=AutoUDF(f=f),
            roi=roi,
            progress=progress,
            corrections=corrections,
            backends=backends,
        )["result"]

    # lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        """Close the executor if this Context created it."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _udf_list(udf) -> tuple[list[UDF], bool]:
        if isinstance(udf, (list, tuple)):
            return list(udf), False
        return [udf], True


# Names LiberTEM documents here that load on first use: executors (Dask is slow to
# import), datasets (numba), analyses, corrections and the sparse helpers (scipy.sparse
# and pydata.sparse).
_LAZY_NAMES = {
    "ConcurrentJobExecutor": "libertem.executor.concurrent",
    "DaskJobExecutor": "libertem.executor.dask",
    "DelayedJobExecutor": "libertem.executor.delayed",
    "InlineJobExecutor": "libertem.executor.inline",
    "PipelinedExecutor": "libertem.executor.pipelined",
    "cluster_spec": "libertem.executor.dask",
    "get_dask_integration_executor": "libertem.executor.integration",
    "make_canonical": "libertem.executor.base",
    "DataSet": "libertem.io.dataset.base",
    "load": "libertem.io.dataset",
    "UDFRunner": "libertem.udf.runner",
    "CorrectionSet": "libertem.corrections",
    "sparse_to_coo": "libertem.common.sparse",
    "to_dense": "libertem.common.sparse",
    **{
        name: "libertem.analysis"
        for name in (
            "Analysis",
            "AnalysisResultSet",
            "BaseAnalysis",
            "COMAnalysis",
            "DiskMaskAnalysis",
            "MasksAnalysis",
            "PickFrameAnalysis",
            "PointMaskAnalysis",
            "RadialFourierAnalysis",
            "RingMaskAnalysis",
            "SumAnalysis",
        )
    },
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY_NAMES)
