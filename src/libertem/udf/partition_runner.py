"""Worker side of a run: process one partition with clean copies of the UDFs."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem.common.backend import get_device_class
from libertem.common.buffers import AuxBufferWrapper, BufferWrapper, PlaceholderBufferWrapper
from libertem.common.lazyjit import working
from libertem.common.progress import PartitionProgressTracker
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.udf.backends import (
    as_backend_set,
    choose_backend,
    choose_read_backend,
    convert_tile,
    host_sources,
    is_numpy_like,
)
from libertem.udf.classes import UDF, overrides
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta, threads_per_worker_of
from libertem.udf.mixins import find_method
from libertem.udf.params import UDFParams

if TYPE_CHECKING:
    from libertem.udf.task import UDFTask

# seconds between two progress messages of a task
PROGRESS_INTERVAL_S = 0.05


def aux_buffers(udf: UDF) -> list[AuxBufferWrapper]:
    """The auxiliary-data buffers among a UDF's parameters."""
    return [v for v in udf.params._data.values() if isinstance(v, AuxBufferWrapper)]


class TileConverter:
    """A tile converted, on demand and at most once each, to the backends UDFs need.

    Parameters
    ----------
    tile
        The tile as read (``tile.data`` of any host backend).
    """

    def __init__(self, tile):
        self._tile = tile
        self._cache: dict = {}

    def get(self, backend: str, dtype=None, xp=np):
        """The tile's data as ``backend`` (and ``dtype``); ``xp`` is the module for CuPy."""
        key = (backend, None if dtype is None else np.dtype(dtype))
        try:
            return self._cache[key]
        except KeyError:
            pass
        data = self._tile.data
        if dtype is not None and data.dtype != key[1]:
            data = data.astype(key[1])
        sl = BufferWrapper._tile_slice(self._tile)
        result = convert_tile(data, backend, xp, tuple(sl.shape))
        self._cache[key] = result
        return result


class _UDFState:
    """One UDF instance on the worker, with its buffers split by how views are set."""

    def __init__(self, udf: UDF, input_dtype: np.dtype, read_backend: str):
        self.udf = udf
        self.method = find_method(udf)
        self.input_dtype = input_dtype
        self.result_buffers = {
            name: buf
            for name, buf in udf.results.buffers().items()
            if not isinstance(buf, PlaceholderBufferWrapper)
        }
        self.placeholders = [
            buf
            for buf in udf.results.buffers().values()
            if isinstance(buf, PlaceholderBufferWrapper)
        ]
        target = udf.meta.array_backend
        # plain: the tile goes to the UDF as read, at most converted in dtype
        self.plain = is_numpy_like(target) and is_numpy_like(read_backend)
        self.target = target
        views = list(self.result_buffers.values()) + aux_buffers(udf)
        self.nav_views = [b for b in views if b.kind == "nav"]
        self.sig_views = [b for b in views if b.kind == "sig"]
        # process_frame: the result buffers by name, per-frame (nav) views or not
        self.nav_results = [(n, b) for n, b in self.result_buffers.items() if b.kind == "nav"]
        self.other_results = [(n, b) for n, b in self.result_buffers.items() if b.kind != "nav"]
        nav_results = {id(b) for _, b in self.nav_results}
        self.nav_aux = [b for b in self.nav_views if id(b) not in nav_results]

    def reset_views(self) -> None:
        for b in self.nav_views + self.sig_views:
            b.reset_view()

    def set_processing(self, processing: bool) -> None:
        """``use='result_only'`` buffers read as ``None`` while ``process_*`` runs."""
        for b in self.placeholders:
            b.set_processing(processing)


