"""In-memory data as a file, an I/O backend and partitions (for
:mod:`~libertem.io.dataset.memory`)."""

from __future__ import annotations

import time

import numpy as np

from libertem.common.math import check_cast
from libertem.common.sparse import is_sparse
from libertem.io.dataset.base import (
    ArrayPartition,
    DataTile,
    FrameSource,
    TilingScheme,
    iter_tiles,
)
from libertem.io.dataset.base.backend import MMapBackend
from libertem.io.dataset.base.backend_impl import MMapBackendImpl, MMapFile
from libertem.io.dataset.base.file import File
from libertem.io.dataset.memory_sparse import sparse_backend_of, sparse_tiles


class MemoryFile(File):
    """The frames of an in-memory dataset as a :class:`~libertem.io.dataset.base.file.File`.

    Parameters
    ----------
    data
        The frames, ``(n_frames, *sig_shape)`` (dense or sparse).
    check_cast
        Check, when the frames are read in another dtype, that no value changes.
    *args, **kwargs
        As for ``File``; by default a file of all frames of ``data``.
    """

    def __init__(self, data, check_cast=True, *args, **kwargs):
        if not args:
            kwargs.setdefault("path", "<memory>")
            kwargs.setdefault("start_idx", 0)
            kwargs.setdefault("end_idx", data.shape[0])
            kwargs.setdefault("native_dtype", data.dtype)
            kwargs.setdefault("sig_shape", tuple(data.shape[1:]))
        super().__init__(*args, **kwargs)
        self._data = data
        self._check_cast = bool(check_cast)

    @property
    def data(self):
        """The frames."""
        return self._data


class _CheckedSource(FrameSource):
    """Frames of an array; with ``check_cast``, refuses conversions that change values."""

    def __init__(self, frames, sync_offset: int, check_cast: bool, dest_dtype, decode: bool):
        super().__init__(frames, sync_offset)
        self._check = check_cast and not np.can_cast(frames.dtype, dest_dtype, casting="safe")
        self._dest = np.dtype(dest_dtype)
        self.viewable = not decode

    def _checked(self, part: np.ndarray) -> np.ndarray:
        if self._check:
            check_cast(part, np.empty((), dtype=self._dest))
        return part

    def view(self, a: int, b: int):
        return self._checked(self.frames[a:b])

    def read_into(self, a: int, b: int, out: np.ndarray) -> None:
        self._checked(self.frames[a:b])
        super().read_into(a, b, out)


class FakeMMapFile(MMapFile):
    """An "opened file" over the frames of a :class:`MemoryFile`: no file, no map.

    Parameters
    ----------
    path
        Name only (in-memory data has no path).
    desc
        The :class:`MemoryFile`.
    """

    def open(self) -> FakeMMapFile:
        """Nothing to open; :attr:`array` is the data."""
        self._array = self._desc.data
        return self

    def close(self) -> None:
        """Forget the data."""
        self._array = None

    @property
    def array(self):
        """The frames of the :class:`MemoryFile`."""
        if self._array is None:
            self.open()
        return self._array


class MemBackendImpl(MMapBackendImpl):
    """Reads the tiles of in-memory data (the implementation of :class:`MemBackend`).

    Parameters
    ----------
    enable_readahead_hints
        Accepted for compatibility; memory needs no read-ahead.
    """

    file_cls = FakeMMapFile

    def get_tiles(
        self,
        decoder,
        tiling_scheme,
        fileset,
        read_ranges,
        roi,
        native_dtype,
        read_dtype,
        sync_offset,
        corrections,
        array_backend,
    ):
        """Tiles of the frames of ``fileset`` (one :class:`MemoryFile`) that ``roi`` selects.

        ``read_ranges`` and ``decoder`` are not needed: the frames are arrays.
        Dataset frame ``i`` is file frame ``i + sync_offset``; ``roi`` is a flat
        boolean mask of the dataset frames, or ``None``.
        """
        (file,) = fileset.files
        frames = file.data
        n = max(0, frames.shape[0] - sync_offset) if roi is None else np.asarray(roi).size
        if is_sparse(frames):
            tiles = sparse_tiles(
                frames,
                0,
                n,
                sync_offset,
                tiling_scheme,
                np.dtype(read_dtype),
                roi,
                array_backend or sparse_backend_of(frames),
                corrections,
            )
        else:
            source = _CheckedSource(frames, sync_offset, file._check_cast, read_dtype, False)
            tiles = iter_tiles(source, 0, n, tiling_scheme, read_dtype, roi, corrections)
        yield from tiles


