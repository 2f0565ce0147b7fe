"""Setting up LiberTEM's Dask workers: specs, resource tags, devices, environment, logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator

from libertem.common.backend import set_use_cpu, set_use_cuda

CPU_RESOURCES = {"CPU": 1, "compute": 1, "ndarray": 1}

#: set in every worker process when it starts (see :func:`apply_numba_thread_env`);
#: not pre-spawn: the nanny would also put it into the environment of this process
WORKER_ENV = {"NUMBA_NUM_THREADS": "1"}

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_ before it spawns a worker, which turns off
# glibc's dynamic mmap threshold: every temporary of 128 KiB or more would then be a fresh
# mmap, zeroed and page-faulted on each tile. Keep such buffers on the heap instead. glibc
# reads these when the process starts, so they must be in the pre-spawn environment.
WORKER_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
}

#: environment variables that limit the threads of BLAS / OpenMP libraries
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def assign_cudas(cudas: int | Iterable[int]) -> Iterable[int]:
    """CUDA device ids for the CUDA workers.

    An iterable is taken as the ids (repeat an id for several workers on one
    device); an int ``n`` puts ``n`` workers round-robin on the devices found
    here, or on the ids ``0 ... n-1`` when none are found.

    Raises
    ------
    ValueError
        For a negative count.
    """
    if not isinstance(cudas, int):
        return [int(c) for c in cudas]
    if cudas < 0:
        raise ValueError(f"cudas={cudas}: the number of CUDA workers cannot be negative")
    if cudas == 0:
        return []
    from libertem.utils.devices import detect

    found = list(detect()["cudas"])
    if not found:
        return list(range(cudas))
    return [found[i % len(found)] for i in range(cudas)]


def cluster_spec(
    cpus: int | Iterable[int],
    cudas: int | Iterable[int],
    has_cupy: bool,
    name: str = "default",
    num_service: int = 1,
    options: dict | None = None,
    preload: tuple[str, ...] | None = None,
) -> dict:
    """Worker specs for a :class:`distributed.SpecCluster` of LiberTEM workers.

    One single-threaded worker process per CPU and per CUDA device id, each tagged
    with resources so that work is placed by capability: CPU workers carry
    ``CPU``, CUDA workers ``CUDA`` (and ``ndarray`` when CuPy can run there), both
    carry ``compute``. Service workers carry no compute resource and take light
    tasks.

    Workers are named ``'<name>-cpu-<id>'``, ``'<name>-service-<i>'`` and
    ``'<name>-cuda-<id>'`` (in this order; further workers on one CUDA device get
    ``-0``, ``-1``, ... appended). Service workers have no resources (``{}``).

    Parameters
    ----------
    cpus
        CPU ids (or their number) to start a worker for.
    cudas
        CUDA device ids (or a number of workers, see :func:`assign_cudas`). Asking
        for CUDA workers on a machine without visible CUDA devices gives a
        ``RuntimeWarning`` (the workers are set up all the same).
    has_cupy
        Whether CuPy is installed, so CUDA workers can run ``'cupy'`` UDFs.
    name
        Prefix of the worker names.
    num_service
        Number of service workers.
    options
        Extra keyword arguments for every worker (e.g. ``memory_limit``).
    preload
        Modules or scripts every worker imports at start (Dask's ``preload``), after
        ``libertem.preload``.
    """
    from distributed import Nanny

    cpus = range(cpus) if isinstance(cpus, int) else list(cpus)
    base = {"nthreads": 1, "memory_limit": 0, **(options or {})}
    base["preload"] = ["libertem.preload", *base.get("preload", []), *(preload or ())]
    spec = {}
    for cpu in cpus:
        spec[f"{name}-cpu-{cpu}"] = {
            "cls": Nanny,
            "options": {
                **base,
                "name": f"{name}-cpu-{cpu}",
                "resources": dict(CPU_RESOURCES),
                "env": {**WORKER_ENV, "LIBERTEM_USE_CPU": str(cpu)},
            },
        }
    for i in range(num_service):
        spec[f"{name}-service-{i}"] = {
            "cls": Nanny,
            "options": {
                **base,
                "name": f"{name}-service-{i}",
                "resources": {},
                "env": dict(WORKER_ENV),
            },
        }
    requested = cudas if isinstance(cudas, int) else list(cudas)
    if requested:
        from libertem.utils.devices import detect

        if not list(detect()["cudas"]):
            warnings.warn(
                "Specifying CUDA workers on system with no visible CUDA devices",
                RuntimeWarning,
                stacklevel=2,
            )
    seen: dict[int, int] = {}
    for device in assign_cudas(requested):
        resources = {"CUDA": 1, "compute": 1}
        if has_cupy:
            resources["ndarray"] = 1
        worker_name = f"{name}-cuda-{device}"
        if device in seen:
            worker_name += f"-{seen[device]}"
        seen[device] = seen.get(device, -1) + 1
        spec[worker_name] = {
            "cls": Nanny,
            "options": {
                **base,
                "name": worker_name,
                "resources": resources,
                "env": {
                    **WORKER_ENV,
                    "CUDA_VISIBLE_DEVICES": str(device),
                    "LIBERTEM_USE_CUDA": "0",
                },
            },
        }
    return spec


def worker_environment():
    """Dask config for our worker processes, in effect while they are spawned.

    Gives them the malloc settings above and turns off the statistical profiler,
    which samples the task thread every few milliseconds while holding the GIL.
    (Dask's own pre-spawn settings limit BLAS and OpenMP to one thread.)
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    return dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": {**environ, **WORKER_MALLOC_ENV},
            "distributed.worker.profile.enabled": False,
        }
    )


