"""Exceptions raised by the engine."""


class UDFException(Exception):
    """A UDF is declared or used in a way the engine cannot run."""


class UDFRunCancelled(Exception):
    """A UDF run was cancelled before it finished."""


class ExecutorSpecException(Exception):
    """An executor specification names an unknown executor or resources that are not there."""


class DataSetException(Exception):
    """A dataset cannot be opened or read as described: names the file and the problem."""


class DataSetArgumentError(DataSetException, TypeError):
    """Arguments that a dataset class cannot take.

    A :class:`DataSetException` like every bad-dataset error, and a ``TypeError``
    like the one LiberTEM 0.16 lets through from the dataset's constructor.
    """


class ExecutorError(Exception):
    """Running something on an executor failed."""


class JobCancelledError(Exception):
    """The run was cancelled (see ``cancel(cancel_id)``) before all its tasks finished.

    Raised by executors (and task comm handlers, or a UDF); the UDF runner turns it
    into :class:`UDFRunCancelled`.
    """


class WorkerLostError(UDFRunCancelled):
    """A worker process died while it ran a task of the run, so the run was cancelled.

    The message names the worker and the partition. The executor stays usable: the
    next run goes to the workers that are left (and to restarted ones).
    """


class ResourceError(ExecutorError):
    """No worker offers the resources (``CPU``, ``CUDA``, ...) a task needs."""