class UDFPartRunner:
    """Runs UDFs over the tiles of one partition.

    Parameters
    ----------
    udfs
        Clean copies of the UDFs for this partition (see ``UDF.copy_for_partition``).
    debug
        Check buffers after each tile (slower).
    progress
        Send progress messages.
    """

    def __init__(self, udfs: list[UDF], debug: bool = False, progress: bool = False):
        self._udfs = list(udfs)
        self._debug = debug
        self._progress = progress

    def run_for_partition(
        self,
        partition,
        params: UDFParams,
        env,
        backend_choice: str | Iterable[str] | None,
        *,
        task: UDFTask | None = None,
    ) -> tuple[UDFData, ...]:
        """Process ``partition``; return each UDF's results (partition-sized buffers).

        Parameters
        ----------
        partition
            The partition.
        params
            The run's parameters.
        env
            The task environment (threads per worker, progress, cancellation).
        backend_choice
            The array backends allowed here: ``None`` (any), one backend name, or an
            iterable of names (e.g. ``sparseconverter.BACKENDS``). Each UDF gets the
            one that the dataset offers most cheaply among those it supports, the run
            allows and this worker can run.
        task
            The task (for its id in progress messages).
        """
        with working():
            return self._run_for_partition(partition, params, env, backend_choice, task)

    def _run_for_partition(self, partition, params, env, backend_choice, task):
        params = _completed(params, self._udfs, partition)
        roi = params.roi
        part_slice = partition.slice.adjust_for_roi(roi)
        sources = host_sources(params.dataset_backends)
        device_class = get_device_class()
        allowed = params.backends
        if backend_choice is not None:
            chosen = as_backend_set(backend_choice)
            allowed = chosen if allowed is None else as_backend_set(allowed) & chosen
        choices = [
            choose_backend(udf.get_backends(), allowed, device_class, sources)
            for udf in self._udfs
        ]
        read_backend = choose_read_backend(sources, [c[1] for c in choices])
        threads = threads_per_worker_of(env)
        dtypes = zip(params.input_dtypes, params.tile_dtypes or params.input_dtypes)
        states = [
            self._prepare(udf, params, partition, part_slice, dt, choice, threads, read_backend)
            for udf, dt, choice in zip(self._udfs, dtypes, choices)
        ]
        task_id = task.task_id if task is not None else 0
        for state in states:
            if overrides(state.udf, "preprocess"):
                _call(state.udf, "preprocess", partition)
        set_worker_context = getattr(partition, "set_worker_context", None)
        worker_context = getattr(env, "worker_context", None)
        if set_worker_context is not None and worker_context is not None:
            set_worker_context(worker_context)  # live sources read their data through it
        set_corrections = getattr(partition, "set_corrections", None)
        if params.corrections is not None and set_corrections is not None:
            set_corrections(params.corrections)
        tracker = None
        if self._progress:
            tracker = PartitionProgressTracker(
                partition, PROGRESS_INTERVAL_S, send=_progress_sender(env, task_id), ident=task_id
            )
        for state in states:
            state.set_processing(True)
        try:
            self._process_tiles(
                states, partition, params, part_slice, roi, read_backend, env, tracker
            )
        finally:
            for state in states:
                state.set_processing(False)
        for state in states:
            udf = state.udf
            state.reset_views()
            udf.meta.slice = part_slice
            if overrides(udf, "postprocess"):
                _call(udf, "postprocess", partition)
            udf.flush(self._debug)
            udf.export_results()
            udf.cleanup()
        return tuple(state.udf.results for state in states)

    def _prepare(self, udf, params, partition, part_slice, dtypes, choice, threads, read_backend):
        dtype, tile_dtype = dtypes
        device_class, array_backend, _source = choice
        udf._backend = array_backend
        shape = params.dataset_shape
        roi = params.roi
        udf.set_meta(
            UDFMeta(
                partition_slice=part_slice,
                dataset_shape=shape,
                roi=None if roi is None else roi.reshape(tuple(shape.nav)),
                dataset_dtype=params.dataset_dtype,
                input_dtype=dtype,
                tiling_scheme=params.tiling_scheme,
                corrections=params.corrections,
                device_class=device_class,
                threads_per_worker=threads,
                array_backend=array_backend,
            )
        )
        declared = udf.get_result_buffers()
        buffers = {}
        n_frames, sig_shape = part_slice.shape[0], tuple(shape.sig)
        for name, buf in declared.items():
            if buf.use == "result_only":
                buffers[name] = PlaceholderBufferWrapper(
                    buf.kind, buf.extra_shape, buf.dtype, buf.where, buf.use
                )
                continue
            buf.set_shape(n_frames, sig_shape)
            buf.allocate(lib=udf.xp)
            buffers[name] = buf
        udf.results = UDFData(buffers)
        udf.init_task_data()
        return _UDFState(udf, np.dtype(tile_dtype), read_backend)

    def _process_tiles(
        self, states, partition, params, part_slice, roi, read_backend, env, tracker
    ):
        scheme = params.tiling_scheme
        n_slices = len(scheme)
        start = part_slice.origin[0]
        converted: dict[np.dtype, np.ndarray] = {}
        # partitions hand out tiles in the dataset's first (native) backend by default
        native = params.dataset_backends[0] if params.dataset_backends else "numpy"
        kwargs = {} if read_backend == native else {"array_backend": read_backend}
        tiles = partition.get_tiles(scheme, params.read_dtype, roi, **kwargs)
        check_cancelled = getattr(env, "check_cancelled", None)
        all_plain = all(state.plain for state in states)
        n_part = int(part_slice.shape[0])
        for count, tile in enumerate(tiles):
            if check_cancelled is not None:
                check_cancelled()
            local = tile.slice
            if getattr(tile, "_offset", None) is None:
                # made as LiberTEM's DataTile(data, tile_slice, scheme_idx) by a partition
                # of another package (e.g. a live detector): frames counted over the
                # dataset's (selected) frames, not the partition's
                local = Slice((local.origin[0] - start, *local.origin[1:]), local.shape)
            n = local.shape[0]
            if local.origin[0] < 0 or local.origin[0] + n > n_part:
                _misplaced(states, local, n_part)
            tile_slice = Slice((start + local.origin[0], *local.origin[1:]), local.shape)
            sig_index = local.get(sig_only=True)
            scheme_idx = getattr(tile, "scheme_idx", None)
            if scheme_idx is None:
                scheme_idx = count % n_slices
            converter = None if all_plain else TileConverter(tile)
            cast: dict[np.dtype, np.ndarray] = {}  # this tile in other dtypes, once each
            for state in states:
                if state.plain:
                    data = tile.data
                    if state.input_dtype != data.dtype:
                        data = cast.get(state.input_dtype)
                        if data is None:
                            data = cast[state.input_dtype] = _convert(
                                converted, tile.data, state.input_dtype, scheme
                            )
                else:
                    data = converter.get(state.target, state.input_dtype, state.udf.xp)
                state.udf.meta._tiling_index = scheme_idx
                _dispatch(state, data, tile_slice, local.origin[0], n, sig_index, partition)
            if tracker is not None:
                tracker.signal_tile_complete(tile)
        if tracker is not None:
            tracker.signal_complete()


