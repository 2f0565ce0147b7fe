"""File: one file holding consecutive frames, with optional file and frame headers."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod


class OffsetsSizes(NamedTuple):
    """How the frames lie in a file of a given size (all in bytes).

    Attributes
    ----------
    file_offset
        Bytes before the first frame's record (the file header).
    skip_end
        Bytes after the last frame's record that are not frame data.
    frame_offset
        Bytes of header before each frame's data.
    frame_size
        Bytes of data per frame.
    """

    file_offset: int
    skip_end: int
    frame_offset: int
    frame_size: int


class File:
    """A file holding frames ``[start_idx, end_idx)`` of a dataset (file frame numbers).

    Each frame is stored as ``frame_header`` bytes, the frame's data, then
    ``frame_footer`` bytes; the first frame starts after ``file_header`` bytes.

    Parameters
    ----------
    path
        The file (``None`` for frames that are not in a file, e.g. in memory).
    start_idx, end_idx
        The file frames it holds (counted over all files of the dataset).
    native_dtype
        Dtype of the stored values (byte order included); ``uint8`` for packed data.
    sig_shape
        Shape of a frame as stored (for packed data: the decoded frame's shape).
    frame_footer, frame_header, file_header
        Bytes after each frame, before each frame, and before the first frame.
    """

    def __init__(
        self,
        path,
        start_idx,
        end_idx,
        native_dtype,
        sig_shape,
        frame_footer=0,
        frame_header=0,
        file_header=0,
    ):
        self._path = None if path is None else os.fspath(path)
        self._start_idx = int(start_idx)
        self._end_idx = int(end_idx)
        if self._end_idx < self._start_idx:
            raise ValueError(f"{self._path}: end_idx {end_idx} before start_idx {start_idx}")
        self._native_dtype = np.dtype(native_dtype)
        self._sig_shape = tuple(int(s) for s in sig_shape)
        self._frame_footer = int(frame_footer)
        self._frame_header = int(frame_header)
        self._file_header = int(file_header)

    @property
    def path(self) -> str | None:
        """The file (``None`` if the frames are not in a file)."""
        return self._path

    @property
    def start_idx(self) -> int:
        """First file frame in this file."""
        return self._start_idx

    @property
    def end_idx(self) -> int:
        """One past the last file frame in this file."""
        return self._end_idx

    @property
    def num_frames(self) -> int:
        """Frames in this file."""
        return self._end_idx - self._start_idx

    @property
    def native_dtype(self) -> np.dtype:
        """Dtype of the stored values."""
        return self._native_dtype

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """Shape of a frame."""
        return self._sig_shape

    @property
    def file_header_bytes(self) -> int:
        """Bytes before the first frame."""
        return self._file_header

    @property
    def frame_header_bytes(self) -> int:
        """Bytes of header before each frame."""
        return self._frame_header

    @property
    def frame_footer_bytes(self) -> int:
        """Bytes after each frame."""
        return self._frame_footer

    @property
    def frame_bytes(self) -> int:
        """Bytes of data per frame."""
        return prod(self._sig_shape) * self._native_dtype.itemsize

    @property
    def stride(self) -> int:
        """Bytes from one frame's data to the next."""
        return self._frame_header + self.frame_bytes + self._frame_footer

    @property
    def data_offset(self) -> int:
        """Byte offset of the first frame's data."""
        return self._file_header + self._frame_header

    def get_offsets_sizes(self, size: int) -> OffsetsSizes:
        """Where the frames lie in the file, given its ``size`` in bytes."""
        used = self._file_header + self.num_frames * self.stride
        return OffsetsSizes(
            file_offset=self._file_header,
            skip_end=max(0, int(size) - used),
            frame_offset=self._frame_header,
            frame_size=self.frame_bytes,
        )

    def get_array_from_memview(self, mem: memoryview, slicing: OffsetsSizes) -> np.ndarray:
        """The frames in ``mem`` (the whole file's bytes) as an array ``(n, *sig_shape)``.

        A strided view, without copying: headers and footers are skipped.
        """
        buf = np.frombuffer(mem, dtype=np.uint8)
        n = self.num_frames
        stride = slicing.frame_offset + slicing.frame_size + self._frame_footer
        dtype = self._native_dtype
        end = slicing.file_offset + (n - 1) * stride + slicing.frame_offset + slicing.frame_size
        if n > 0 and end > buf.size:
            raise DataSetException(
                f"{self._path}: file truncated: {buf.size} bytes do not hold {n} frames"
            )
        sig_strides = []
        step = dtype.itemsize
        for s in reversed(self._sig_shape):
            sig_strides.insert(0, step)
            step *= s
        return np.ndarray(
            (n, *self._sig_shape),
            dtype=dtype,
            buffer=buf,
            offset=slicing.file_offset + slicing.frame_offset,
            strides=(stride, *sig_strides),
        )

    def open(self) -> np.ndarray:
        """All frames of the file as a read-only memory-mapped array."""
        from libertem.io.dataset.base.files import open_file_map

        mm = open_file_map(self._path)
        return self.get_array_from_memview(memoryview(mm), self.get_offsets_sizes(mm.size))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._path} [{self._start_idx}, {self._end_idx})>"
