"""The base classes of UDFs: :class:`UDF`, which user code derives from, and
:class:`UDFBase`, the steps the engine takes with every UDF.

LiberTEM's module path of these classes is :mod:`libertem.udf.base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem.common.buffers import (
    ArrayWithMask,
    AuxBufferWrapper,
    BufferKind,
    BufferWrapper,
)
from libertem.common.exceptions import UDFException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.udf import TilingPreferences, UDFMethod, UDFProtocol
from libertem.udf.data import MergeAttrMapping, UDFData, UDFKwargsWrapper
from libertem.udf.meta import UDFMeta
from libertem.udf.mixins import (
    DEFAULT_MERGE_ONLY_NAV,
    UDFMergeAllMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    first_implemented,
)

if TYPE_CHECKING:
    from numpy import typing as nt


def overrides(udf, name: str) -> bool:
    """Whether the UDF's class implements ``name`` itself (not the base or mixin stub)."""
    method = getattr(type(udf), name, None)
    if method is None:
        return False
    stubs = {
        getattr(base, name)
        for base in (UDF, UDFBase, UDFPreprocessMixin, UDFPostprocessMixin, UDFMergeAllMixin)
        if hasattr(base, name)
    }
    return method not in stubs


class UDFBase(UDFProtocol):
    """What the engine does with a UDF: buffers, views, metadata, backend.

    User code rarely calls these methods; they are the steps the engine takes on
    every clean copy of a UDF (on the workers) and on the main node.
    """

    #: the enum of processing methods that :meth:`get_method` returns
    UDF_METHOD = UDFMethod

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    # to implement (see UDF) -----------------------------------------------------
    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        """Declare the result buffers, by name, created with ``self.buffer``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_result_buffers()")

    def get_results(self) -> dict[str, np.ndarray]:
        """Compute the final results from the merged buffers."""
        raise NotImplementedError()

    def get_task_data(self) -> dict[str, Any]:
        """Create per-task data on the worker."""
        return {}

    def get_backends(self):
        """Array backends the UDF supports."""
        return (self.BACKEND_NUMPY,)

    # the engine's steps ------------------------------------------------------------
    def get_method(self) -> UDFMethod:
        """The processing method: ``TILE`` if the class implements ``process_tile``,
        else ``FRAME`` for ``process_frame``, else ``PARTITION`` for
        ``process_partition``.

        Override it to choose at run time among several implemented methods.

        Raises
        ------
        TypeError
            If the class implements none of them.
        """
        method = first_implemented(type(self))
        if method is None:
            raise TypeError("UDF should implement one of the `process_*` methods")
        return method

    def set_meta(self, meta: UDFMeta) -> None:
        """Use ``meta`` as ``self.meta``."""
        self.meta = meta

    def set_backend(self, backend: str) -> None:
        """Run with array backend ``backend`` (one of :meth:`get_backends`)."""
        from libertem.udf.backends import as_backend_set

        if backend not in as_backend_set(self.get_backends(), "get_backends()"):
            raise UDFException(f"{type(self).__name__} does not support backend {backend!r}")
        self._backend = backend

    def set_main_process_gpu(self, main_process_gpu: int | None) -> None:
        """The GPU the main process may use (for ``get_results``), or ``None``."""
        self._main_process_gpu = main_process_gpu

    def set_slice(self, slice_: Slice) -> None:
        """The region now processed (``self.meta.slice``)."""
        self.meta.slice = slice_

    def set_tile_idx(self, idx: int) -> None:
        """Index of the signal region of the current tile (``self.meta.tiling_scheme_idx``)."""
        self.meta._tiling_index = int(idx)

    def init_result_buffers(self, executor=None) -> None:
        """Declare the result buffers as ``self.results`` (not yet allocated).

        An executor may replace the buffer classes (``modify_buffer_type``).
        """
        buffers = self.get_result_buffers()
        modify = getattr(executor, "modify_buffer_type", None)
        if modify is not None:
            buffers = {name: modify(buf) for name, buf in buffers.items()}
        self.results = UDFData(buffers)

    def init_task_data(self) -> None:
        """Compute ``self.task_data`` with :meth:`get_task_data`."""
        self.task_data = UDFData(self.get_task_data() or {})

    def allocate_for_full(self, dataset, roi: np.ndarray | None) -> None:
        """Allocate the result buffers for the whole dataset (main node)."""
        self.results.allocate_for_full(dataset, roi)

    def allocate_for_part(self, partition, roi: np.ndarray | None) -> None:
        """Allocate the result buffers for one partition, device buffers with ``self.xp``."""
        self.results.allocate_for_part(partition, roi, lib=self.xp)

    def _params_data(self) -> UDFData:
        return self.params

    def _shifted(self, tile_slice: Slice) -> Slice:
        part = self.meta._partition_slice
        if part is None:
            return tile_slice
        return tile_slice.shift_by((part.origin[0],) + (0,) * (len(tile_slice.origin) - 1))

    def set_views_for_dataset(self, dataset) -> None:
        """Views of the whole dataset (main node)."""
        self.results.set_view_for_dataset(dataset)
        self._params_data().set_view_for_dataset(dataset)

    def set_views_for_partition(self, partition) -> None:
        """Views of a whole partition."""
        self.results.set_view_for_partition(partition)
        self._params_data().set_view_for_partition(partition)

    def set_views_for_tile(self, partition, tile) -> None:
        """Views of ``tile``; ``self.meta.slice`` becomes its region in the dataset."""
        self.results.set_view_for_tile(partition, tile)
        self._params_data().set_view_for_tile(partition, tile)
        self.meta.slice = self._shifted(BufferWrapper._tile_slice(tile, partition))

    def set_contiguous_views_for_tile(self, partition, tile) -> None:
        """Like :meth:`set_views_for_tile`, with contiguous ``sig`` views (see ``flush``)."""
        self.results.set_contiguous_view_for_tile(partition, tile)
        self._params_data().set_view_for_tile(partition, tile)
        self.meta.slice = self._shifted(BufferWrapper._tile_slice(tile, partition))

    def set_views_for_frame(self, partition, tile, frame_idx: int) -> None:
        """Views of frame ``frame_idx`` of ``tile``."""
        self.results.set_view_for_frame(partition, tile, frame_idx)
        self._params_data().set_view_for_frame(partition, tile, frame_idx)
        sl = self._shifted(BufferWrapper._tile_slice(tile, partition))
        shape = Shape((1, *tuple(sl.shape)[1:]), sig_dims=sl.shape.sig_dims)
        self.meta.slice = Slice((sl.origin[0] + frame_idx, *sl.origin[1:]), shape)

    def clear_views(self) -> None:
        """Point all views back at the whole buffers."""
        self.results.clear_views()
        self._params_data().clear_views()

    def flush(self, debug: bool = False) -> None:
        """Write back contiguous views."""
        self.results.flush(debug=debug)

    def export_results(self) -> None:
        """Move the result buffers to host memory."""
        self.results.export()

    @property
    def xp(self):
        """The array module of the backend now used: ``cupy`` for CuPy backends, else ``numpy``."""
        from libertem.common.backend import get_array_module

        return get_array_module(getattr(self, "_backend", self.BACKEND_NUMPY))


class UDF(UDFBase):
    """Base class of user-defined functions.

    Subclasses implement :meth:`get_result_buffers` and one of ``process_tile``,
    ``process_frame`` or ``process_partition`` (looked up in that order).
    Keyword arguments become ``self.params``; a clean copy of a UDF is made by
    calling its class with the same keyword arguments again.

    Parameters
    ----------
    **kwargs
        Parameters, available as attributes of ``self.params``; auxiliary data
        (:meth:`aux_data`) reads as the part for the data now processed.
    """

    USE_NATIVE_DTYPE = np.bool_

    def __init__(self, **kwargs: Any | AuxBufferWrapper) -> None:
        self._kwargs = kwargs
        self.params = UDFKwargsWrapper(kwargs)
        self.results: UDFData | None = None
        self.task_data: UDFData | None = None
        self.meta: UDFMeta | None = None
        self._backend = self.BACKEND_NUMPY

    # interface to implement ---------------------------------------------------
    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        """Declare the result buffers, by name, created with :meth:`buffer`."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_result_buffers()")

    def merge(self, dest: MergeAttrMapping, src: MergeAttrMapping):
        """Merge the partial result ``src`` of one partition into ``dest``.

        The default assigns ``kind='nav'`` buffers; UDFs with ``'sig'`` or
        ``'single'`` buffers must override it.

        Raises
        ------
        NotImplementedError
            If a merged buffer is not of ``kind='nav'``.
        """
        if self.requires_custom_merge:
            raise NotImplementedError(DEFAULT_MERGE_ONLY_NAV)
        for name, target in dest.items():
            target[:] = src.get(name)

    def get_results(self) -> dict[str, np.ndarray]:
        """Compute the final results from the merged buffers.

        The default returns every buffer that is not ``use='private'``; override it to
        fill ``use='result_only'`` buffers or to transform results. A value may be
        wrapped with :meth:`with_mask` to say which of its entries are valid. The
        results of a run also hold every ``use=None`` buffer that an overriding
        ``get_results`` leaves out, as merged.

        Raises
        ------
        UDFException
            In this default implementation, if a ``use='result_only'`` buffer is
            declared (only an override can fill it).
        """
        buffers = self.results.buffers()
        refuse_result_only(buffers)
        return {name: buf.raw_data for name, buf in buffers.items() if buf.use is None}

    def get_task_data(self) -> dict[str, Any]:
        """Create per-task data on the worker, available as ``self.task_data``."""
        return {}

    def get_preferred_input_dtype(self) -> nt.DTypeLike:
        """Dtype the UDF prefers as input; combined with the dataset's by ``numpy.result_type``."""
        return np.float32

    def get_tiling_preferences(self) -> TilingPreferences:
        """Preferred tile ``depth`` (frames) and ``total_size`` (bytes)."""
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": self.TILE_SIZE_BEST_FIT}

    def get_backends(self):
        """Array backends the UDF supports (one name or an iterable): ``('numpy',)`` by default.

        See :class:`~libertem.common.udf.UDFProtocol` for the names (``BACKEND_*``)
        and sets of them (``CPU_BACKENDS``, ``SPARSE_BACKENDS``, ...).
        """
        return (self.BACKEND_NUMPY,)

    def cleanup(self) -> None:
        """Release resources after processing; called on each copy that processed data."""

    # helpers for implementations --------------------------------------------------
    def buffer(
        self,
        kind: BufferKind,
        extra_shape: tuple[int, ...] = (),
        dtype: nt.DTypeLike = "float32",
        where: str | None = None,
        use: str | None = None,
    ) -> BufferWrapper:
        """Declare a result buffer; see :class:`~libertem.common.buffers.BufferWrapper`."""
        return BufferWrapper(kind=kind, extra_shape=extra_shape, dtype=dtype, where=where, use=use)

    @classmethod
    def aux_data(cls, data, kind, extra_shape=(), dtype="float32") -> AuxBufferWrapper:
        """Wrap per-frame or per-pixel input data to pass as a parameter.

        Inside ``process_*``, ``self.params.<name>`` then reads as the part of the
        data for the frame, tile or partition now processed.

        Parameters
        ----------
        data
            For ``kind='nav'``: ``prod(extra_shape)`` values per frame in any shape
            of that total size, e.g. navigation-shaped plus ``extra_shape``, or flat
            (C order: the values of frame 0 first); for ``kind='sig'``: signal-shaped
            plus ``extra_shape``.
        kind
            ``'nav'``, ``'sig'`` or ``'single'``.
        extra_shape
            Trailing axes per frame or pixel.
        dtype
            Dtype of the data. It is not converted: ``data`` must have this dtype.

        Raises
        ------
        AssertionError
            If the dtype of ``data`` is not ``dtype`` (as in LiberTEM).
        ValueError
            If a ``kind='nav'`` size is not a multiple of ``prod(extra_shape)``.
        """
        return BufferWrapper.make_aux(data, kind=kind, extra_shape=extra_shape, dtype=dtype)

    @staticmethod
    def with_mask(data: np.ndarray, mask: np.ndarray | bool) -> ArrayWithMask:
        """Mark which entries of a result are valid: return this from ``get_results``.

        Parameters
        ----------
        data
            The result.
        mask
            Boolean array broadcastable to the result's ``.data`` shape (``True``:
            valid), or one bool for all entries.
        """
        return ArrayWithMask(data, mask)

    def forbuf(self, arr, target):
        """``arr`` converted to the array backend (and shape) of the buffer view ``target``.

        Useful when the input is sparse or on a device but a buffer is not, e.g.
        ``self.results.x[:] += self.forbuf(tile_result, self.results.x)``.
        """
        from libertem.udf.backends import convert_like

        return convert_like(arr, target)

    def copy(self) -> UDF:
        """A clean copy: ``type(self)(**kwargs)`` with the constructor's keyword arguments."""
        return type(self)(**self._kwargs)

    @classmethod
    def new_for_partition(cls, kwargs: dict[str, Any], partition, roi: np.ndarray) -> UDF:
        """A new instance whose auxiliary data holds only the part for ``partition``."""
        return cls(**UDFKwargsWrapper(kwargs).new_for_partition(partition, roi).as_dict())

    def copy_for_partition(self, partition, roi: np.ndarray) -> UDF:
        """A clean copy whose auxiliary data holds only the part for ``partition``."""
        return type(self).new_for_partition(self._kwargs, partition, roi)

    @property
    def requires_custom_merge(self) -> bool:
        """Whether the default :meth:`merge` cannot combine this UDF's buffers (needs ``meta``).

        That is the case when a buffer that is merged has ``kind`` other than ``'nav'``.
        """
        return any(
            buf.kind != "nav"
            for buf in self.get_result_buffers().values()
            if buf.use != "result_only"
        )

    @property
    def requires_custom_merge_all(self) -> bool:
        """Whether merging all partial results at once needs the UDF's own ``merge_all``."""
        return self.requires_custom_merge


def refuse_result_only(buffers: Mapping[str, BufferWrapper]) -> None:
    """What the default ``get_results`` says to ``use='result_only'`` buffers.

    Raises
    ------
    UDFException
        For the first ``use='result_only'`` buffer: only an overriding
        ``get_results`` can fill it.
    """
    for name, buf in buffers.items():
        if buf.use == "result_only":
            raise UDFException(
                f"don't know how to set use='result_only' buffer {name!r}; "
                "please implement `get_results`"
            )


__all__ = ["UDF", "UDFBase", "overrides", "refuse_result_only"]
