"""Sending the tasks of a run straight to Dask workers, and taking their results back.

A run's tasks do not travel as Dask futures through the scheduler: each task is one
request on a direct connection to a worker (see
:class:`~libertem.executor.utils.dask_workers.LiberTEMWorkerPlugin`), answered with
its result. This keeps a small run to a few milliseconds, lets nothing of a run stay
behind in Dask's message logs, and tells a worker that died from a task that failed.

A worker runs as many tasks at a time as its resources allow (each task needs its
``get_resources()``; without resource tags, one per thread). :class:`DirectRun` does
the dispatching on the client's event loop and hands what happens to the caller's
thread through a queue.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

from distributed.core import send_recv
from distributed.protocol import to_serialize

from libertem.common.executor import ExecutorError, ResourceError, ScatterHandle
from libertem.common.scheduler import Worker, WorkerSet
from libertem.executor.utils.dask_workers import (
    CANCEL_HANDLER,
    PARAMS_CACHE_SIZE,
    TASK_HANDLER,
)

#: seconds to wait for workers when none that can take the remaining tasks is left
WORKER_WAIT_S = 60.0
#: seconds to wait for a connection to a worker
CONNECT_TIMEOUT_S = 10.0
#: workers whose parameter versions are remembered
KNOWN_WORKERS = 1024


def workers_from_info(info: dict[str, dict]) -> WorkerSet:
    """The workers of a scheduler's ``identity()['workers']``."""
    return WorkerSet(
        Worker(
            name=addr,
            host=w.get("host", ""),
            resources=dict(w.get("resources", {})),
            nthreads=int(w.get("nthreads", 1)),
        )
        for addr, w in info.items()
    )


class DaskParams(ScatterHandle):
    """Parameters of runs as :class:`DaskJobExecutor` hands them to its workers.

    What ``scatter`` returns (also a context manager yielding itself): the pickled
    parameters, named by ``uid`` and a ``version`` that grows with every update. A
    worker gets the bytes with the first task that needs a version it does not hold.
    """

    __slots__ = ("_state", "uid")

    def __init__(self, payload: bytes):
        self.uid = uuid.uuid4().hex
        self._state = (0, payload)

    @property
    def state(self) -> tuple[int, bytes]:
        """``(version, payload)``, read together."""
        return self._state

    def update(self, payload: bytes) -> None:
        """New parameters for the tasks that start from now on."""
        self._state = (self._state[0] + 1, payload)

    def __repr__(self) -> str:
        return f"<DaskParams {self.uid[:8]} v{self._state[0]}>"


#: tasks sent to a worker ahead of the ones it has resources for: the worker starts the
#: next task as soon as one finishes, instead of idling for the round trip that brings
#: it (about a millisecond per task, 5-15% of a run over page-cached data)
QUEUE_AHEAD = 1


class _Slot:
    """A worker and what it has free (resources, or threads without resource tags),
    plus :data:`QUEUE_AHEAD` tasks that wait in the worker for a free thread."""

    def __init__(self, worker: Worker, use_resources: bool):
        self.address = worker.name
        self.total = dict(worker.resources) if use_resources else {"threads": worker.nthreads}
        self.free = dict(self.total)
        self.queued = 0
        self.alive = True

    def _has(self, have: dict, need: dict) -> bool:
        return all(have.get(k, 0) >= v for k, v in need.items())

    def fits(self, need: dict, ahead: bool = True) -> bool:
        """Whether the worker takes a task with ``need`` now (or, with ``ahead``, as
        one that waits for a free thread)."""
        if not self.alive:
            return False
        if self._has(self.free, need):
            return True
        return ahead and self.queued < QUEUE_AHEAD and self._has(self.total, need)

    def take(self, need: dict) -> bool:
        """Book a task; whether it waits in the worker (sent ahead)."""
        if self._has(self.free, need):
            for k, v in need.items():
                self.free[k] -= v
            return False
        self.queued += 1
        return True

    def give(self, need: dict, queued: bool) -> None:
        if queued:
            self.queued -= 1
            return
        for k, v in need.items():
            self.free[k] += v


