"""Worker side of a run: process one partition with clean copies of the UDFs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np

from libertem.common.backend import choose_backend, get_device_class, to_host
from libertem.common.buffers import BufferWrapper
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.executor.base import TaskEnvironment
from libertem.io.dataset.base import Partition, TilingScheme
from libertem.udf.base import UDF, find_method, overrides
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta


@dataclass
class UDFRunParams:
    """Everything the tasks of one run share; shipped to the workers once.

    Attributes
    ----------
    udf_specs
        ``(class, constructor kwargs)`` per UDF: workers make clean copies from them.
    input_dtypes
        Input dtype per UDF.
    read_dtype
        Dtype the partition is read in (converted per UDF where it differs).
    """

    udf_specs: list[tuple[type, dict[str, Any]]]
    input_dtypes: list[np.dtype]
    read_dtype: np.dtype
    dataset_shape: Shape
    dataset_dtype: np.dtype
    roi: np.ndarray | None
    tiling_scheme: TilingScheme
    backends: tuple[str, ...] | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["udf_specs"] = dumps_by_value(self.udf_specs)
        return state

    def __setstate__(self, state):
        state["udf_specs"] = cloudpickle.loads(state["udf_specs"])
        self.__dict__.update(state)


def _user_modules(specs: list[tuple[type, dict[str, Any]]]) -> set[str]:
    """Modules of the UDF classes that are user code, not this package or a library."""
    names = set()
    for cls, _ in specs:
        for klass in cls.__mro__:
            module = klass.__module__
            if module in ("builtins", "__main__") or module.split(".")[0] == "libertem":
                continue
            mod = sys.modules.get(module)
            path = getattr(mod, "__file__", None) or ""
            if mod is not None and "site-packages" not in path and "dist-packages" not in path:
                names.add(module)
    return names


def dumps_by_value(specs: list[tuple[type, dict[str, Any]]]) -> bytes:
    """Pickle UDF classes and parameters, user modules by value.

    Worker processes may not be able to import the module that defines a UDF (a
    test module, a notebook, a script run from elsewhere); its code travels along.
    """
    registered = []
    for name in _user_modules(specs):
        try:
            cloudpickle.register_pickle_by_value(sys.modules[name])
            registered.append(name)
        except ValueError:
            pass
    try:
        return cloudpickle.dumps(specs)
    finally:
        for name in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[name])


@dataclass
class UDFTask:
    """Process one partition: ``task(params, env)`` returns the partial results.

    Attributes
    ----------
    partition
        The partition to read.
    task_id
        Position of the task in the run.
    compressed_start
        Index of the partition's first selected frame among all selected frames.
    n_frames
        Number of selected frames in the partition.
    resources
        Worker resources the task needs (e.g. ``{'CPU': 1, 'compute': 1}``).
    """

    partition: Partition
    task_id: int
    compressed_start: int
    n_frames: int
    resources: dict[str, int] | None = None

    def __call__(self, params: UDFRunParams, env: TaskEnvironment) -> list[dict[str, np.ndarray]]:
        return PartitionRunner(params, self, env).run()


def _fresh_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs with aux buffers copied, so views stay private to this task."""
    return {
        k: BufferWrapper.make_aux(v._aux_source, v.kind, v.extra_shape, v.dtype)
        if isinstance(v, BufferWrapper) and v.is_aux
        else v
        for k, v in kwargs.items()
    }


def aux_buffers(udf: UDF) -> list[BufferWrapper]:
    """The auxiliary-data buffers among a UDF's parameters."""
    return [v for v in udf.params._data.values() if isinstance(v, BufferWrapper) and v.is_aux]


class _UDFState:
    """One UDF instance on the worker, with its buffers split by how views are set."""

    def __init__(self, udf: UDF, input_dtype: np.dtype, result_buffers: dict[str, BufferWrapper]):
        self.udf = udf
        self.method = find_method(udf)
        self.input_dtype = input_dtype
        self.result_buffers = result_buffers
        self.on_device = udf.meta.array_backend != "numpy"
        views = list(result_buffers.values()) + aux_buffers(udf)
        self.nav_views = [b for b in views if b.kind == "nav"]
        self.sig_views = [b for b in views if b.kind == "sig"]

    def reset_views(self) -> None:
        for b in self.nav_views + self.sig_views:
            b.reset_view()