class MemBackend(MMapBackend):
    """The I/O backend of in-memory datasets: tiles are views of (or converted from) the
    arrays themselves."""

    id_ = "memory"

    def get_impl(self) -> MemBackendImpl:
        """The reader."""
        return MemBackendImpl(self.enable_readahead_hints)


class MemPartition(ArrayPartition):
    """A partition that carries its own part of the in-memory frames.

    Parameters
    ----------
    tiledelay
        Seconds to wait before each tile (to test progress and cancellation), or ``None``.
    tileshape
        The dataset's natural tile shape, or ``None``.
    force_need_decode
        Always copy tiles into a buffer instead of handing out views.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.ArrayPartition`, plus ``frames``
        (the frames, dense or sparse), ``check_cast`` and ``array_backend`` (the
        backend the frames are in).
    """

    def __init__(self, tiledelay, tileshape, force_need_decode=False, *args, **kwargs):
        self._frames = kwargs.pop("frames")
        self._check_cast = bool(kwargs.pop("check_cast", True))
        self._native_backend = kwargs.pop("array_backend", "numpy")
        super().__init__(*args, **kwargs)
        self._tiledelay = tiledelay
        self._tileshape = tileshape
        self._force_need_decode = bool(force_need_decode)

    def open_frames(self):
        """The partition's frames (dense; sparse frames are read by ``get_tiles``)."""
        return self._frames

    def get_io_backend(self) -> MemBackend:
        """:class:`MemBackend`: the data is in memory."""
        return MemBackend()

    def get_tiles(self, *args, **kwargs):
        """Tiles as for ``Partition.get_tiles(tiling_scheme, dest_dtype, roi, array_backend)``;
        sparse frames come out in ``array_backend`` (by default their own backend).

        With the dataset's ``tileshape``, tiles have that shape whatever the scheme, and
        ``tiling_scheme`` may be left out."""
        tiles = self._tiles(*args, **kwargs)
        if not self._tiledelay:
            return tiles
        return self._delayed(tiles)

    def _delayed(self, tiles):
        for tile in tiles:
            time.sleep(self._tiledelay)
            yield tile

    def _scheme(self, tiling_scheme: TilingScheme | None) -> TilingScheme:
        """The forced ``tileshape`` wins over ``tiling_scheme``; without either, whole
        partitions."""
        if self._tileshape is not None:
            shape = tuple(int(t) for t in self._tileshape)
        elif tiling_scheme is None:
            shape = (max(1, self.stop - self.start), *tuple(self.dataset_shape.sig))
        else:
            return tiling_scheme
        if tiling_scheme is not None and tuple(tiling_scheme.shape) == shape:
            return tiling_scheme
        return TilingScheme.make_for_shape(shape, self.dataset_shape)

    def _tiles(self, tiling_scheme=None, dest_dtype="float32", roi=None, array_backend=None):
        tiling_scheme = self._scheme(tiling_scheme)
        if not is_sparse(self._frames):
            return super().get_tiles(tiling_scheme, dest_dtype, roi, array_backend)
        self.validate_tiling_scheme(tiling_scheme)
        return sparse_tiles(
            self._frames,
            self.start,
            self.stop,
            self.sync_offset,
            tiling_scheme,
            np.dtype(dest_dtype),
            self._roi_part(roi),
            array_backend or self._native_backend,
            self._corrections,
        )

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        source = _CheckedSource(
            self._frames, self.sync_offset, self._check_cast, dest_dtype, self._force_need_decode
        )
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )

    def get_macrotile(self, *args, **kwargs) -> DataTile:
        """All (selected) frames as one tile, as ``Partition.get_macrotile`` (no tile delay)."""
        delay, self._tiledelay = self._tiledelay, None
        try:
            return super().get_macrotile(*args, **kwargs)
        finally:
            self._tiledelay = delay


#: the name used before; same class
MemoryPartition = MemPartition


__all__ = [
    "FakeMMapFile",
    "MemBackend",
    "MemBackendImpl",
    "MemPartition",
    "MemoryFile",
    "MemoryPartition",
]
