"""The user entry point: :class:`Context`."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence

import numpy as np

from libertem.analysis.context_mixin import AnalysisMixin
from libertem.common.buffers import BufferWrapper
from libertem.common.exceptions import DataSetException, ExecutorSpecException
from libertem.executor.base import JobExecutor
from libertem.io.dataset import detect, get_dataset_cls
from libertem.io.dataset.base import DataSet
from libertem.udf.base import UDF
from libertem.udf.runner import UDFResults, UDFRunner

_EXECUTOR_SPECS = (
    "inline",
    "synchronous",
    "threads",
    "dask",
    "dask-integration",
    "dask-make-default",
    "delayed",
)


def _ids(value, what: str) -> list[int] | None:
    """Normalize a count or a list of ids to a list of ids."""
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ExecutorSpecException(f"{what}={value}: cannot be negative")
        return list(range(value))
    return [int(v) for v in value]


def _make_executor(spec: str, cpus=None, gpus=None) -> JobExecutor:
    """Create the executor named by ``spec`` with the requested CPUs and GPUs."""
    if spec not in _EXECUTOR_SPECS:
        raise ExecutorSpecException(
            f"unknown executor spec {spec!r}; choose one of {', '.join(_EXECUTOR_SPECS)}"
        )
    cpu_ids, gpu_ids = _ids(cpus, "cpus"), _ids(gpus, "gpus")
    if gpu_ids and spec not in ("dask", "dask-make-default"):
        raise ExecutorSpecException(f"executor spec {spec!r} cannot use GPUs (gpus={gpus!r})")
    if spec in ("inline", "synchronous"):
        from libertem.executor.inline import InlineJobExecutor

        return InlineJobExecutor()
    if spec == "threads":
        from libertem.executor.concurrent import ConcurrentJobExecutor

        if cpu_ids is not None and not cpu_ids:
            raise ExecutorSpecException("cpus=0: the thread executor needs at least one CPU")
        return ConcurrentJobExecutor.make_local(None if cpu_ids is None else len(cpu_ids))
    if spec == "delayed":
        from libertem.executor.delayed import DelayedJobExecutor

        return DelayedJobExecutor()
    if spec == "dask-integration":
        from libertem.executor.integration import get_dask_integration_executor

        return get_dask_integration_executor()
    from libertem.executor.dask import DaskJobExecutor, cluster_spec
    from libertem.utils.devices import detect

    devices = detect()
    if cpu_ids is not None:
        devices["cpus"] = cpu_ids
    if gpu_ids is not None:
        missing = sorted(set(gpu_ids) - set(devices["cudas"]))
        if missing:
            raise ExecutorSpecException(
                f"gpus={gpus!r} requested, but CUDA devices {missing} are not available "
                f"(found: {list(devices['cudas']) or 'none'})"
            )
        devices["cudas"] = gpu_ids
    if not list(devices["cpus"]) and not list(devices["cudas"]):
        raise ExecutorSpecException(
            "no CPU and no GPU requested: the cluster would have no workers"
        )
    client_kwargs = {"set_as_default": spec == "dask-make-default"}
    return DaskJobExecutor.make_local(spec=cluster_spec(**devices), client_kwargs=client_kwargs)


async def _iterate_in_thread(gen: Iterator) -> AsyncIterator:
    """Drive a blocking generator from a worker thread, item by item."""
    done = object()
    try:
        while True:
            item = await asyncio.to_thread(next, gen, done)
            if item is done:
                return
            yield item
    finally:
        await asyncio.to_thread(gen.close)


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
            executor = _make_executor("dask")
        self.executor = executor
        self.plot_class = plot_class
        self._closed = False
        # closes what this Context created when it is closed, collected, or at exit
        self._finalizer = weakref.finalize(self, executor.close) if owns_executor else None

    @classmethod
    def make_with(
        cls,
        executor_spec: str = "dask",
        *,
        cpus: int | Sequence[int] | None = None,
        gpus: int | Sequence[int] | None = None,
        plot_class=None,
    ) -> Context:
        """A Context with a common executor choice.

        Parameters
        ----------
        executor_spec
            ``'inline'`` (alias ``'synchronous'``): this thread; ``'threads'``: a thread
            pool; ``'dask'``: a local Dask cluster; ``'dask-make-default'``: the same,
            made Dask's default scheduler; ``'dask-integration'``: whatever Dask
            scheduler is current; ``'delayed'``: results as Dask graphs.
        cpus
            Number (or ids) of CPU workers.
        gpus
            Number (or ids) of CUDA workers.
        plot_class
            Class used for live plots.

        Raises
        ------
        ExecutorSpecException
            For an unknown spec or resources that cannot be provided.
        """
        ctx = cls(
            executor=_make_executor(executor_spec, cpus=cpus, gpus=gpus), plot_class=plot_class
        )
        ctx._finalizer = weakref.finalize(ctx, ctx.executor.close)
        return ctx

    # datasets -----------------------------------------------------------------
    def load(self, filetype: str, *args, **kwargs) -> DataSet:
        """Open a dataset.

        Parameters
        ----------
        filetype
            ``'memory'``, ``'raw'``, ``'npy'`` or ``'auto'`` (detect from ``path``).
        *args, **kwargs
            Passed to the dataset class, e.g. ``path``, ``nav_shape``, ``sig_shape``,
            ``dtype``, ``sync_offset``.

        Raises
        ------
        DataSetException
            For an unknown filetype or data that cannot be read as described.
        """
        if not isinstance(filetype, str):
            raise DataSetException(f"filetype must be a string, got {type(filetype).__name__}")
        if filetype.lower() == "auto":
            path = kwargs.pop("path", args[0] if args else None)
            if path is None:
                raise DataSetException("filetype 'auto' needs a path")
            cls, params = detect(os.fspath(path), self.executor)
            kwargs = {**params, **kwargs}
            args = ()
        else:
            cls = get_dataset_cls(filetype)
        try:
            dataset = cls(*args, **kwargs)
        except TypeError as e:
            raise DataSetException(f"{filetype}: invalid arguments: {e}") from e
        dataset.set_num_workers(len(self.executor.get_available_workers().compute_workers()))
        dataset = dataset.initialize(self.executor)
        dataset.check_valid()
        return dataset

    # running UDFs ---------------------------------------------------------------
    def run_udf(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: np.ndarray | None = None,
        progress: bool = False,
        backends: Sequence[str] | None = None,
        plots=None,
        sync: bool = True,
    ):
        """Run one UDF, or several in one pass over the data.

        Parameters
        ----------
        dataset
            The dataset.
        udf
            A UDF, or a list or tuple of UDFs.
        roi
            Boolean mask over the navigation axes; only selected frames are processed.
        progress
            Show a progress bar.
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
        udfs, single = self._udf_list(udf)
        if plots:
            return self._run_udf_with_plots(
                dataset, udfs, single, roi, progress, backends, plots, sync
            )

        def run():
            results = UDFRunner(udfs).run_for_dataset(
                dataset, self.executor, roi=roi, progress=progress, backends=backends
            )
            return results[0] if single else results

        if sync:
            return run()
        return asyncio.to_thread(run)

    def run_udf_iter(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: np.ndarray | None = None,
        progress: bool = False,
        backends: Sequence[str] | None = None,
        plots=None,
        sync: bool = True,
    ) -> Iterator[UDFResults] | AsyncIterator[UDFResults]:
        """Run UDFs, yielding partial results as partitions finish.

        Yields :class:`~libertem.udf.runner.UDFResults` with ``.buffers`` (a tuple of
        dicts, one per UDF) and ``.damage``; the last item holds the final results.
        Closing the generator cancels the remaining work. With ``sync=False`` this is
        an async generator.
        """
        udfs, _ = self._udf_list(udf)
        plot_objects = self._prepare_plots(plots, dataset, udfs, roi)
        gen = UDFRunner(udfs).run_for_dataset_iter(
            dataset, self.executor, roi=roi, progress=progress, backends=backends
        )
        if sync:
            return self._wrap_iter_with_plots(gen, plot_objects, sync=True)
        return self._wrap_iter_with_plots(_iterate_in_thread(gen), plot_objects, sync=False)

    def map(
        self,
        dataset: DataSet,
        f,
        roi: np.ndarray | None = None,
        progress: bool = False,
        backends: Sequence[str] | None = None,
    ) -> BufferWrapper:
        """Apply ``f`` to every frame; return the ``kind='nav'`` result buffer.

        The result's per-frame shape and dtype are found by calling ``f`` on a
        frame of zeros. See :class:`~libertem.udf.auto.AutoUDF`.
        """
        from libertem.udf.auto import AutoUDF

        return self.run_udf(
            dataset=dataset, udf=AutoUDF(f=f), roi=roi, progress=progress, backends=backends
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