class PartitionRunner:
    """Runs the UDFs of one task over the tiles of its partition."""

    def __init__(self, params: UDFRunParams, task: UDFTask, env: TaskEnvironment):
        self.params = params
        self.task = task
        self.env = env

    def _make_state(self, cls: type, kwargs: dict, input_dtype: np.dtype) -> _UDFState:
        params, task = self.params, self.task
        partition = task.partition
        sig_shape = tuple(params.dataset_shape.sig)
        sig_dims = len(sig_shape)
        udf = cls(**_fresh_kwargs(kwargs))
        supported = set(udf.get_backends())
        if params.backends is not None:
            supported &= set(params.backends)
        device_class, array_backend = choose_backend(supported, get_device_class())
        udf._backend = array_backend
        roi = params.roi
        frame_indices = None
        if roi is not None:
            frame_indices = (
                task.compressed_start,
                partition.start + np.flatnonzero(roi[partition.start : partition.stop]),
            )
        meta = UDFMeta(
            dataset_shape=params.dataset_shape,
            partition_shape=Shape((task.n_frames, *sig_shape), sig_dims=sig_dims),
            dataset_dtype=params.dataset_dtype,
            input_dtype=input_dtype,
            roi=None if roi is None else roi.reshape(tuple(params.dataset_shape.nav)),
            tiling_scheme=params.tiling_scheme,
            frame_indices=frame_indices,
            device_class=device_class,
            array_backend=array_backend,
        )
        meta.slice = Slice(
            (task.compressed_start, *([0] * sig_dims)),
            Shape((task.n_frames, *sig_shape), sig_dims=sig_dims),
        )
        udf.meta = meta
        buffers = {
            name: buf for name, buf in udf.get_result_buffers().items() if buf.use != "result_only"
        }
        for buf in buffers.values():
            buf.allocate(task.n_frames, sig_shape, xp=udf.xp)
        udf.results = UDFData(buffers)
        for buf in aux_buffers(udf):
            buf.bind_aux(partition.start, partition.stop, roi)
        udf.task_data = UDFData(udf.get_task_data() or {})
        return _UDFState(udf, input_dtype, buffers)

    def run(self) -> list[dict[str, np.ndarray]]:
        """Process the partition; return each UDF's partial results by buffer name."""
        params, task = self.params, self.task
        states = [
            self._make_state(cls, kwargs, dtype)
            for (cls, kwargs), dtype in zip(params.udf_specs, params.input_dtypes)
        ]
        for state in states:
            if overrides(state.udf, "preprocess"):
                _call(state.udf, "preprocess", task)
        roi_part = None
        if params.roi is not None:
            roi_part = params.roi[task.partition.start : task.partition.stop]
        self._process_tiles(states, roi_part)
        for state in states:
            state.reset_views()
            state.udf.meta.slice = Slice(
                (task.compressed_start, *([0] * len(params.dataset_shape.sig))),
                state.udf.meta.partition_shape,
            )
            if overrides(state.udf, "postprocess"):
                _call(state.udf, "postprocess", task)
        return [
            {name: to_host(buf.raw_data) for name, buf in state.result_buffers.items()}
            for state in states
        ]

    def _process_tiles(self, states: list[_UDFState], roi_part: np.ndarray | None) -> None:
        params, task, env = self.params, self.task, self.env
        scheme = params.tiling_scheme
        sig_size = params.dataset_shape.sig.size
        converted: dict[np.dtype, np.ndarray] = {}
        tiles = task.partition.get_tiles(scheme, params.read_dtype, roi_part)
        for tile in tiles:
            env.check_cancelled()
            local = tile.slice
            n = local.shape[0]
            tile_slice = Slice(
                (task.compressed_start + local.origin[0], *local.origin[1:]), local.shape
            )
            sig_index = local.get(sig_only=True)
            for state in states:
                data = tile.data
                if state.input_dtype != data.dtype:
                    data = _convert(converted, data, state.input_dtype, scheme)
                if state.on_device:
                    data = state.udf.xp.asarray(data)
                _dispatch(state, data, tile_slice, local.origin[0], n, sig_index, task)
            env.report_progress(task.task_id, n * (local.shape.sig.size / sig_size))


def _convert(cache: dict, data: np.ndarray, dtype: np.dtype, scheme: TilingScheme) -> np.ndarray:
    """``data`` converted into a reused buffer of ``dtype``."""
    buffer = cache.get(dtype)
    if buffer is None:
        buffer = cache[dtype] = np.empty((scheme.depth, *scheme.sig_tile_shape), dtype=dtype)
    out = buffer[tuple(slice(0, s) for s in data.shape)]
    np.copyto(out, data, casting="unsafe")
    return out


def _dispatch(state, data, tile_slice, local_start, n, sig_index, task) -> None:
    udf = state.udf
    meta = udf.meta
    if state.method == "tile":
        for buf in state.nav_views:
            buf.set_view_nav_range(local_start, local_start + n)
        for buf in state.sig_views:
            buf.set_view_nav_range(0, 0, sig_index)
        meta.slice = tile_slice
        _call(udf, "process_tile", task, data)
    elif state.method == "frame":
        for buf in state.sig_views:
            buf.reset_view()
        sig_origin = tile_slice.origin[1:]
        frame_shape = Shape((1, *tile_slice.shape[1:]), sig_dims=tile_slice.shape.sig_dims)
        start = tile_slice.origin[0]
        for k in range(n):
            for buf in state.nav_views:
                buf.set_view_frame(local_start + k)
            meta.slice = Slice((start + k, *sig_origin), frame_shape)
            _call(udf, "process_frame", task, data[k])
    else:
        state.reset_views()
        meta.slice = tile_slice
        _call(udf, "process_partition", task, data)


def _call(udf: UDF, method: str, task: UDFTask, *args) -> None:
    """Call a UDF method; an exception gets a note saying where it happened."""
    try:
        getattr(udf, method)(*args)
    except Exception as e:
        if hasattr(e, "add_note"):
            e.add_note(
                f"raised in {type(udf).__name__}.{method} while processing partition "
                f"[{task.partition.start}, {task.partition.stop}) (task {task.task_id})"
            )
        raise
