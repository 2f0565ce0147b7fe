"""Results of runs: the buffers of all UDFs plus the damage (which frames are done)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any

import numpy as np

from libertem.common.buffers import AuxBufferWrapper, BufferWrapper


class UDFResults:
    """Partial or final results of a run.

    Parameters
    ----------
    buffers
        One mapping per UDF: buffer name -> :class:`BufferWrapper`.
    damage
        Navigation-shaped boolean buffer: which frames are already processed.
    """

    def __init__(
        self,
        buffers: Iterable[Mapping[str, BufferWrapper]],
        damage: BufferWrapper,
    ):
        self._buffers = tuple(buffers)
        self.damage = damage

    @property
    def buffers(self) -> tuple[Mapping[str, BufferWrapper], ...]:
        """One dict per UDF: buffer name -> :class:`BufferWrapper`."""
        return self._buffers

    def __getitem__(self, index: int) -> Mapping[str, BufferWrapper]:
        """The results of the UDF at ``index`` (same as ``buffers[index]``)."""
        return self.buffers[index]

    def __len__(self) -> int:
        return len(self.buffers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.buffers)} UDF(s)>"


class UDFResultsLazy(UDFResults):
    """Results whose buffers are computed on first access (e.g. by ``get_results``).

    Parameters
    ----------
    udfs
        The UDFs the results belong to.
    cb
        Called without arguments, returns the buffers (one mapping per UDF).
    damage
        As for :class:`UDFResults`.
    """

    def __init__(self, udfs, cb: Callable[[], Iterable[Mapping[str, BufferWrapper]]], damage):
        self.udfs = list(udfs)
        self._cb = cb
        self._computed: tuple | None = None
        self.damage = damage

    @property
    def buffers(self) -> tuple[Mapping[str, BufferWrapper], ...]:
        """Computed on first access."""
        if self._computed is None:
            self._computed = tuple(self._cb())
        return self._computed


class ResultsForDataSet:
    """The partial results of the tasks of a run, as they arrive: ``(partials, task)``.

    Iterating yields what the executor's ``run_tasks`` yields. Parameters can be
    changed while the run goes on (tasks that start later see the new values).

    Parameters
    ----------
    gen
        The executor's generator of ``(partials, task)``.
    params
        The run's :class:`~libertem.udf.params.UDFParams`.
    params_handle
        What ``executor.scatter(params)`` returned.
    executor
        The executor.
    udfs
        The UDFs of the run.
    """

    def __init__(
        self,
        gen: Generator[tuple[Any, Any], None, None],
        params,
        params_handle,
        executor,
        udfs: list,
    ):
        self._gen = gen
        self._params = params
        self._handle = params_handle
        self._executor = executor
        self._udfs = udfs

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def close(self) -> None:
        """Stop the run (cancels the tasks that have not finished)."""
        self._gen.close()

    def throw(self, exc: Exception):
        """Raise ``exc`` inside the run's generator."""
        return self._gen.throw(exc)

    def update_parameters_experimental(self, patch: list[dict[str, Any]]) -> None:
        """Change UDF parameters for the tasks that start from now on (and for ``merge``
        and ``get_results`` on the main node).

        ``patch[i]`` holds new values for keyword arguments of UDF ``i``.
        """
        self._params.patch(patch)
        shape = self._params.dataset_shape
        for udf, update in zip(self._udfs, patch):
            udf._kwargs.update(update)
            for key, value in update.items():
                if isinstance(value, AuxBufferWrapper) and shape is not None:
                    value.bind_aux(0, shape.nav.size, self._params.roi)  # as on the main node
                udf.params.set_buffer(key, value)
        scatter_update = getattr(self._executor, "scatter_update", None)
        if scatter_update is not None:
            new_handle = scatter_update(self._handle, self._params)
            if new_handle is not None:
                self._handle = new_handle


def damage_buffer(damage: np.ndarray, shape, roi: np.ndarray | None = None) -> BufferWrapper:
    """The ``kind='nav'`` boolean result buffer of the processed frames.

    Parameters
    ----------
    damage
        Flat mask over the whole navigation space.
    shape
        The dataset's shape.
    roi
        The flat ROI of the run, or ``None``: :attr:`~BufferWrapper.raw_data` holds
        the selected frames only, like any ``kind='nav'`` result.
    """
    buf = BufferWrapper("nav", dtype=bool)
    buf.set_result(damage if roi is None else damage[roi], shape, roi)
    return buf


__all__ = ["UDFResults", "UDFResultsLazy", "ResultsForDataSet", "damage_buffer"]
