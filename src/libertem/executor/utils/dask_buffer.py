"""Result buffers whose content is a Dask array, computed on access."""

from __future__ import annotations

import dask.array as da
import numpy as np

from libertem.common.buffers import BufferWrapper, _fill_value


def _expand_roi(raw: np.ndarray, roi: np.ndarray, nav_shape: tuple, extra_shape: tuple):
    full = np.empty((roi.size, *extra_shape), dtype=raw.dtype)
    full[...] = _fill_value(raw.dtype)
    full[roi] = raw
    return full.reshape(nav_shape + extra_shape)


class DaskResultBufferWrapper(BufferWrapper):
    """A result buffer backed by a Dask array.

    :attr:`delayed_raw_data` and :attr:`delayed_data` are Dask arrays (``kind='nav'``
    results chunked by partition); :attr:`raw_data` and :attr:`data` compute them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._delayed: da.Array | None = None

    @classmethod
    def from_dask(cls, decl: BufferWrapper, array: da.Array, dataset_shape, roi):
        """Wrap ``array`` (the raw result) with the declaration ``decl``."""
        result = cls(decl.kind, decl.extra_shape, array.dtype, decl.where, decl.use)
        result._delayed = array
        result.set_result_context(dataset_shape, roi)
        return result

    @property
    def delayed_raw_data(self) -> da.Array:
        """The raw result as a Dask array (flat and ROI-compressed for ``nav`` buffers)."""
        return self._delayed

    @property
    def delayed_data(self) -> da.Array:
        """The result shaped like the dataset, as a Dask array."""
        array = self._delayed
        if self.kind != "nav" or self._dataset_shape is None:
            return array
        nav_shape = tuple(self._dataset_shape.nav)
        if self._roi is None:
            return array.reshape(nav_shape + self.extra_shape)
        return da.map_blocks(
            _expand_roi,
            array.rechunk(-1),
            self._roi,
            nav_shape,
            self.extra_shape,
            chunks=nav_shape + self.extra_shape,
            drop_axis=list(range(array.ndim)),
            new_axis=list(range(len(nav_shape) + len(self.extra_shape))),
            dtype=array.dtype,
            meta=np.empty((0,) * (len(nav_shape) + len(self.extra_shape)), dtype=array.dtype),
        )

    @property
    def raw_data(self) -> np.ndarray:
        """The raw result, computed (once)."""
        if self._storage is None:
            self.set_storage(np.asarray(self._delayed.compute()))
        return self._storage
