"""What a UDF may know about the data it processes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.shape import Shape
from libertem.common.slice import Slice

if TYPE_CHECKING:
    from numpy import typing as nt


def default_threads_per_worker(worker: str | None) -> int:
    """Threads a UDF may use when the executor does not say: all cores inline, else 1."""
    if worker == "inline":
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    return 1


def threads_per_worker_of(env) -> int:
    """The ``threads_per_worker`` the task environment announces (or the default)."""
    value = getattr(env, "threads_per_worker", None)
    if value is None:
        return default_threads_per_worker(getattr(env, "worker", None))
    return int(value)


class UDFMeta:
    """Context information available to a UDF as ``self.meta``.

    Parameters
    ----------
    partition_slice
        Region of the partition now processed, in flat-nav coordinates compressed
        by the ROI (on the main node: the whole selection); ``None`` if unknown.
    dataset_shape
        Shape of the whole dataset, navigation axes not flattened.
    roi
        Boolean mask of the navigation shape (or flat), or ``None``.
    dataset_dtype
        Native dtype of the dataset.
    input_dtype
        Dtype of the data passed to ``process_*``.
    tiling_scheme
        The negotiated tiling scheme of the run.
    tiling_index
        Index of the signal region of the tile now processed in the scheme.
    corrections
        The :class:`~libertem.corrections.CorrectionSet` applied to the data.
    device_class
        ``'cpu'`` or ``'cuda'`` (default ``'cpu'``).
    threads_per_worker
        Number of threads a UDF may use for itself on its worker.
    array_backend
        The array backend of the data handed to the UDF (default ``'numpy'``).
    valid_nav_mask
        Which frames are processed so far (on the main node, in ``get_results``).
    """

    def __init__(
        self,
        partition_slice: Slice | None,
        dataset_shape: Shape,
        roi: np.ndarray | None,
        dataset_dtype: nt.DTypeLike,
        input_dtype: nt.DTypeLike,
        tiling_scheme=None,
        tiling_index: int = 0,
        corrections=None,
        device_class: str | None = None,
        threads_per_worker: int | None = None,
        array_backend: str | None = None,
        valid_nav_mask: np.ndarray | None = None,
    ):
        self._partition_slice = partition_slice
        self._dataset_shape = dataset_shape
        self._roi = None if roi is None else np.asarray(roi, dtype=bool)
        self._dataset_dtype = np.dtype(dataset_dtype)
        self._input_dtype = np.dtype(input_dtype)
        self._tiling_scheme = tiling_scheme
        self._tiling_index = int(tiling_index)
        self._corrections = corrections
        self._device_class = device_class or "cpu"
        self._threads_per_worker = threads_per_worker
        self._array_backend = array_backend or "numpy"
        self._valid_nav_mask = valid_nav_mask
        self._valid_nav_source: tuple[np.ndarray, np.ndarray | None] | None = None
        self._roi_indices: np.ndarray | None = None
        self._slice: Slice | None = partition_slice
        # process_frame: the frame now processed, its Slice made on first access
        self._frame: int | None = None
        self._frame_template: tuple[tuple[int, ...], Shape] | None = None

    @property
    def dataset_shape(self) -> Shape:
        """Shape of the whole dataset, navigation axes not flattened."""
        return self._dataset_shape

    @property
    def partition_shape(self) -> Shape:
        """Flat-nav shape of the partition now processed (selected frames only);
        on the main node, that of the whole selection."""
        if self._partition_slice is not None:
            return self._partition_slice.shape
        shape = self._dataset_shape
        n = shape.nav.size if self._roi is None else int(np.count_nonzero(self._roi))
        return Shape((n, *tuple(shape.sig)), sig_dims=shape.sig.dims)

    @property
    def dataset_dtype(self) -> np.dtype:
        """Native dtype of the dataset."""
        return self._dataset_dtype

    @property
    def input_dtype(self) -> np.dtype:
        """Dtype of the data passed to ``process_*``."""
        return self._input_dtype

    @property
    def roi(self) -> np.ndarray | None:
        """Boolean mask over the navigation axes, or ``None``."""
        return self._roi

    @property
    def tiling_scheme(self):
        """The negotiated tiling scheme of this run."""
        return self._tiling_scheme

    @property
    def tiling_scheme_idx(self) -> int:
        """Index, in :attr:`tiling_scheme`, of the signal region of the tile now processed."""
        return self._tiling_index

    @property
    def corrections(self):
        """The corrections applied to the data (a ``CorrectionSet``), or ``None``."""
        return self._corrections

    @property
    def device_class(self) -> str:
        """``'cpu'`` or ``'cuda'``."""
        return self._device_class

    @property
    def threads_per_worker(self) -> int | None:
        """How many threads the UDF may use on its worker (e.g. for numba or BLAS)."""
        return self._threads_per_worker

    @property
    def array_backend(self) -> str:
        """Array backend of the data passed to ``process_*`` (``'numpy'``, ``'sparse.COO'``...)."""
        return self._array_backend

    @property
    def slice(self) -> Slice | None:
        """Region now processed, in flat-nav coordinates compressed by the ROI:
        the frame, tile or partition handed to ``process_*``."""
        frame = self._frame
        if frame is not None:
            sig_origin, frame_shape = self._frame_template
            self._slice = Slice((frame, *sig_origin), frame_shape)
            self._frame = None
        return self._slice

    @slice.setter
    def slice(self, value: Slice | None) -> None:
        self._slice = value
        self._frame = None

    def set_frame_template(self, sig_origin: tuple[int, ...], frame_shape: Shape) -> None:
        """For the frames of the tile now processed one by one: the signal origin and
        the shape ``(1, *signal)`` of their :attr:`slice` (see :meth:`set_frame`)."""
        self._frame_template = (sig_origin, frame_shape)

    def set_frame(self, index: int) -> None:
        """The frame now processed is ``index``: :attr:`slice` is made when first read."""
        self._frame = index

    @property
    def sig_slice(self) -> Slice | None:
        """The signal part of :attr:`slice`."""
        return None if self.slice is None else self.slice.discard_nav()

    @property
    def coordinates(self) -> np.ndarray:
        """Navigation coordinates of the frames now processed, shape ``(n, nav_dims)``."""
        start = self.slice.origin[0]
        stop = start + self.slice.shape[0]
        if self._roi is None:
            flat = np.arange(start, stop)
        else:
            if self._roi_indices is None:
                self._roi_indices = np.flatnonzero(self._roi)
            flat = self._roi_indices[start:stop]
        nav_shape = tuple(self._dataset_shape.nav)
        return np.stack(np.unravel_index(flat, nav_shape), axis=1)

    def get_valid_nav_mask(self, full_nav: bool = False) -> np.ndarray | None:
        """Which frames have been processed so far, as a flat boolean array.

        On the main node: inside ``merge`` the frames merged before the partial
        result now merged, inside ``get_results`` all frames merged so far.
        ``None`` elsewhere (e.g. in ``process_*``).

        Parameters
        ----------
        full_nav
            ``False``: one entry per frame the ROI selects; ``True``: one entry per
            frame of the dataset (``False`` outside the ROI).
        """
        source = self._valid_nav_source
        if source is not None:
            damage, roi = source
            if full_nav or roi is None:
                return damage.copy()
            return damage[roi]
        mask = self._valid_nav_mask
        if mask is None or not full_nav or self._roi is None:
            return mask
        full = np.zeros(self._dataset_shape.nav.size, dtype=bool)
        full[self._roi.reshape(-1)] = mask
        return full

    def set_valid_nav_mask(self, new_valid_nav_mask: np.ndarray | None) -> None:
        """Set the mask :meth:`get_valid_nav_mask` returns (compressed by the ROI)."""
        self._valid_nav_mask = new_valid_nav_mask
        self._valid_nav_source = None

    def set_valid_nav_source(self, damage: np.ndarray, roi: np.ndarray | None) -> None:
        """Let :meth:`get_valid_nav_mask` derive the mask, when asked, from ``damage``
        (flat, whole navigation space, not changed while it is set) and the flat ``roi``."""
        self._valid_nav_mask = None
        self._valid_nav_source = (damage, roi)

    def __repr__(self) -> str:
        return (
            f"UDFMeta(dataset_shape={self._dataset_shape}, "
            f"partition_shape={self.partition_shape}, "
            f"input_dtype={self._input_dtype}, array_backend={self._array_backend!r}, "
            f"slice={self.slice})"
        )
