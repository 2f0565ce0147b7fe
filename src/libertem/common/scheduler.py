"""Workers, sets of workers, and which of them take part in a computation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from libertem.common.executor import TaskProtocol

ResourceName = Literal["CPU", "compute", "ndarray", "CUDA"]
ResourceDef = dict[ResourceName, int]


class Worker:
    """One worker: a process (or thread) that runs tasks.

    Parameters
    ----------
    name
        Unique name (for Dask workers, their address).
    host
        Host the worker runs on.
    resources
        Resource tags, e.g. ``{'CPU': 1, 'compute': 1, 'ndarray': 1}``; workers
        without ``compute`` only run light service tasks.
    nthreads
        Threads the worker runs tasks on (1 for single-threaded worker processes).
    """

    def __init__(self, name: str, host: str, resources: ResourceDef, nthreads: int):
        self.name = name
        self.host = host
        self.resources = dict(resources)
        self.nthreads = int(nthreads)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Worker):
            return NotImplemented
        return (self.name, self.host, self.resources, self.nthreads) == (
            other.name,
            other.host,
            other.resources,
            other.nthreads,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.host))

    def __repr__(self) -> str:
        return (
            f"<Worker {self.name} on {self.host} resources={self.resources} "
            f"nthreads={self.nthreads}>"
        )


class WorkerSet:
    """An ordered collection of :class:`Worker` objects with queries on them.

    Iterating, ``len()``, indexing and truth value work as for a list; the query
    methods return new sets and leave this one as it is.

    Parameters
    ----------
    workers
        The workers.
    """

    def __init__(self, workers: Iterable[Worker]):
        self.workers = list(workers)

    # sequence behaviour ---------------------------------------------------------------
    def __iter__(self) -> Iterator[Worker]:
        return iter(self.workers)

    def __len__(self) -> int:
        return len(self.workers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return WorkerSet(self.workers[index])
        return self.workers[index]

    def __eq__(self, other) -> bool:
        if isinstance(other, WorkerSet):
            return self.workers == other.workers
        return NotImplemented

    def __repr__(self) -> str:
        return f"<WorkerSet {self.workers!r}>"

    # queries ----------------------------------------------------------------------------
    def filter(self, fn: Callable[[Worker], bool]) -> WorkerSet:
        """The workers for which ``fn(worker)`` is true."""
        return WorkerSet(w for w in self.workers if fn(w))

    def has_cpu(self) -> WorkerSet:
        """The workers with a ``CPU`` resource."""
        return self.filter(lambda w: w.resources.get("CPU", 0) > 0)

    def has_cuda(self) -> WorkerSet:
        """The workers with a ``CUDA`` resource (falsy when there are none)."""
        return self.filter(lambda w: w.resources.get("CUDA", 0) > 0)

    def compute_workers(self) -> WorkerSet:
        """The workers that run compute tasks.

        On clusters without resource tags, that is every worker; otherwise those
        tagged ``compute``.
        """
        if not any(w.resources for w in self.workers):
            return WorkerSet(self.workers)
        return self.filter(lambda w: w.resources.get("compute", 0) > 0)

    def names(self) -> list[str]:
        """Names of the workers, in order."""
        return [w.name for w in self.workers]

    def hosts(self) -> set[str]:
        """Hosts that run at least one of the workers."""
        return {w.host for w in self.workers}

    def get_by_host(self, host: str) -> WorkerSet:
        """The workers on ``host``."""
        return self.filter(lambda w: w.host == host)

    def group_by_host(self) -> list[WorkerSet]:
        """One set per host, hosts in order of their first worker."""
        groups: dict[str, list[Worker]] = {}
        for worker in self.workers:
            groups.setdefault(worker.host, []).append(worker)
        return [WorkerSet(group) for group in groups.values()]

    def example(self) -> Worker:
        """One worker of the set (the first).

        Raises
        ------
        IndexError
            If the set is empty.
        """
        if not self.workers:
            raise IndexError("the WorkerSet is empty: there is no example worker")
        return self.workers[0]

    def concurrency(self) -> int:
        """How many tasks the workers run at the same time: the sum of their threads."""
        return sum(w.nthreads for w in self.workers)

    def has_threaded_workers(self) -> bool:
        """Whether any worker runs tasks on more than one thread."""
        return any(w.nthreads > 1 for w in self.workers)

    def extend(self, other: WorkerSet) -> WorkerSet:
        """A new set with the workers of this one followed by those of ``other``."""
        return WorkerSet(self.workers + list(other))


class Scheduler:
    """Decides how many workers a computation can use.

    Parameters
    ----------
    all_workers
        The workers of an executor.
    """

    def __init__(self, all_workers: WorkerSet):
        self.workers = all_workers

    def effective_worker_count(self) -> int:
        """Number of tasks that run in parallel on the compute workers (at least 1).

        Datasets use it to choose how many partitions to make.
        """
        return max(1, self.workers.compute_workers().concurrency())

    def workers_for_task(self, task: TaskProtocol) -> WorkerSet:
        """The workers that have every resource ``task.get_resources()`` asks for.

        Tasks without resource requirements, and clusters without resource tags,
        can use every compute worker.

        Raises
        ------
        ValueError
            If no worker offers what the task needs.
        """
        wanted = task.get_resources() or {}
        if not wanted or not any(w.resources for w in self.workers):
            return self.workers.compute_workers()
        fitting = self.workers.filter(
            lambda w: all(w.resources.get(name, 0) >= amount for name, amount in wanted.items())
        )
        if not fitting:
            raise ValueError(f"no worker offers the resources {wanted} the task needs")
        return fitting


__all__ = ["ResourceDef", "Scheduler", "Worker", "WorkerSet"]
