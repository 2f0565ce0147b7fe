"""The UDF interface: base class, mixin protocols and method discovery."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from libertem.common.buffers import BufferKind, BufferWrapper
from libertem.common.exceptions import UDFException
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta


class UDFFrameMixin:
    """Implement ``process_frame`` to process one frame at a time."""

    def process_frame(self, frame: np.ndarray) -> None:
        """Process one frame (an array of the signal shape).

        ``kind='nav'`` buffers in ``self.results`` are views for this frame;
        ``'sig'`` and ``'single'`` buffers are the whole partition's buffers.
        """
        raise NotImplementedError()


class UDFTileMixin:
    """Implement ``process_tile`` to process stacks of (parts of) frames."""

    def process_tile(self, tile: np.ndarray) -> None:
        """Process a tile: ``depth`` frames times a rectangle of the signal.

        ``self.meta.slice`` gives its position. ``kind='nav'`` buffers are views of
        the tile's frames, ``kind='sig'`` buffers are cut to the tile's signal region.
        """
        raise NotImplementedError()


class UDFPartitionMixin:
    """Implement ``process_partition`` to process a whole partition at once."""

    def process_partition(self, partition: np.ndarray) -> None:
        """Process all (selected) frames of a partition, stacked along the first axis."""
        raise NotImplementedError()


class UDFPreprocessMixin:
    """Implement ``preprocess`` to initialize buffers before processing or merging."""

    def preprocess(self) -> None:
        """Initialize buffers; runs per partition on workers and once on the main node."""
        raise NotImplementedError()


class UDFPostprocessMixin:
    """Implement ``postprocess`` to finish a partition's results on the worker."""

    def postprocess(self) -> None:
        """Run after all data of a partition has been processed."""
        raise NotImplementedError()


class UDFMergeAllMixin:
    """Implement ``merge_all`` to merge all partial results in one step."""

    def merge_all(self, ordered_results: Mapping) -> dict[str, np.ndarray]:
        """Merge partial results.

        Parameters
        ----------
        ordered_results
            Mapping of each partition's :class:`~libertem.common.slice.Slice` to its
            partial results (attribute/item access per buffer), ordered by position.

        Returns
        -------
        dict
            Buffer name to merged array; ``nav`` results flat and ROI-compressed.
        """
        raise NotImplementedError()


