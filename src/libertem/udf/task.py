"""A task of a run: one partition, processed on a worker by a partition runner."""

from __future__ import annotations

import numpy as np

from libertem.common.buffers import PlaceholderBufferWrapper
from libertem.udf.backends import get_resources_for_backends
from libertem.udf.params import UDFParams
from libertem.udf.partition_runner import UDFPartRunner


class UDFTask:
    """Process one partition: ``task(params, env)`` returns the partial results.

    Parameters
    ----------
    partition
        The partition to read.
    idx
        Position of the task in the run (``task_id``).
    udf_classes
        Classes of the UDFs (their parameters travel once per run in the params).
    udf_backends
        What each UDF's ``get_backends()`` returned.
    user_backends
        The run's ``backends`` restriction, or ``None``.
    runner_cls
        The partition runner class (default :class:`UDFPartRunner`).
    span_context
        Tracing context of the caller, or ``None``.
    task_frames
        Number of (selected) frames the task processes.
    compressed_start
        Index of the partition's first selected frame among all selected frames.
    resources
        Worker resources the task needs; derived from the backends by default.
    """

    def __init__(
        self,
        partition,
        idx: int,
        udf_classes: list[type],
        udf_backends: list,
        user_backends,
        runner_cls: type | None = None,
        span_context=None,
        task_frames: int | None = None,
        *,
        compressed_start: int = 0,
        resources: dict[str, int] | None = None,
    ):
        self.partition = partition
        self.task_id = int(idx)
        self._udf_classes = list(udf_classes)
        self._udf_backends = list(udf_backends)
        self._user_backends = user_backends
        self._runner_cls = runner_cls or UDFPartRunner
        self._span_context = span_context
        if task_frames is None:
            task_frames = partition.shape[0]
        self.n_frames = int(task_frames)
        self.compressed_start = int(compressed_start)
        if resources is None:
            resources = get_resources_for_backends(self._udf_backends, user_backends)
        self.resources = resources

    @property
    def task_frames(self) -> int:
        """Number of (selected) frames the task processes."""
        return self.n_frames

    def get_partition(self):
        """The partition to process."""
        return self.partition

    def get_locations(self):
        """Hosts that hold the partition's data locally, or ``None`` (anywhere)."""
        get = getattr(self.partition, "get_locations", None)
        return None if get is None else get()

    def get_resources(self) -> dict[str, int]:
        """Worker resources the task needs (e.g. ``{'CPU': 1, 'compute': 1}``)."""
        return self.resources

    def get_runner_cls(self) -> type:
        """The partition runner class."""
        return self._runner_cls

    def get_tracing_span_context(self):
        """Tracing context of the caller, or ``None``."""
        return self._span_context

    def get_udf_classes(self) -> list[type]:
        """The classes of the UDFs."""
        return list(self._udf_classes or ())

    def report_progress(self) -> bool:
        """Whether the task sends progress messages while it runs (when the run reports)."""
        return True

    def __call__(self, params: UDFParams, env) -> list[dict[str, np.ndarray]]:
        from libertem.common.tracing import attach_to_parent

        partition = self.partition
        udfs = [
            cls.new_for_partition(kwargs, partition, params.roi)
            for cls, kwargs in params.udf_specs
        ]
        runner = self._runner_cls(udfs, progress=params.progress)
        with attach_to_parent(self._span_context):
            results = runner.run_for_partition(partition, params, env, None, task=self)
        return [
            {
                name: buf.raw_data
                for name, buf in data.buffers().items()
                if not isinstance(buf, PlaceholderBufferWrapper)
            }
            for data in results
        ]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_udf_classes"] = None  # the classes travel with the params, by value
        return state

    def __repr__(self) -> str:
        return f"<UDFTask {self.task_id} {self.partition!r}>"


__all__ = ["UDFTask"]
