"""Pick frames, as they are."""

from __future__ import annotations

import logging

import numpy as np

from libertem.common.math import count_nonzero, prod
from libertem.udf.classes import UDF

__all__ = ["PickUDF"]

log = logging.getLogger(__name__)

# Picking more than this many bytes is probably a mistake (a missing ROI).
_WARN_BYTES = 2**28


class PickUDF(UDF):
    """Copy the selected frames: result ``'intensity'`` of shape ``(n_selected, *sig_shape)``.

    Meant for a ROI that selects a few frames. The result is a ``kind='single'``
    buffer in the dataset's native dtype, its frames in the order of the flat
    navigation index; read it with ``['intensity'].data``.

    The frames are collected in a private ``kind='nav'`` buffer, so that each
    partition sends back only its own frames (LiberTEM sends a whole-result-sized
    buffer per partition and adds them up); ``get_results`` hands them out as
    ``'intensity'``.
    """

    def __init__(self):
        super().__init__()

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        sig_shape = tuple(self.meta.dataset_shape.sig)
        roi = self.meta.roi
        n = prod(self.meta.dataset_shape.nav) if roi is None else count_nonzero(roi)
        dtype = self.meta.input_dtype
        size = n * prod(sig_shape) * np.dtype(dtype).itemsize
        if size > _WARN_BYTES:
            log.warning("PickUDF is loading %d frames, %d bytes; is a ROI missing?", n, size)
        return {
            "intensity": self.buffer(
                kind="single", extra_shape=(n, *sig_shape), dtype=dtype, use="result_only"
            ),
            "frames": self.buffer(kind="nav", extra_shape=sig_shape, dtype=dtype, use="private"),
        }

    def process_tile(self, tile):
        """Copy the tile into its frames' place."""
        self.results.frames[(slice(None), *self.meta.slice.get(sig_only=True))] = tile

    def merge(self, dest, src):
        """Each partition's frames go to their place."""
        dest.frames[:] = src.frames

    def merge_all(self, ordered_results):
        """The partitions' frames, one after the other (Dask arrays too)."""
        parts = [part.frames for part in ordered_results.values()]
        if any(hasattr(part, "dask") for part in parts):
            import dask.array as da

            return {"frames": da.concatenate(parts, axis=0)}
        return {"frames": np.concatenate(parts, axis=0)}

    def get_results(self):
        """The selected frames, in the order of the flat navigation index."""
        return {"intensity": self.results.get_buffer("frames").raw_data}
