"""Datasets held in memory as numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import ArrayPartition, DataSet, check_sync_offset, resolve_shapes


class MemoryPartition(ArrayPartition):
    """A partition that carries its own part of the in-memory frames.

    ``sync_offset`` here is relative to the held frames.
    """

    def __init__(self, frames: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._frames = frames

    def open_frames(self) -> np.ndarray:
        return self._frames


class MemoryDataSet(DataSet):
    """A dataset backed by a numpy array, for tests, demos and data already loaded.

    Parameters
    ----------
    data
        The array, navigation axes first.
    datashape
        Instead of ``data``: the shape of random float32 data to generate.
    tileshape
        Natural tile shape ``(depth, *sig_block)``, used when no UDF asks otherwise.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    sig_dims
        How many trailing axes of ``data`` are signal axes.
    nav_shape, sig_shape
        Reinterpret the data with these shapes (``sig_shape`` must hold as many
        pixels as a frame).
    sync_offset
        Dataset frame ``i`` is data frame ``i + sync_offset``; missing frames are zeros.
    """

    def __init__(
        self,
        data: np.ndarray | None = None,
        datashape: Sequence[int] | None = None,
        tileshape: Sequence[int] | None = None,
        num_partitions: int | None = None,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        if data is None:
            if datashape is None:
                raise DataSetException("memory dataset: pass `data` or `datashape`")
            data = np.random.default_rng().random(tuple(datashape), dtype=np.float32)
        data = np.asarray(data)
        if data.dtype.kind == "O":
            raise DataSetException("memory dataset: object arrays are not supported as data")
        if sig_shape is not None:
            sig_shape = tuple(int(s) for s in sig_shape)
            frame_size = int(np.prod(sig_shape))
            if data.size % frame_size != 0:
                raise DataSetException(
                    f"memory dataset: data of shape {data.shape} ({data.size} elements) "
                    f"cannot be split into frames of sig_shape {sig_shape}"
                )
            native = (data.size // frame_size, *sig_shape)
            sig_dims = len(sig_shape)
        elif not 1 <= sig_dims <= data.ndim:
            raise DataSetException(
                f"memory dataset: sig_dims={sig_dims} does not fit data of shape {data.shape}"
            )
        else:
            native = data.shape
        nav, sig = resolve_shapes(nav_shape, sig_shape, native, sig_dims, "memory dataset")
        needed = int(np.prod(nav)) * int(np.prod(sig))
        if sync_offset == 0 and needed != data.size:
            raise DataSetException(
                f"memory dataset: nav_shape {nav} x sig_shape {sig} needs {needed} "
                f"elements, but the data of shape {data.shape} has {data.size}"
            )
        self.data = data
        self._frames = data.reshape((-1, *sig))
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        check_sync_offset(sync_offset, self._frames.shape[0], "memory dataset")
        self._tileshape = None
        if tileshape is not None:
            tileshape = tuple(int(t) for t in tileshape)
            if len(tileshape) != len(sig) + 1 or any(t < 1 for t in tileshape):
                raise DataSetException(
                    f"memory dataset: tileshape {tileshape} must be (depth, *sig_block) "
                    f"with {len(sig)} signal axes"
                )
            if any(t > s for t, s in zip(tileshape[1:], sig)):
                raise DataSetException(
                    f"memory dataset: tileshape {tileshape} exceeds the signal shape {sig}"
                )
            self._tileshape = tileshape

    def initialize(self, executor) -> MemoryDataSet:
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def get_base_shape(self) -> tuple[int, ...]:
        if self._tileshape is not None:
            return self._tileshape[1:]
        return super().get_base_shape()

    def get_preferred_depth(self) -> int | None:
        return None if self._tileshape is None else self._tileshape[0]

    def make_partition(self, start: int, stop: int) -> MemoryPartition:
        n_frames = self._frames.shape[0]
        lo = min(max(start + self.sync_offset, 0), n_frames)
        hi = min(max(stop + self.sync_offset, 0), n_frames)
        return MemoryPartition(
            frames=self._frames[lo:hi],
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self.dtype,
            sync_offset=self.sync_offset - lo,
        )