def _completed(params: UDFParams, udfs: list[UDF], partition) -> UDFParams:
    """``params``, with what ``UDFParams.from_udfs`` leaves out (input and read dtypes,
    the dataset's shape and dtype) taken from the UDFs and the partition."""
    if params.input_dtypes and params.dataset_shape is not None:
        return params
    params = copy.copy(params)
    native = np.dtype(partition.dtype)
    if params.dataset_shape is None:
        params.dataset_shape = partition.meta.shape
    if params.dataset_dtype is None:
        params.dataset_dtype = native
    if not params.input_dtypes:
        params.input_dtypes = [
            np.result_type(udf.get_preferred_input_dtype(), native) for udf in udfs
        ]
    if params.read_dtype is None:
        params.read_dtype = np.result_type(*params.input_dtypes)
    return params


def _misplaced(states, local: Slice, n_part: int) -> None:
    """Refuse a tile that lies outside its partition (e.g. moved by a wrapper of
    ``get_tiles``): per-frame nav buffers would be indexed out of bounds
    (``IndexError``), any other buffer is misaligned (``AssertionError``)."""
    state = states[0]
    if state.method == "frame" and state.nav_views:
        start = int(local.origin[0])
        index = start if start < 0 else max(n_part, start)
        raise IndexError(f"index {index} is out of bounds for axis 0 with size {n_part}")
    raise AssertionError()


def _progress_sender(env, task_id):
    """``send(topic, message)`` for the progress tracker: the environment's worker
    context signals the main node (``None``: nobody listens)."""
    context = getattr(env, "worker_context", None)
    if context is None:
        return None
    return lambda topic, message: context.signal(task_id, topic, message)


def _convert(cache: dict, data: np.ndarray, dtype: np.dtype, scheme) -> np.ndarray:
    """``data`` converted into a reused buffer of ``dtype``."""
    buffer = cache.get(dtype)
    if buffer is None:
        buffer = cache[dtype] = np.empty((scheme.depth, *scheme.sig_tile_shape), dtype=dtype)
    out = buffer[tuple(slice(0, s) for s in data.shape)]
    np.copyto(out, data, casting="unsafe")
    return out