class UDF:
    """Base class of user-defined functions.

    Subclasses implement :meth:`get_result_buffers` and one of ``process_tile``,
    ``process_frame`` or ``process_partition`` (looked up in that order).
    Keyword arguments become ``self.params``; a clean copy of a UDF is made by
    calling its class with the same keyword arguments again.

    Parameters
    ----------
    **kwargs
        Parameters, available as attributes of ``self.params``.
    """

    USE_NATIVE_DTYPE = np.bool_
    TILE_SIZE_BEST_FIT = "best_fit"
    TILE_SIZE_MAX = math.inf
    TILE_DEPTH_DEFAULT = "default"
    TILE_DEPTH_MAX = math.inf
    BACKEND_NUMPY = "numpy"
    BACKEND_CUPY = "cupy"
    BACKEND_CUDA = "cuda"
    BACKEND_ALL = ("numpy", "cupy")

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self.params = UDFData(kwargs)
        self.results: UDFData | None = None
        self.task_data: UDFData | None = None
        self.meta: UDFMeta | None = None
        self._backend = self.BACKEND_NUMPY

    # interface to implement ---------------------------------------------------
    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        """Declare the result buffers, by name, created with :meth:`buffer`."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_result_buffers()")

    def merge(self, dest: UDFData, src: UDFData) -> None:
        """Merge the partial result ``src`` of one partition into ``dest``.

        The default assigns ``kind='nav'`` buffers; UDFs with ``'sig'`` or
        ``'single'`` buffers must override it.
        """
        for name in dest:
            buf = dest.get_buffer(name)
            if buf.kind != "nav":
                raise UDFException(
                    f"{type(self).__name__} must implement merge(): buffer {name!r} "
                    f"has kind={buf.kind!r}, which the default merge cannot combine"
                )
            dest[name][:] = src[name]

    def merge_all(self, ordered_results: Mapping) -> dict[str, np.ndarray]:
        """Merge all partial results at once; see :class:`UDFMergeAllMixin`."""
        raise NotImplementedError()

    def get_results(self) -> dict[str, np.ndarray]:
        """Compute the final results from the merged buffers.

        The default returns every buffer that is not ``use='private'``; override it to
        fill ``use='result_only'`` buffers or to transform results.
        """
        return {
            name: buf.raw_data for name, buf in self.results.buffers().items() if buf.use is None
        }

    def get_task_data(self) -> dict[str, Any]:
        """Create per-task data on the worker, available as ``self.task_data``."""
        return {}

    def get_preferred_input_dtype(self):
        """Dtype the UDF prefers as input; combined with the dataset's by ``numpy.result_type``."""
        return np.float32

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Preferred tile ``depth`` (frames) and ``total_size`` (bytes)."""
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": self.TILE_SIZE_BEST_FIT}

    def get_backends(self) -> Sequence[str]:
        """Array backends the UDF supports: ``('numpy',)`` by default."""
        return (self.BACKEND_NUMPY,)

    # helpers for implementations --------------------------------------------------
    @staticmethod
    def buffer(
        kind: BufferKind,
        extra_shape: Sequence[int] | int = (),
        dtype: Any = "float32",
        where: str | None = None,
        use: str | None = None,
    ) -> BufferWrapper:
        """Declare a result buffer; see :class:`~libertem.common.buffers.BufferWrapper`."""
        return BufferWrapper(kind=kind, extra_shape=extra_shape, dtype=dtype, where=where, use=use)

    @classmethod
    def aux_data(
        cls, data: np.ndarray, kind: BufferKind, extra_shape: Sequence[int] = (), dtype="float32"
    ) -> BufferWrapper:
        """Wrap per-frame or per-pixel input data to pass as a parameter.

        Inside ``process_*``, ``self.params.<name>`` then reads as the part of the
        data for the frame, tile or partition now processed.

        Parameters
        ----------
        data
            For ``kind='nav'``: navigation-shaped (or flat) plus ``extra_shape``;
            for ``kind='sig'``: signal-shaped plus ``extra_shape``.
        kind
            ``'nav'``, ``'sig'`` or ``'single'``.
        extra_shape
            Trailing axes per frame or pixel.
        dtype
            Dtype the data is converted to.
        """
        return BufferWrapper.make_aux(data, kind=kind, extra_shape=extra_shape, dtype=dtype)

    @property
    def xp(self):
        """The array module of the backend now used: ``numpy``, or ``cupy`` on CUDA workers."""
        from libertem.common.backend import get_array_module

        return get_array_module(self._backend)

    def copy(self) -> UDF:
        """A clean copy: ``type(self)(**kwargs)`` with the constructor's keyword arguments."""
        return type(self)(**self._kwargs)


def find_method(udf: UDF) -> str:
    """Which processing method a UDF implements: ``'tile'``, ``'frame'`` or ``'partition'``."""
    cls = type(udf)
    for name, stub in (
        ("tile", UDFTileMixin.process_tile),
        ("frame", UDFFrameMixin.process_frame),
        ("partition", UDFPartitionMixin.process_partition),
    ):
        method = getattr(cls, f"process_{name}", None)
        if method is not None and method is not stub:
            return name
    raise UDFException(
        f"{cls.__name__} implements none of process_tile, process_frame, process_partition"
    )


def overrides(udf: UDF, name: str) -> bool:
    """Whether the UDF's class implements ``name`` itself (not the base or mixin stub)."""
    method = getattr(type(udf), name, None)
    if method is None:
        return False
    stubs = {
        getattr(base, name)
        for base in (UDF, UDFPreprocessMixin, UDFPostprocessMixin, UDFMergeAllMixin)
        if hasattr(base, name)
    }
    return method not in stubs


__all__ = [
    "UDF",
    "UDFData",
    "UDFMeta",
    "UDFFrameMixin",
    "UDFTileMixin",
    "UDFPartitionMixin",
    "UDFPreprocessMixin",
    "UDFPostprocessMixin",
    "UDFMergeAllMixin",
    "find_method",
    "overrides",
]


def __getattr__(name: str):
    if name == "UDFRunner":
        from libertem.udf.runner import UDFRunner

        return UDFRunner
    raise AttributeError(name)
