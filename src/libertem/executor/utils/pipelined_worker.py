"""What runs in a worker process of the pipelined executor: a loop over requests."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any, Literal

import cloudpickle

from libertem.common.executor import SimpleMPWorkerQueue, WorkerContext
from libertem.executor.base import TaskEnvironment
from libertem.executor.utils.dask_setup import THREAD_ENV_VARS, WORKER_ENV, worker_setup

WORKER_THREAD_ENV = {**WORKER_ENV, **{var: "1" for var in THREAD_ENV_VARS}}


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process of a :class:`~libertem.executor.pipelined.PipelinedExecutor`.

    Attributes
    ----------
    name
        Worker name (unique).
    device_id
        The CPU (core) or CUDA device the worker uses.
    device_kind
        ``'CPU'`` or ``'CUDA'``.
    worker_idx
        Position of the worker.
    has_cupy
        Whether CuPy can be used by a CUDA worker.
    """

    name: str
    device_id: int
    device_kind: Literal["CPU", "CUDA"]
    worker_idx: int
    has_cupy: bool = False

    @property
    def resources(self) -> dict[str, int]:
        """The resource tags of the worker."""
        if self.device_kind == "CUDA":
            tags = {"CUDA": 1, "compute": 1}
            if self.has_cupy:
                tags["ndarray"] = 1
            return tags
        return {"CPU": 1, "compute": 1, "ndarray": 1}


class PipelinedWorkerContext(WorkerContext):
    """Messages of tasks go back on the shared response queue, tagged with the run."""

    def __init__(self, response_queue: SimpleMPWorkerQueue, run_id: str | None):
        self._queue = response_queue
        self._run_id = run_id

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Send ``msg_dict`` (with ``'ident'``) to the subscribers of ``topic``."""
        self._queue.put(
            {
                "type": "signal",
                "run": self._run_id,
                "topic": topic,
                "message": {"ident": ident, **msg_dict},
            }
        )


def _pin(spec: WorkerSpec) -> None:
    if spec.device_kind != "CPU" or not hasattr(os, "sched_setaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    if spec.device_id in allowed:
        os.sched_setaffinity(0, {spec.device_id})


def _error_payload(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        return cloudpickle.dumps((exc, text))
    except Exception:  # noqa: BLE001 - an exception that cannot travel
        return cloudpickle.dumps((RuntimeError(repr(exc)), text))


def worker_main(
    spec: WorkerSpec,
    requests: SimpleMPWorkerQueue,
    responses: SimpleMPWorkerQueue,
    cancelled,
    pin: bool,
    early_setup,
) -> None:
    """Serve requests until told to shut down (the target of each worker process).

    Requests are headers ``{'type': ..., 'id': ...}`` with pickled payloads:
    ``scatter`` / ``patch`` / ``forget`` (parameters under a key), ``task`` and
    ``function``. Each ``task`` and ``function`` is answered with ``result`` or
    ``error``. ``cancelled`` is a shared event: tasks stop at their next tile
    while it is set.
    """
    # one thread per worker; numba reads this when it is first imported (not yet)
    os.environ.update(WORKER_THREAD_ENV)
    if early_setup is not None:
        early_setup()
    if pin:
        _pin(spec)
    worker_setup(spec.device_kind, spec.device_id)
    import libertem.preload  # noqa: F401

    params: dict[str, Any] = {}
    responses.put({"type": "ready", "worker": spec.name, "pid": os.getpid()})
    while True:
        with requests.get() as (header, payload):
            kind = header["type"]
            if kind == "shutdown":
                break
            if kind == "scatter":
                params[header["key"]] = cloudpickle.loads(payload)
                continue
            if kind == "patch":
                params[header["key"]].patch(cloudpickle.loads(payload))
                continue
            if kind == "forget":
                params.pop(header["key"], None)
                continue
            request = cloudpickle.loads(payload)
        reply = {"type": "result", "id": header["id"], "worker": spec.name}
        try:
            if kind == "task":
                task, key = request
                env = TaskEnvironment(
                    threads_per_worker=1,
                    threaded_executor=False,
                    worker_context=PipelinedWorkerContext(responses, header.get("run")),
                    gpu_id=spec.device_id if spec.device_kind == "CUDA" else None,
                    cancelled=cancelled.is_set,
                    worker=spec.name,
                )
                with env.enter():
                    result = task(params[key], env)
            else:
                fn, args, kwargs = request
                result = fn(*args, **kwargs)
            data = cloudpickle.dumps(result)
        except BaseException as e:  # noqa: BLE001 - handed to the main process
            reply["type"] = "error"
            data = _error_payload(e)
        responses.put(reply, payload=memoryview(data))


__all__ = ["PipelinedWorkerContext", "WorkerSpec", "worker_main"]
