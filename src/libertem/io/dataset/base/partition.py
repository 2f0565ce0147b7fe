"""Partitions: contiguous ranges of frames, the unit of parallel work."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base.tiles import DataTile, FrameSource, iter_tiles
from libertem.io.dataset.base.tiling import TilingScheme


class Partition(ABC):
    """Frames ``[start, stop)`` of a dataset (flat navigation index).

    Partitions are shipped to workers, so they hold a description of where to
    read, never much data (except in-memory datasets, which hold their part).

    Parameters
    ----------
    start, stop
        Range of flat frame indices.
    dataset_shape
        Shape of the whole dataset.
    dtype
        Native dtype.
    """

    def __init__(self, start: int, stop: int, dataset_shape: Shape, dtype):
        self.start = int(start)
        self.stop = int(stop)
        self.dataset_shape = dataset_shape
        self.dtype = np.dtype(dtype)

    @property
    def slice(self) -> Slice:
        """The partition's region in flat-nav coordinates (not ROI-compressed)."""
        sig = tuple(self.dataset_shape.sig)
        return Slice(
            (self.start, *([0] * len(sig))),
            Shape((self.stop - self.start, *sig), sig_dims=len(sig)),
        )

    @property
    def shape(self) -> Shape:
        """Flat-nav shape of the partition."""
        return self.slice.shape

    @abstractmethod
    def get_tiles(
        self, scheme: TilingScheme, dest_dtype, roi: np.ndarray | None = None
    ) -> Iterator[DataTile]:
        """Tiles of this partition.

        Parameters
        ----------
        scheme
            The negotiated tiling scheme.
        dest_dtype
            Dtype of the tiles handed out.
        roi
            Flat bool mask of this partition's frames, or ``None``.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.start}, {self.stop})>"


class ArrayPartition(Partition):
    """A partition whose frames come from an array-like (ndarray or memory map).

    Subclasses implement :meth:`open_frames`, returning the array of all frames
    ``(n_frames, *sig)`` the dataset reads from, before ``sync_offset`` applies.
    """

    def __init__(self, start, stop, dataset_shape, dtype, sync_offset: int = 0):
        super().__init__(start, stop, dataset_shape, dtype)
        self.sync_offset = int(sync_offset)

    @abstractmethod
    def open_frames(self) -> np.ndarray:
        """The frames array the partition reads from."""

    def get_tiles(self, scheme, dest_dtype, roi=None):
        """Tiles from the frames array: views where the layout allows."""
        source = FrameSource(self.open_frames(), self.sync_offset)
        return iter_tiles(source, self.start, self.stop, scheme, dest_dtype, roi)
