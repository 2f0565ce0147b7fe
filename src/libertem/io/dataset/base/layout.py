"""Where frames are stored: files, offsets, strides, the stored dtype and a decoder.

A :class:`FrameLayout` is all a format with frames at fixed strides has to describe;
:class:`~libertem.io.dataset.base.filesource.FileFrameSource` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FileSpan:
    """Consecutive frames in one file.

    Attributes
    ----------
    path
        The file.
    offset
        Byte offset of the first frame's data.
    stride
        Bytes from one frame's data to the next (frame size plus any header).
    n_frames
        Number of frames in the file.
    """

    path: str
    offset: int
    stride: int
    n_frames: int


@dataclass(frozen=True)
class FrameLayout:
    """Where and how frames are stored.

    Attributes
    ----------
    files
        The files, in frame order.
    frame_bytes
        Bytes of data per frame.
    sig_shape
        Shape of a decoded frame.
    stored_dtype
        Dtype of the stored values (e.g. ``'>u2'``) when they are plain values;
        ``'u1'`` for packed data that needs a decoder.
    decoder
        Name of a decoder in :mod:`~libertem.io.dataset.base.decode`, or ``None``.
    decoder_args
        Arguments of the decoder.
    """

    files: tuple[FileSpan, ...]
    frame_bytes: int
    sig_shape: tuple[int, ...]
    stored_dtype: str
    decoder: str | None = None
    decoder_args: tuple = ()

    @property
    def n_frames(self) -> int:
        """Frames in all files."""
        return sum(f.n_frames for f in self.files)


def single_file_layout(
    path: str, offset: int, n_frames: int, sig_shape: Sequence[int], dtype
) -> FrameLayout:
    """Layout of ``n_frames`` frames stored back to back in ``path`` from ``offset`` on."""
    dtype = np.dtype(dtype)
    frame_bytes = int(np.prod(sig_shape)) * dtype.itemsize
    span = FileSpan(os.fspath(path), int(offset), frame_bytes, int(n_frames))
    return FrameLayout((span,), frame_bytes, tuple(int(s) for s in sig_shape), dtype.str)


__all__ = ["FileSpan", "FrameLayout", "single_file_layout"]
