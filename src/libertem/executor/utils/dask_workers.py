"""What runs inside Dask worker processes: tasks, their parameters, cancellation marks."""

from __future__ import annotations

import functools
from typing import Any

import cloudpickle
import distributed

from libertem.common.executor import WorkerContext
from libertem.executor.base import TaskEnvironment
from libertem.executor.utils.dask_setup import setup_worker_from_environment

#: parameters of recent runs kept unpickled per worker process
PARAMS_CACHE_SIZE = 4
#: cancelled runs remembered per worker process
CANCELLED_MEMORY = 64


class DaskWorkerContext(WorkerContext):
    """Worker context of tasks on Dask workers: messages travel as Dask events.

    Parameters
    ----------
    comms_topic
        Dask event topic the main node listens to; ``None``: messages are dropped.
    """

    def __init__(self, comms_topic: str | None):
        self._topic = comms_topic

    @property
    def dask_worker(self) -> distributed.Worker:
        """The Dask worker this runs on."""
        return distributed.get_worker()

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Send ``msg_dict`` (with ``'ident'``) to the subscribers of ``topic``."""
        if self._topic is None:
            return
        message = {"topic": topic, "message": {"ident": ident, **msg_dict}}
        self.dask_worker.log_event(self._topic, message)


class Params:
    """Pickled run parameters as scattered to the workers.

    Attributes
    ----------
    digest
        Hash of the pickled bytes (identical parameters, identical digest).
    payload
        The pickled parameters.
    uid
        Identifies this scatter (for updates of the parameters).
    """

    __slots__ = ("digest", "payload", "uid")

    def __init__(self, digest: str, payload: bytes, uid: str):
        self.digest = digest
        self.payload = payload
        self.uid = uid

    def __getstate__(self):
        return (self.digest, self.payload, self.uid)

    def __setstate__(self, state):
        self.digest, self.payload, self.uid = state


_LOADED: dict[str, Any] = {}
_OVERRIDES: dict[str, Any] = {}
_CANCELLED: dict[Any, None] = {}


def _remember(table: dict, key, value, limit: int) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        table.pop(next(iter(table)))


def load_params(params: Params):
    """The unpickled parameters: an update if one was sent, else unpickled once per process."""
    if params.uid in _OVERRIDES:
        return _OVERRIDES[params.uid]
    loaded = _LOADED.get(params.uid)
    if loaded is None:
        loaded = cloudpickle.loads(params.payload)
    _remember(_LOADED, params.uid, loaded, PARAMS_CACHE_SIZE)
    return loaded


def set_override(uid: str, payload: bytes) -> None:
    """Use the parameters in ``payload`` for tasks of the scatter ``uid`` from now on."""
    _remember(_OVERRIDES, uid, cloudpickle.loads(payload), PARAMS_CACHE_SIZE)


def patch_params(uid: str, key: str, patch, dask_worker=None) -> None:
    """Patch the parameters of the scatter ``uid`` (held under ``key``) in this worker."""
    current = _OVERRIDES.get(uid)
    if current is None:
        current = load_params(dask_worker.data[key])
    current.patch(patch)
    _remember(_OVERRIDES, uid, current, PARAMS_CACHE_SIZE)


def mark_cancelled(cancel_id) -> None:
    """Tasks of the run ``cancel_id`` in this worker stop at their next tile."""
    _remember(_CANCELLED, cancel_id, None, CANCELLED_MEMORY)


def _is_cancelled(cancel_id) -> bool:
    return cancel_id in _CANCELLED


def run_on_worker(task, params, topic: str | None, cancel_id):
    """Run one task in a worker process; its messages go to the Dask event ``topic``."""
    setup_worker_from_environment()
    worker = distributed.get_worker()
    env = TaskEnvironment(
        threads_per_worker=1,
        threaded_executor=worker.state.nthreads > 1,
        worker_context=DaskWorkerContext(topic),
        cancelled=functools.partial(_is_cancelled, cancel_id),
        worker=worker.name,
    )
    if isinstance(params, Params):
        params = load_params(params)
    with env.enter():
        return task(params, env)


__all__ = [
    "DaskWorkerContext",
    "Params",
    "load_params",
    "mark_cancelled",
    "patch_params",
    "run_on_worker",
    "set_override",
]
