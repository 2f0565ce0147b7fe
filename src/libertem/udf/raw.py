"""Pick frames, as they are."""

from __future__ import annotations

from libertem.udf.base import UDF


class PickUDF(UDF):
    """Copy the selected frames: result ``'intensity'`` (``kind='nav'``, frame-shaped extra axes).

    Use with a ROI that selects a few frames and read ``['intensity'].raw_data``, an
    array of shape ``(n_selected, *sig_shape)`` in the dataset's native dtype.
    """

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {
            "intensity": self.buffer(
                kind="nav",
                extra_shape=tuple(self.meta.dataset_shape.sig),
                dtype=self.meta.input_dtype,
            )
        }

    def process_tile(self, tile):
        """Copy the tile into the frames' result rows."""
        self.results.intensity[(slice(None), *self.meta.slice.get(sig_only=True))] = tile