class DirectRun:
    """The tasks of one run on the workers of ``client``.

    Parameters
    ----------
    client
        The Dask client (its event loop does the dispatching).
    packed
        Per task: the pickled task (see :func:`~.dask_workers.pack`).
    needs
        Per task: the resources it takes on a worker.
    params
        The run's parameters.
    known
        Worker address -> ``{params uid: version}`` the worker holds (shared by runs).
    workers
        The workers to use.
    use_resources
        Whether workers are chosen by resource tags (else: by threads).
    topic, cancel_id
        For the tasks' messages and their cancellation.

    The caller iterates :meth:`events`: ``('result', i, (header, buffers))``,
    ``('error', i, response)``, ``('lost', i, address)``, ``('failed', exception)``,
    ``('wake',)`` (see :meth:`wake`), and last ``('done',)``.
    """

    def __init__(
        self,
        client,
        packed: list,
        needs: list[dict],
        params: DaskParams,
        known: dict[str, dict[str, int]],
        workers: WorkerSet,
        use_resources: bool,
        topic: str | None,
        cancel_id,
    ):
        self._client = client
        self._loop = client.loop.asyncio_loop
        self._packed = packed
        self._needs = needs
        self._params = params
        self._known = known
        self._use_resources = use_resources
        self._slots = [_Slot(w, use_resources) for w in workers]
        self._gone: set[str] = set()
        self._topic = topic
        self._cancel_id = cancel_id
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: dict[tuple, collections.deque] = {}
        for index, need in enumerate(needs):
            self._pending.setdefault(_key(need), collections.deque()).append(index)
        self._inflight: dict[asyncio.Future, tuple[int, _Slot, bool]] = {}
        self._sequence: dict[int, int] = {}  # task index -> order in which it was sent
        self._sent = itertools.count()
        self._halted = False
        self._unreachable: OSError | None = None

    # the caller's side ---------------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching (on the client's event loop)."""
        asyncio.run_coroutine_threadsafe(self._drive(), self._loop)

    def events(self) -> Iterator[tuple]:
        """What happens, as it happens (blocks); ends after ``('done',)``."""
        while True:
            event = self._events.get()
            yield event
            if event[0] == "done":
                return

    def wake(self) -> None:
        """Make :meth:`events` yield ``('wake',)`` now (e.g. after a cancellation)."""
        self._events.put(("wake",))

    @property
    def gone(self) -> set[str]:
        """Addresses of the workers that died or could not be reached in this run."""
        return set(self._gone)

    def stop(self) -> None:
        """Start no more tasks; running ones stop at their next tile (results are dropped)."""
        self._loop.call_soon_threadsafe(self._halt)

    # the event loop's side -----------------------------------------------------------------
    def _halt(self) -> None:
        if self._halted:
            return
        self._halted = True
        for address in {slot.address for _, slot, _ in self._inflight.values()}:
            asyncio.ensure_future(self._send_cancel(address))

    async def _send_cancel(self, address: str) -> None:
        try:
            await getattr(self._client.rpc(address), CANCEL_HANDLER)(cancel_id=self._cancel_id)
        except Exception:  # noqa: BLE001 - a worker that is gone runs nothing
            pass

    def _has_pending(self) -> bool:
        return any(self._pending.values())

    async def _drive(self) -> None:
        try:
            while (self._has_pending() or self._inflight) and not self._halted:
                self._dispatch()
                if not self._inflight:
                    await self._wait_for_workers()
                    continue
                done, _ = await asyncio.wait(
                    list(self._inflight), return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    index, slot, queued = self._inflight.pop(future)
                    slot.give(self._needs[index], queued)
                    self._finished(future.result(), index, slot)
        except Exception as e:  # noqa: BLE001 - raised in the caller's thread
            self._events.put(("failed", e))
            self._halt()
        except asyncio.CancelledError:  # the client's event loop is shutting down
            closed = ExecutorError("the Dask client was closed during the run")
            self._events.put(("failed", closed))
            raise
        finally:
            self._events.put(("done",))

    def _dispatch(self) -> None:
        # first the free resources of every worker, then the tasks sent ahead
        for ahead in (False, True):
            for slot in self._slots:
                for key, indices in self._pending.items():
                    need = dict(key)
                    while indices and slot.fits(need, ahead):
                        index = indices.popleft()
                        queued = slot.take(need)
                        self._sequence[index] = next(self._sent)
                        future = asyncio.ensure_future(self._run_one(index, slot.address))
                        self._inflight[future] = (index, slot, queued)

    def _finished(self, outcome: tuple, index: int, slot: _Slot) -> None:
        kind, value = outcome
        if kind == "ok":
            version = self._params.state[0]
            known = self._known.pop(slot.address, {})
            known.pop(self._params.uid, None)
            known[self._params.uid] = version
            while len(known) > PARAMS_CACHE_SIZE:  # as many as the worker keeps
                known.pop(next(iter(known)))
            self._known[slot.address] = known
            while len(self._known) > KNOWN_WORKERS:
                self._known.pop(next(iter(self._known)))
            self._events.put(("result", index, value))
        elif kind == "unreachable":  # the task never started: another worker takes it
            self._unreachable = value
            slot.alive = False
            self._gone.add(slot.address)
            self._pending[_key(self._needs[index])].appendleft(index)
        elif kind == "lost":
            # the task the worker was running: the first one sent to it of those it had
            others = [i for i, s, _ in self._inflight.values() if s is slot]
            index = min([index, *others], key=self._sequence.__getitem__)
            slot.alive = False
            self._gone.add(slot.address)
            self._events.put(("lost", index, slot.address))
            self._halt()
        else:
            self._events.put(("error", index, value))
            self._halt()

    def _message(self, index: int, address: str, with_params: bool) -> dict:
        header, buffers = self._packed[index]
        version, payload = self._params.state
        if self._known.get(address, {}).get(self._params.uid) != version:
            with_params = True
        return {
            "op": TASK_HANDLER,
            "task": to_serialize(header),
            "buffers": [to_serialize(b) for b in buffers],
            "params_uid": self._params.uid,
            "params_version": version,
            "params": to_serialize(payload) if with_params else None,
            "topic": self._topic,
            "cancel_id": self._cancel_id,
        }

    async def _run_one(self, index: int, address: str) -> tuple[str, Any]:
        pool = self._client.rpc
        try:
            comm = await pool.connect(address, timeout=CONNECT_TIMEOUT_S)
        except OSError as e:
            return "unreachable", e
        try:
            response = await send_recv(comm, **self._message(index, address, False))
            if response.get("status") == "need-params":
                response = await send_recv(comm, **self._message(index, address, True))
        except OSError as e:  # the connection broke: the worker is gone
            return "lost", e
        except BaseException:
            comm.abort()
            raise
        pool.reuse(address, comm)
        if response.get("status") == "OK":
            return "ok", (response["result"], response["buffers"])
        return "error", response

    async def _wait_for_workers(self) -> None:
        """Pending tasks, none running, no worker to take them: wait for (new) workers."""
        deadline = time.monotonic() + WORKER_WAIT_S
        while not self._halted:
            info = await self._client.scheduler.identity(n_workers=-1)
            fresh = [
                w
                for w in workers_from_info(info.get("workers", {}))
                if w.name not in self._gone and w.name not in {s.address for s in self._slots}
            ]
            self._slots.extend(_Slot(w, self._use_resources) for w in fresh)
            waiting = [dict(key) for key, indices in self._pending.items() if indices]
            if any(slot.fits(need) for slot in self._slots for need in waiting):
                return
            if time.monotonic() > deadline:
                needs = sorted({key for key, v in self._pending.items() if v})
                raise ResourceError(
                    f"no worker is left that can take the remaining tasks (they need "
                    f"{[dict(k) for k in needs]}); {len(self._gone)} worker(s) became "
                    f"unreachable during the run (last: {self._unreachable}), and none came "
                    f"in {WORKER_WAIT_S:.0f} s"
                )
            await asyncio.sleep(0.2)


def _key(need: dict) -> tuple:
    return tuple(sorted(need.items()))


__all__ = [
    "CONNECT_TIMEOUT_S",
    "QUEUE_AHEAD",
    "DaskParams",
    "DirectRun",
    "WORKER_WAIT_S",
    "workers_from_info",
]
