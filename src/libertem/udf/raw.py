"""Pick frames, as they are."""

from __future__ import annotations

import logging

import numpy as np

from libertem.common.math import count_nonzero, prod
from libertem.udf.classes import UDF
from libertem.udf.sum import sum_partials

__all__ = ["PickUDF"]

log = logging.getLogger(__name__)

# Picking more than this many bytes is probably a mistake (a missing ROI).
_WARN_BYTES = 2**28


class PickUDF(UDF):
    """Copy the selected frames: result ``'intensity'`` of shape ``(n_selected, *sig_shape)``.

    Meant for a ROI that selects a few frames. The result is a ``kind='single'``
    buffer in the dataset's native dtype, its frames in the order of the flat
    navigation index; read it with ``['intensity'].data``.
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
        return {"intensity": self.buffer(kind="single", extra_shape=(n, *sig_shape), dtype=dtype)}

    def process_tile(self, tile):
        """Copy the tile into its frames' place (flat, ROI-compressed index)."""
        self.results.intensity[self.meta.slice.get()] = tile

    def merge(self, dest, src):
        """Each partition fills only its own frames and leaves zeros elsewhere: add."""
        dest.intensity[:] += src.intensity

    def merge_all(self, ordered_results):
        """Add up the partitions' parts (each holds zeros outside its own frames)."""
        return sum_partials(ordered_results, "intensity")
