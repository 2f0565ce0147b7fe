"""Result and auxiliary buffers of UDFs, and the views the engine hands to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from libertem.common.shape import Shape

BufferKind = Literal["nav", "sig", "single"]
_KINDS = ("nav", "sig", "single")
_USES = (None, "private", "result_only")
_WHERES = (None, "device")


def _fill_value(dtype: np.dtype):
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "O":
        return None
    return 0


class BufferWrapper:
    """A buffer declared by a UDF, plus its storage and current view.

    Buffers are declared with :meth:`libertem.udf.UDF.buffer` and come back from
    :meth:`libertem.api.Context.run_udf` as instances of this class.

    Parameters
    ----------
    kind
        ``'nav'``: one entry per frame; ``'sig'``: one entry per detector pixel;
        ``'single'``: shaped by ``extra_shape`` alone.
    extra_shape
        Axes appended after the nav or sig axes.
    dtype
        Any numpy dtype, including ``object``.
    where
        ``None`` (host memory) or ``'device'`` (kept on the GPU when a CUDA
        backend runs the UDF).
    use
        ``None``, ``'private'`` (merged, but not returned) or ``'result_only'``
        (exists only on the main node and is filled by ``get_results``).

    Notes
    -----
    For ``kind='nav'`` the storage is flat and compressed by the ROI:
    :attr:`raw_data` has one entry per *selected* frame, while :attr:`data`
    is shaped like the navigation axes with a fill value (NaN for floats)
    outside the ROI.
    """

    def __init__(
        self,
        kind: BufferKind,
        extra_shape: Sequence[int] | int = (),
        dtype: Any = "float32",
        where: Literal["device"] | None = None,
        use: Literal["private", "result_only"] | None = None,
    ):
        if kind not in _KINDS:
            raise ValueError(f"buffer kind must be one of {_KINDS}, got {kind!r}")
        if use not in _USES:
            raise ValueError(f"buffer use must be one of {_USES}, got {use!r}")
        if where not in _WHERES:
            raise ValueError(f"buffer where must be one of {_WHERES}, got {where!r}")
        if isinstance(extra_shape, (int, np.integer)):
            extra_shape = (int(extra_shape),)
        self._kind = kind
        self._extra_shape = tuple(int(s) for s in extra_shape)
        self._dtype = np.dtype(dtype)
        self._where = where
        self._use = use
        self._storage: np.ndarray | None = None
        self._dataset_shape: Shape | None = None
        self._roi: np.ndarray | None = None
        self._view: np.ndarray | None = None
        self._aux_source: np.ndarray | None = None

    # declaration ------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``'nav'``, ``'sig'`` or ``'single'``."""
        return self._kind

    @property
    def extra_shape(self) -> tuple[int, ...]:
        """Axes appended to the nav or sig axes."""
        return self._extra_shape

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the buffer."""
        return self._dtype

    @property
    def where(self) -> str | None:
        """``'device'`` for device buffers, else ``None``."""
        return self._where

    @property
    def use(self) -> str | None:
        """``None``, ``'private'`` or ``'result_only'``."""
        return self._use

    @property
    def is_aux(self) -> bool:
        """Whether this is auxiliary input data created by ``UDF.aux_data``."""
        return self._aux_source is not None

    # storage ----------------------------------------------------------------
    def storage_shape(self, nav_frames: int, sig_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the storage for ``nav_frames`` frames of signal shape ``sig_shape``."""
        if self._kind == "nav":
            return (nav_frames, *self._extra_shape)
        if self._kind == "sig":
            return (*tuple(sig_shape), *self._extra_shape)
        return self._extra_shape or (1,)

    def allocate(self, nav_frames: int, sig_shape: Sequence[int], xp=np) -> np.ndarray:
        """Allocate zeroed storage (``None`` entries for object dtype) and return it.

        ``xp`` is the array module for ``where='device'`` buffers (e.g. ``cupy``);
        other buffers always live in host memory.
        """
        shape = self.storage_shape(nav_frames, sig_shape)
        if self._dtype.kind == "O":
            storage = np.empty(shape, dtype=self._dtype)
        elif self._where == "device":
            storage = xp.zeros(shape, dtype=self._dtype)
        else:
            storage = np.zeros(shape, dtype=self._dtype)
        self.set_storage(storage)
        return storage

    def set_storage(self, storage: np.ndarray) -> None:
        """Use ``storage`` as the backing array (also the current view)."""
        self._storage = storage
        self._view = storage

    def set_result_context(self, dataset_shape: Shape, roi_flat: np.ndarray | None) -> None:
        """Remember the dataset shape and ROI so that :attr:`data` can expand nav results."""
        self._dataset_shape = dataset_shape
        self._roi = roi_flat

    @property
    def raw_data(self) -> np.ndarray:
        """The storage: for ``nav`` buffers flat and compressed to the selected frames."""
        if self._storage is None:
            raise RuntimeError("buffer has no storage yet")
        return self._storage

    @property
    def data(self) -> np.ndarray:
        """The result shaped like the dataset: nav axes restored, fill value outside the ROI."""
        storage = self.raw_data
        if self._kind != "nav" or self._dataset_shape is None:
            return storage
        nav_shape = tuple(self._dataset_shape.nav)
        if self._roi is None:
            return storage.reshape(nav_shape + self._extra_shape)
        full = np.empty((self._roi.size, *self._extra_shape), dtype=storage.dtype)
        full[...] = _fill_value(storage.dtype)
        full[self._roi] = storage
        return full.reshape(nav_shape + self._extra_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        return self.data.shape

    def __array__(self, dtype=None, copy=None):
        data = self.data
        if dtype is not None:
            return data.astype(dtype, copy=bool(copy))
        return data.copy() if copy else data

    def __repr__(self) -> str:
        return (
            f"<BufferWrapper kind={self._kind} extra_shape={self._extra_shape} "
            f"dtype={self._dtype} use={self._use}>"
        )

    # views --------------------------------------------------------------------
    @property
    def view(self) -> np.ndarray:
        """The view for the data portion now processed (the whole storage otherwise)."""
        return self._view

    def set_view_nav_range(self, start: int, stop: int, sig_index: tuple | None = None) -> None:
        """Point the view at storage frames ``[start, stop)`` (nav) or at ``sig_index`` (sig)."""
        storage = self._storage
        if self._kind == "nav":
            self._view = storage[start:stop]
        elif self._kind == "sig" and sig_index is not None:
            self._view = storage[sig_index]
        else:
            self._view = storage

    def set_view_frame(self, index: int) -> None:
        """Point the view at one frame: an array of ``extra_shape`` (or shape ``(1,)``)."""
        if self._kind == "nav":
            if self._extra_shape:
                self._view = self._storage[index]
            else:
                self._view = self._storage[index : index + 1]
        else:
            self._view = self._storage

    def reset_view(self) -> None:
        """Point the view at the whole storage."""
        self._view = self._storage

    # auxiliary data -------------------------------------------------------------
    @classmethod
    def make_aux(cls, data: np.ndarray, kind: BufferKind, extra_shape=(), dtype="float32"):
        """Wrap per-frame (``nav``) or per-pixel (``sig``) input data; see ``UDF.aux_data``."""
        buf = cls(kind=kind, extra_shape=extra_shape, dtype=dtype)
        source = np.asarray(data, dtype=buf.dtype)
        if kind == "nav":
            n_extra = len(buf.extra_shape)
            if n_extra and source.shape[source.ndim - n_extra :] != buf.extra_shape:
                raise ValueError(
                    f"aux data of shape {source.shape} does not end in extra_shape "
                    f"{buf.extra_shape}"
                )
            source = source.reshape((-1, *buf.extra_shape))
        buf._aux_source = source
        buf.set_storage(source)
        return buf

    def bind_aux(self, nav_start: int, nav_stop: int, roi_flat: np.ndarray | None) -> None:
        """Select the aux data of frames ``[nav_start, nav_stop)`` that the ROI keeps."""
        source = self._aux_source
        if self._kind == "nav":
            part = source[nav_start:nav_stop]
            if roi_flat is not None:
                part = part[roi_flat[nav_start:nav_stop]]
            self.set_storage(part)
        else:
            self.set_storage(source)

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._aux_source is not None:
            state["_storage"] = state["_view"] = None
        else:
            state["_view"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._aux_source is not None:
            self.set_storage(self._aux_source)
        else:
            self._view = self._storage
