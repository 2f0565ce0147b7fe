"""Frame sources for formats whose frames are not one regular array in one file.

:class:`FrameList` reads frames stored at arbitrary byte offsets (in one or many
files) on demand; :func:`strided_frames` makes a zero-copy view when the frames
of one file are evenly spaced (per-frame headers or padding between them).
Both are read-only and can be returned by ``ArrayPartition.open_frames``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.io.dataset.base import ArrayPartition
from libertem.io.dataset.base.files import open_memmap


class FrameList:
    """An array-like of frames ``(n, *sig_shape)`` read from ``(path, offset)`` pairs.

    Supports ``shape``, ``dtype``, ``len`` and indexing the first axis with an
    integer or a slice; the result is a new ndarray. Files are opened read-only
    for each read.

    Parameters
    ----------
    paths
        One path per frame (or a single path for all frames).
    offsets
        Byte offset of each frame.
    dtype
        Dtype of the stored values (byte order included).
    sig_shape
        Shape of one frame.
    flip_rows
        Frames are stored bottom row first: hand them out flipped (``frame[::-1]``).
    """

    def __init__(self, paths: str | Sequence[str], offsets, dtype, sig_shape, flip_rows=False):
        self.flip_rows = bool(flip_rows)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if isinstance(paths, (str, os.PathLike)):
            self.paths = [os.fspath(paths)]
            self.path_index = np.zeros(self.offsets.size, dtype=np.int64)
        else:
            self.paths = [os.fspath(p) for p in paths]
            self.path_index = np.arange(len(self.paths), dtype=np.int64)
        if self.path_index.size != self.offsets.size:
            raise ValueError("one path or one path per offset is needed")
        self.dtype = np.dtype(dtype)
        self.sig_shape = tuple(int(s) for s in sig_shape)
        self.shape = (int(self.offsets.size), *self.sig_shape)
        self.ndim = len(self.shape)
        self._frame_bytes = prod(self.sig_shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((indices.size, *self.sig_shape), dtype=self.dtype)
        flat = out.reshape((indices.size, -1)).view(np.uint8)
        fds: dict[int, int] = {}
        try:
            for k, i in enumerate(indices):
                p = int(self.path_index[i])
                if p not in fds:
                    fds[p] = os.open(self.paths[p], os.O_RDONLY)
                raw = os.pread(fds[p], self._frame_bytes, int(self.offsets[i]))
                if len(raw) != self._frame_bytes:
                    raise DataSetException(
                        f"{self.paths[p]}: frame at offset {int(self.offsets[i])} is truncated"
                    )
                flat[k] = np.frombuffer(raw, dtype=np.uint8)
        finally:
            for fd in fds.values():
                os.close(fd)
        return out[:, ::-1] if self.flip_rows else out

    def __getitem__(self, key):
        if isinstance(key, tuple):
            first = self[key[0]]
            rest = key[1:]
            if isinstance(key[0], (int, np.integer)):
                return first[rest]
            return first[(slice(None), *rest)]
        if isinstance(key, slice):
            return self._read(np.arange(self.shape[0])[key])
        if isinstance(key, (int, np.integer)):
            return self._read(np.arange(self.shape[0])[[int(key)]])[0]
        raise TypeError(f"FrameList indices must be integers or slices, not {type(key).__name__}")

    def __array__(self, dtype=None, copy=None):
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


def strided_frames(
    path: str,
    first: int,
    stride: int,
    count: int,
    dtype,
    sig_shape,
    file_size: int,
    flip_rows: bool = False,
) -> np.ndarray:
    """A read-only view of ``count`` frames, frame ``k`` at byte ``first + k * stride``.

    With ``flip_rows``, frames are stored bottom row first and are handed out flipped.
    """
    dtype = np.dtype(dtype)
    frame_bytes = prod(sig_shape) * dtype.itemsize
    end = first + (count - 1) * stride + frame_bytes
    if count < 1 or first < 0 or stride < frame_bytes or end > file_size:
        raise DataSetException(f"{path}: frames do not fit in the file ({file_size} bytes)")
    mm = open_memmap(path, np.uint8, 0, (file_size,))
    sig_strides = tuple(prod(sig_shape[i + 1 :]) * dtype.itemsize for i in range(len(sig_shape)))
    if flip_rows:
        first += (sig_shape[0] - 1) * sig_strides[0]
        sig_strides = (-sig_strides[0], *sig_strides[1:])
    return np.ndarray(
        (count, *sig_shape),
        dtype=dtype,
        buffer=mm,
        offset=first,
        strides=(stride, *sig_strides),
    )


class OffsetsPartition(ArrayPartition):
    """A partition reading frames at given byte offsets of one or more files.

    When all frames are in one file and evenly spaced, frames are a strided
    view of a memory map; otherwise they are read on demand with
    :class:`FrameList`.

    Parameters
    ----------
    paths
        One path, or one path per file frame.
    offsets
        Byte offset of every file frame.
    sig_shape
        Shape of a frame as stored.
    file_size
        Size of the file (single-file case), to check the strided view.
    flip_rows
        Frames are stored bottom row first (hand them out flipped).
    io_backend
        ``'mmap'`` (strided views where possible) or ``'buffered'`` (always read
        frames with ``pread``).
    """

    def __init__(
        self, paths, offsets, sig_shape, file_size=0, flip_rows=False, io_backend="mmap", **kwargs
    ):
        super().__init__(**kwargs)
        self.io_backend = io_backend
        self.flip_rows = bool(flip_rows)
        self.paths = paths
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.sig_shape = tuple(sig_shape)
        self.file_size = int(file_size)

    def open_frames(self):
        n = self.offsets.size
        if isinstance(self.paths, str) and n > 0 and self.io_backend == "mmap":
            steps = np.diff(self.offsets)
            stride = int(steps[0]) if n > 1 else 1 << 30
            if n == 1 or np.all(steps == stride):
                frame_bytes = prod(self.sig_shape) * self.dtype.itemsize
                if stride >= frame_bytes or n == 1:
                    return strided_frames(
                        self.paths,
                        int(self.offsets[0]),
                        max(stride, frame_bytes),
                        n,
                        self.dtype,
                        self.sig_shape,
                        self.file_size,
                        self.flip_rows,
                    )
        return FrameList(self.paths, self.offsets, self.dtype, self.sig_shape, self.flip_rows)