def _dispatch(state, data, tile_slice, local_start, n, sig_index, partition) -> None:
    udf = state.udf
    meta = udf.meta
    if state.method == "tile":
        for buf in state.nav_views:
            buf.set_view_nav_range(local_start, local_start + n)
        for buf in state.sig_views:
            buf.set_view_nav_range(0, 0, sig_index)
        meta.slice = tile_slice
        _call(udf, "process_tile", partition, data)
    elif state.method == "frame":
        _process_frames(state, data, tile_slice, local_start, n, partition)
    else:
        # a partition's data may come in several tiles (frames without data left out,
        # HDF5 rows): each is processed with the buffers' views of its frames
        for buf in state.nav_views:
            buf.set_view_nav_range(local_start, local_start + n)
        for buf in state.sig_views:
            buf.set_view_nav_range(0, 0, sig_index)
        meta.slice = tile_slice
        _call(udf, "process_partition", partition, data)


def _process_frames(state, data, tile_slice, local_start, n, partition) -> None:
    """``process_frame`` for each frame of the tile.

    The per-frame cost is the framework's cost of a frame (a few hundred
    nanoseconds here): the views of the result buffers are also written into the
    instance dict of ``udf.results`` while the frames are processed, so that
    ``self.results.name`` is a plain attribute lookup; ``meta.slice`` is made only
    when the UDF reads it.
    """
    udf = state.udf
    meta = udf.meta
    for buf in state.sig_views:
        buf.reset_view()
    frame_shape = Shape((1, *tile_slice.shape[1:]), sig_dims=tile_slice.shape.sig_dims)
    meta.set_frame_template(tile_slice.origin[1:], frame_shape)
    start = tile_slice.origin[0]
    nav_results, nav_aux = state.nav_results, state.nav_aux
    process_frame = udf.process_frame
    set_frame = meta.set_frame
    mirror = getattr(udf.results, "__dict__", None)
    if mirror is None:  # not a UDFData: views through its own attribute access
        mirror = {}
    for name, buf in state.other_results:
        mirror[name] = buf.view
    try:
        with _noted(udf, "process_frame", partition):
            if len(nav_results) == 1 and not nav_aux and n > 0:
                # the common case, in C-level iteration: one nav buffer, its frame views
                ((name, buf),) = nav_results
                views = buf.frame_views(local_start, n)
                for index, (frame, view) in enumerate(zip(data[:n], views), start):
                    buf._view = view
                    mirror[name] = view
                    meta._frame = index
                    process_frame(frame)
                return
            for k in range(n):
                i = local_start + k
                for name, buf in nav_results:
                    buf.set_view_frame(i)
                    mirror[name] = buf._view
                for buf in nav_aux:
                    buf.set_view_frame(i)
                set_frame(start + k)
                process_frame(data[k])
    finally:
        for name, _ in nav_results:
            mirror.pop(name, None)
        for name, _ in state.other_results:
            mirror.pop(name, None)


_REMOVED_TILE_ATTRIBUTES = {
    "tile_slice": "self.meta.slice",
    "scheme_idx": "self.meta.tiling_scheme_idx",
}


def _call(udf: UDF, method: str, partition, *args: Any) -> None:
    """Call a UDF method; an exception gets a note saying where it happened (see
    :func:`_noted`)."""
    with _noted(udf, method, partition):
        getattr(udf, method)(*args)


@contextlib.contextmanager
def _noted(udf: UDF, method: str, partition) -> Iterator[None]:
    """Exceptions in the block (calls of ``method``) get a note saying where they happened.

    An ``AttributeError`` about the tile attributes that no longer exist
    (``tile_slice``, ``scheme_idx``) is replaced by one that names their successor.
    """
    try:
        yield
    except AttributeError as e:
        for attr, successor in _REMOVED_TILE_ATTRIBUTES.items():
            if method.startswith("process_") and attr in str(e):
                raise AttributeError(
                    f"Attribute {attr} for input tiles was removed. "
                    f"Please use {successor} instead."
                ) from e
        _add_note(e, udf, method, partition)
        raise
    except Exception as e:
        _add_note(e, udf, method, partition)
        raise


def _add_note(e: Exception, udf: UDF, method: str, partition) -> None:
    if hasattr(e, "add_note"):
        e.add_note(
            f"raised in {type(udf).__name__}.{method} while processing partition "
            f"[{partition.start}, {partition.stop})"
        )


__all__ = ["UDFPartRunner", "TileConverter", "UDFParams", "aux_buffers"]
