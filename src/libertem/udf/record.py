"""Record the frames a run sees into a ``.npy`` file."""

from __future__ import annotations

import os

import numpy as np

from libertem.common.buffers import reshaped_view
from libertem.common.math import prod
from libertem.common.shape import Shape
from libertem.udf.base import UDF

__all__ = ["RecordUDF"]


class RecordUDF(UDF):
    """Write the input data of a run into a NumPy ``.npy`` file, as it is processed.

    Without ROI the file has the dataset's full shape; with a ROI it holds the
    selected frames as a stack ``(n_selected, *sig_shape)``, in the order of the
    flat navigation index. The data keep their native dtype. Other UDFs can run in
    the same pass, so a live stream can be processed and recorded at once.

    Parameters
    ----------
    filename
        The ``.npy`` file to create (replaced if it exists).
    _is_master
        Internal: ``True`` for the instance the user creates, which creates the
        file; the instances made for the partitions only write into it.
    """

    def __init__(self, filename, _is_master=True):
        super().__init__(filename=os.fspath(filename), _is_master=_is_master)

    @classmethod
    def new_for_partition(cls, kwargs, partition, roi):
        """An instance for one partition: it writes into the file but does not create it."""
        return super().new_for_partition({**kwargs, "_is_master": False}, partition, roi)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {}

    def _file_shape(self) -> Shape:
        shape = self.meta.dataset_shape
        sig = tuple(shape.sig)
        if self.meta.roi is None:
            return Shape(tuple(shape), sig_dims=len(sig))
        n = int(np.count_nonzero(self.meta.roi))
        return Shape((n, *sig), sig_dims=len(sig))

    def preprocess(self):
        """On the main node: create the file at its full size, with the ``.npy`` header."""
        if not self.params._is_master:
            return
        shape = self._file_shape()
        out = np.lib.format.open_memmap(
            self.params.filename, mode="w+", dtype=self.meta.input_dtype, shape=tuple(shape)
        )
        out.flush()
        del out

    def get_task_data(self):
        out = np.load(self.params.filename, mmap_mode="r+")
        shape = self._file_shape()
        frames = reshaped_view(out, (prod(shape.nav), *tuple(shape.sig)))
        return {"out": out, "frames": frames}

    def process_tile(self, tile):
        """Write the tile into its place in the file."""
        self.task_data.frames[self.meta.slice.get()] = tile

    def postprocess(self):
        """Flush this partition's writes to the file."""
        self.task_data.out.flush()
