"""Valid-masks of UDF results: which entries of a result hold values."""

from __future__ import annotations

import math

import numpy as np

from libertem.common.bbox import get_bbox_slice, get_inner_slice
from libertem.common.math import count_nonzero
from libertem.common.shape import Shape


class InvalidMaskError(Exception):
    """A valid-mask (see :meth:`libertem.udf.UDF.with_mask`) that does not fit its result."""


class ValidMaskMixin:
    """The valid-mask part of :class:`~libertem.common.buffers.BufferWrapper`.

    The mask is kept aligned with ``raw_data`` (for ``kind='nav'``: flat and
    compressed to the ROI); :attr:`valid_mask` shows it shaped like ``data``.
    """

    def make_default_mask(
        self, valid_nav_mask: np.ndarray, dataset_shape: Shape, roi: np.ndarray | None = None
    ) -> np.ndarray:
        """A new valid-mask aligned with :attr:`raw_data` when frames ``valid_nav_mask`` are done.

        Works on a buffer that has no shape yet.

        Parameters
        ----------
        valid_nav_mask
            Flat boolean mask of the processed frames, one entry per frame of the
            dataset (or per selected frame when ``roi`` is given).
        dataset_shape
            Shape of the dataset.
        roi
            The ROI of the run, or ``None``.

        Returns
        -------
        numpy.ndarray
            ``kind='nav'``: shape ``(N, *extra_shape)`` with ``N`` the number of
            (selected) frames, the frames' flags broadcast over the extra axes;
            ``kind='sig'``: ``(*sig_shape, *extra_shape)``, all True;
            ``kind='single'``: ``extra_shape`` (or ``(1,)``), all True.
        """
        extra = self._extra_shape
        if self._kind == "nav":
            roi = None if roi is None else np.asarray(roi, dtype=bool).reshape(-1)
            n = dataset_shape.nav.size if roi is None else count_nonzero(roi)
            valid = np.asarray(valid_nav_mask, dtype=bool).reshape((-1,) + (1,) * len(extra))
            return np.broadcast_to(valid, (n, *extra)).copy()
        if self._kind == "sig":
            return np.ones(tuple(dataset_shape.sig) + extra, dtype=bool)
        return np.ones(extra or (1,), dtype=bool)

    def set_valid_mask(self, mask) -> None:
        """Set which entries are valid: a bool, or an array shaped like (or broadcastable
        to) :attr:`raw_data`, or shaped like :attr:`data`.

        Raises
        ------
        InvalidMaskError
            If the mask fits neither.
        """
        raw_shape = tuple(self.raw_data.shape)
        mask = np.asarray(mask, dtype=bool)
        nav_size = None if self._dataset_shape is None else self._dataset_shape.nav.size
        if mask.size == math.prod(raw_shape) and mask.ndim > 0:
            mask = mask.reshape(raw_shape)
        elif (
            self._kind == "nav"
            and self._roi is not None
            and nav_size is not None
            and mask.size == nav_size * math.prod(self._extra_shape)
        ):
            mask = mask.reshape((nav_size, *self._extra_shape))[self._roi]
        try:
            mask = np.broadcast_to(mask, raw_shape)
        except ValueError as e:
            raise InvalidMaskError(
                f"valid mask of shape {mask.shape} does not fit a result of shape {raw_shape}"
            ) from e
        self._valid_mask = np.ascontiguousarray(mask)

    def set_valid_nav(self, valid_nav: np.ndarray) -> None:
        """Derive :attr:`valid_mask` from the processed frames (flat, whole nav), on access."""
        self._valid_nav = valid_nav
        self._valid_mask = None

    def _raw_valid_mask(self) -> np.ndarray:
        """The valid-mask aligned with :attr:`raw_data`."""
        if self._valid_mask is not None:
            return self._valid_mask
        raw_shape = tuple(self.raw_data.shape)
        if self._kind == "nav" and self._dataset_shape is not None:
            roi = None if self._full_nav else self._roi
            if self._valid_nav is not None:
                valid = self._valid_nav if roi is None else self._valid_nav[roi]
            elif self._full_nav and self._roi is not None:
                valid = self._roi
            else:
                valid = np.ones(raw_shape[0], dtype=bool)
            mask = self.make_default_mask(valid, self._dataset_shape, roi)
        else:
            mask = np.ones(raw_shape, dtype=bool)
        self._valid_mask = mask.reshape(raw_shape)
        return self._valid_mask

    @property
    def valid_mask(self) -> np.ndarray:
        """Boolean array of the shape of :attr:`data`: which entries hold results."""
        raw = self._raw_valid_mask()
        shape = self._nav_data_shape()
        if shape is None:
            return raw
        if self._roi is None or self._full_nav:
            return raw.reshape(shape)
        full = np.zeros((self._roi.size, *self._extra_shape), dtype=bool)
        full[self._roi] = raw
        return full.reshape(shape)

    def get_valid_slice_inner(self, axis: int = 0) -> tuple[slice, ...]:
        """Index into :attr:`data` of the first run of complete (all valid) planes on ``axis``."""
        return get_inner_slice(self.valid_mask, axis=axis)

    @property
    def valid_slice_bounding(self) -> tuple[slice, ...]:
        """Index into :attr:`data` of the bounding box of the valid entries."""
        mask = self.valid_mask
        if not mask.any():
            return tuple(slice(0, 0) for _ in mask.shape)
        return get_bbox_slice(mask)


__all__ = ["InvalidMaskError", "ValidMaskMixin"]