@contextlib.contextmanager
def set_num_threads_env(n=1, set_numba=None) -> Iterator[None]:
    """Set the thread-limit environment variables to ``n`` in the block.

    Processes started in the block (worker processes, for example) inherit them:
    ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and, if
    ``set_numba`` (default: when numba is not imported in this process yet),
    ``NUMBA_NUM_THREADS``. The previous values are restored afterwards.
    """
    if set_numba is None:
        set_numba = "numba" not in sys.modules
    names = list(THREAD_ENV_VARS) + (["NUMBA_NUM_THREADS"] if set_numba else [])
    previous = {var: os.environ.get(var) for var in names}
    try:
        for var in names:
            os.environ[var] = str(int(n))
        yield
    finally:
        for var, value in previous.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def apply_numba_thread_env() -> None:
    """Make numba in this process agree with its ``NUMBA_NUM_THREADS`` environment variable.

    Worker processes get ``NUMBA_NUM_THREADS`` only once they run, but a spawned
    process first re-imports the user's main script, and a script that imports a
    built-in UDF has imported numba by then, which read its configuration without
    the variable. numba re-reads the environment before every compilation and
    refuses a thread count that differs from the one its thread pool started with,
    so the first compilation in the worker would fail. Call this after setting the
    variable: numba's configuration is re-read while its threads have not started;
    if they have, the variable is set to the count they run with.
    """
    numba = sys.modules.get("numba")
    if numba is None:
        return
    try:
        numba.core.config.reload_config()
    except RuntimeError:
        os.environ["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
        numba.core.config.reload_config()


def worker_setup(resource, device) -> None:
    """Make this (worker) process use ``device`` of kind ``resource`` (``'CPU'`` or ``'CUDA'``).

    Raises
    ------
    ValueError
        For another resource kind.
    """
    if resource == "CUDA":
        set_use_cuda(int(device))
    elif resource == "CPU":
        set_use_cpu(int(device))
    else:
        raise ValueError(f"unknown device resource {resource!r}; expected 'CPU' or 'CUDA'")


_WORKER_SET_UP = {"done": False}


def setup_worker_from_environment() -> None:
    """Once per process: apply ``LIBERTEM_USE_CPU`` / ``LIBERTEM_USE_CUDA`` set by the spec."""
    if _WORKER_SET_UP["done"]:
        return
    _WORKER_SET_UP["done"] = True
    cuda = os.environ.get("LIBERTEM_USE_CUDA")
    cpu = os.environ.get("LIBERTEM_USE_CPU")
    if cuda not in (None, ""):
        worker_setup("CUDA", cuda)
    elif cpu not in (None, ""):
        worker_setup("CPU", cpu)


#: loggers whose level :func:`set_worker_log_level` sets
WORKER_LOGGERS = ("distributed", "dask", "tornado", "libertem")


def set_worker_log_level(level: str | int, force: bool = False) -> None:
    """Set the level of the Dask and LiberTEM loggers in this process.

    Run it on the workers with ``executor.run_each_worker(set_worker_log_level,
    'WARNING')``. ``force`` also sets the root logger and its handlers.
    """
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        level = number
    for name in WORKER_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if force:
        root = logging.getLogger()
        root.setLevel(level)
        for handler in root.handlers:
            handler.setLevel(level)


__all__ = [
    "CPU_RESOURCES",
    "apply_numba_thread_env",
    "assign_cudas",
    "cluster_spec",
    "set_num_threads_env",
    "set_use_cpu",
    "set_use_cuda",
    "set_worker_log_level",
    "setup_worker_from_environment",
    "worker_environment",
    "worker_setup",
]
