"""Executors by name: what ``Context.make_with(executor_spec, cpus=..., gpus=...)`` starts."""

from __future__ import annotations

from libertem.common.exceptions import ExecutorSpecException
from libertem.executor.base import JobExecutor

#: the executor names of ``Context.make_with``
EXECUTOR_SPECS = (
    "inline",
    "synchronous",
    "threads",
    "dask",
    "dask-integration",
    "dask-make-default",
    "delayed",
    "pipelined",
)


#: executor specs that take neither ``cpus`` nor ``gpus`` (``'threads'``: no ``gpus``)
NO_CPU_SPECS = ("inline", "synchronous", "dask-integration", "delayed")


def _ids(value, what: str) -> list[int] | None:
    """Normalize a count or a list of ids to a list of ids."""
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ExecutorSpecException(f"{what}={value}: cannot be negative")
        return list(range(value))
    return [int(v) for v in value]


def make_executor(
    spec: str, cpus=None, gpus=None, snooze_timeout=None, main_process_gpu=None
) -> JobExecutor:
    """Create the executor named by ``spec`` with the requested CPUs and GPUs.

    ``snooze_timeout`` applies to the local Dask clusters; ``main_process_gpu`` to all
    (validated with :func:`~libertem.executor.base.make_canonical` before anything starts).

    Raises
    ------
    ExecutorSpecException
        For an unknown ``spec``, CPUs or GPUs it does not take, or devices that are
        not there.
    """
    if spec not in EXECUTOR_SPECS:
        raise ExecutorSpecException(
            f"unknown executor spec {spec!r}; choose one of {', '.join(EXECUTOR_SPECS)}"
        )
    if cpus is not None and spec in NO_CPU_SPECS:
        raise ExecutorSpecException(
            f"Executor type {spec} does not support specifying CPU workers at this time"
        )
    if gpus is not None and spec in (*NO_CPU_SPECS, "threads"):
        raise ExecutorSpecException(
            f"Executor type {spec} does not support specifying GPU workers at this time"
        )
    from libertem.executor.base import make_canonical

    main_process_gpu = make_canonical(main_process_gpu)
    cpu_ids, gpu_ids = _ids(cpus, "cpus"), _ids(gpus, "gpus")
    if spec in ("inline", "synchronous"):
        from libertem.executor.inline import InlineJobExecutor

        return InlineJobExecutor(main_process_gpu=main_process_gpu)
    if spec == "threads":
        from libertem.executor.concurrent import ConcurrentJobExecutor

        if cpu_ids is not None and not cpu_ids:
            raise ExecutorSpecException("cpus=0: the thread executor needs at least one CPU")
        return ConcurrentJobExecutor.make_local(
            None if cpu_ids is None else len(cpu_ids), main_process_gpu=main_process_gpu
        )
    if spec == "delayed":
        from libertem.executor.delayed import DelayedJobExecutor

        return DelayedJobExecutor(main_process_gpu=main_process_gpu)
    if spec == "dask-integration":
        from libertem.executor.integration import get_dask_integration_executor

        return get_dask_integration_executor(main_process_gpu=main_process_gpu)
    if spec == "pipelined":
        from libertem.executor.pipelined import make_for_context

        return make_for_context(cpu_ids, gpu_ids, main_process_gpu=main_process_gpu)
    from libertem.executor.dask import DaskJobExecutor, cluster_spec
    from libertem.utils.devices import detect

    devices = detect()
    if cpu_ids is not None:
        devices["cpus"] = cpu_ids
    if gpu_ids is not None:
        if gpu_ids and not list(devices["cudas"]):
            raise ExecutorSpecException("Cannot specify GPU workers as no GPUs detected")
        missing = sorted(set(gpu_ids) - set(devices["cudas"]))
        if missing:
            raise ExecutorSpecException(
                f"gpus={gpus!r} requested, but CUDA devices {missing} are not available "
                f"(found: {list(devices['cudas'])})"
            )
        devices["cudas"] = gpu_ids
    client_kwargs = {"set_as_default": spec == "dask-make-default"}
    return DaskJobExecutor.make_local(
        spec=cluster_spec(**devices),
        client_kwargs=client_kwargs,
        snooze_timeout=snooze_timeout,
        main_process_gpu=main_process_gpu,
    )


__all__ = ["EXECUTOR_SPECS", "NO_CPU_SPECS", "make_executor"]
