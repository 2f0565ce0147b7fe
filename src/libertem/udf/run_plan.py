"""What the main node decides before a run starts: the plan, and the settings it rests on
(threads, input dtypes, corrections, progress reporting, task messages)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.common.executor import NoopCommHandler, TaskCommHandler
from libertem.common.progress import ProgressReporter, TQDMProgressReporter
from libertem.common.shape import Shape
from libertem.udf.classes import UDF
from libertem.udf.merge import MainUDF
from libertem.udf.meta import default_threads_per_worker
from libertem.udf.params import UDFParams
from libertem.udf.partition_runner import aux_buffers
from libertem.udf.results import UDFResultsLazy, damage_buffer
from libertem.udf.task import UDFTask

if TYPE_CHECKING:
    from libertem.corrections import CorrectionSet


@dataclass
class RunPlan:
    """Everything decided on the main node before a run starts.

    Attributes
    ----------
    udfs
        The UDFs, on the main node.
    mains
        Per UDF, its full-size result buffers and merge logic.
    tasks
        One task per partition with selected frames.
    params
        What all tasks share (shipped once).
    dataset_shape
        Shape of the dataset.
    roi
        Flat boolean ROI, or ``None``.
    n_selected
        Number of selected frames.
    """

    udfs: list[UDF]
    mains: list[MainUDF]
    tasks: list[UDFTask]
    params: UDFParams
    dataset_shape: Shape
    roi: np.ndarray | None
    n_selected: int

    released: bool = False

    def all_done(self) -> BufferWrapper:
        """A damage buffer with every selected frame done."""
        if self.roi is None:
            done = np.ones(self.dataset_shape.nav.size, dtype=bool)
        else:
            done = self.roi.copy()
        return damage_buffer(done, self.dataset_shape, self.roi)

    def bind(self) -> None:
        """Point aux data at the selected frames of the whole dataset (main node)."""
        for udf in self.udfs:
            for buf in aux_buffers(udf):
                buf.bind_aux(0, self.dataset_shape.nav.size, self.roi)
        self.released = False

    def release(self) -> None:
        """Point aux data back at the whole dataset after the run."""
        for udf in self.udfs:
            for buf in aux_buffers(udf):
                buf.bind_aux(0, self.dataset_shape.nav.size, None)
        self.released = True

    def results(self, damage: np.ndarray) -> UDFResultsLazy:
        """The results when the frames ``damage`` (flat, not changed later) are merged.

        ``get_results`` of the UDFs runs when ``.buffers`` is first read, once.
        """
        shape, roi = self.dataset_shape, self.roi

        def compute():
            rebind = self.released
            if rebind:
                self.bind()
            try:
                return tuple(main.results(shape, roi, damage) for main in self.mains)
            finally:
                if rebind:
                    self.release()

        return UDFResultsLazy(self.udfs, compute, damage_buffer(damage, shape, roi))


def executor_threads_per_worker(executor) -> int:
    """The threads a UDF may use per worker of ``executor``.

    Executors announce it as a ``threads_per_worker`` attribute; otherwise a UDF
    gets one thread. ``None`` (planning a dry run in this process) offers all cores,
    as the inline executor does.
    """
    if executor is None:
        return default_threads_per_worker("inline")
    value = getattr(executor, "threads_per_worker", None)
    if callable(value):
        value = value()
    if value is not None:
        return int(value)
    return default_threads_per_worker(None)


def resolve_reporter(progress, default: ProgressReporter | None = None) -> ProgressReporter | None:
    """``run_udf(progress=...)``: a reporter as given; ``True``: ``default`` or a tqdm bar;
    false: none."""
    if isinstance(progress, ProgressReporter):
        return progress
    if progress:
        return default or TQDMProgressReporter()
    return None


def _declares(udf: UDF, flag: str) -> bool:
    """Whether the class whose processing method ``udf`` runs sets the class attribute
    ``flag`` (a subclass that overrides the method does not inherit it)."""
    for klass in type(udf).__mro__:
        if any(m in vars(klass) for m in ("process_tile", "process_frame", "process_partition")):
            return bool(vars(klass).get(flag, False))
    return False


def resolve_tile_dtypes(
    udfs: Sequence[UDF],
    input_dtypes: Sequence[np.dtype],
    read_dtype: np.dtype,
    dataset_dtype,
    corrected: bool,
    host_numpy_only: bool,
) -> tuple[list[np.dtype], np.dtype]:
    """The dtype of the tiles each UDF's processing method gets, and the read dtype.

    That is the UDF's input dtype (``meta.input_dtype``), except for UDFs whose class
    declares ``_TAKES_INTEGER_TILES`` (such as :class:`~libertem.udf.com.CoMUDF`):
    on integer data of up to 32 bits, without corrections, on NumPy host workers,
    they get the tiles in the dataset's own dtype and convert what they need
    themselves (the values are the same; a conversion pass is saved where their
    computation needs none).
    """
    native = np.dtype(dataset_dtype)
    eligible = not corrected and host_numpy_only and native.kind in "ui" and native.itemsize <= 4
    native = native.newbyteorder("=")
    tile_dtypes = [
        native if eligible and _declares(udf, "_TAKES_INTEGER_TILES") else np.dtype(d)
        for udf, d in zip(udfs, input_dtypes)
    ]
    if tile_dtypes == [np.dtype(d) for d in input_dtypes]:
        return tile_dtypes, np.dtype(read_dtype)
    return tile_dtypes, tile_dtypes[0] if len(set(tile_dtypes)) == 1 else native


def _takes_stored_byte_order(udf: UDF) -> bool:
    """Whether the class whose processing method ``udf`` runs declares that it takes
    tiles in the stored byte order: a subclass that overrides ``process_tile`` of
    :class:`~libertem.udf.sum.SumUDF` gets native tiles unless it declares so too."""
    for klass in type(udf).__mro__:
        if any(m in vars(klass) for m in ("process_tile", "process_frame", "process_partition")):
            return bool(vars(klass).get("_TAKES_STORED_BYTE_ORDER", False))
    return False


def resolve_input_dtypes(
    udfs: Sequence[UDF], dataset_dtype, stored_dtype, corrected: bool, host_numpy_only: bool
) -> tuple[list[np.dtype], np.dtype]:
    """The dtype of the tiles each UDF sees, and the dtype the partitions read in.

    Each UDF gets ``result_type(preferred, dataset dtype)`` (native byte order); float
    when corrections apply. When the files store the values in the other byte order
    (``dataset.stored_dtype``, e.g. big-endian Merlin frames) and every UDF of the run
    takes tiles in that order (``_TAKES_STORED_BYTE_ORDER``, as
    :class:`~libertem.udf.sum.SumUDF`, which casts while it adds up), the partitions
    hand out views of the stored data and skip the byte swapping pass. Only on NumPy
    host workers: CuPy has no foreign byte order.
    """
    native = np.dtype(dataset_dtype)
    stored = np.dtype(stored_dtype)
    input_dtypes = [np.result_type(udf.get_preferred_input_dtype(), native) for udf in udfs]
    if corrected:  # corrected tiles are float, whatever the UDFs prefer
        input_dtypes = [np.result_type(d, np.float32) for d in input_dtypes]
        return input_dtypes, np.result_type(*input_dtypes)
    if (
        host_numpy_only
        and not stored.isnative
        and all(_takes_stored_byte_order(udf) for udf in udfs)
        and all(d == stored.newbyteorder("=") for d in input_dtypes)
    ):
        return [stored] * len(udfs), stored
    read_dtype = input_dtypes[0] if len(set(input_dtypes)) == 1 else native
    return input_dtypes, read_dtype


def resolve_corrections(dataset, corrections: CorrectionSet | None) -> CorrectionSet | None:
    """The corrections of a run: as given, else the dataset's own (if it has any)."""
    if corrections is None:
        get = getattr(dataset, "get_correction_data", None)
        corrections = None if get is None else get()
    return corrections


def comm_handler(dataset) -> TaskCommHandler:
    """The dataset's handler of task messages (``get_task_comm_handler``), or a plain one."""
    get = getattr(dataset, "get_task_comm_handler", None)
    handler = None if get is None else get()
    return NoopCommHandler() if handler is None else handler


__all__ = [
    "RunPlan",
    "comm_handler",
    "executor_threads_per_worker",
    "resolve_corrections",
    "resolve_input_dtypes",
    "resolve_tile_dtypes",
    "resolve_reporter",
]
