"""FileSet: the files of a dataset in frame order; FileTree: find the file of a frame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.layout import FileSpan, FrameLayout


class FileTree:
    """A balanced binary search tree over the frame ranges ``[low, high)`` of files.

    Parameters
    ----------
    low, high
        The frame range of this node's file.
    value
        The node's file.
    idx
        Index of the file in its file set.
    left, right
        Subtrees with lower and higher ranges, or ``None``.
    """

    def __init__(
        self,
        low: int,
        high: int,
        value: Any,
        idx: int,
        left: FileTree | None,
        right: FileTree | None,
    ):
        self.low = int(low)
        self.high = int(high)
        self.value = value
        self.idx = int(idx)
        self.left = left
        self.right = right

    @classmethod
    def make(cls, files) -> FileTree | None:
        """The tree of ``files`` (objects with ``start_idx``/``end_idx``, sorted by them)."""
        files = list(files)

        def build(lo: int, hi: int) -> FileTree | None:
            if lo >= hi:
                return None
            mid = (lo + hi) // 2
            f = files[mid]
            return cls(f.start_idx, f.end_idx, f, mid, build(lo, mid), build(mid + 1, hi))

        return build(0, len(files))

    def search_start(self, value: int) -> tuple[int, Any] | None:
        """``(idx, file)`` of the file holding frame ``value``, or ``None``."""
        node = self
        while node is not None:
            if value < node.low:
                node = node.left
            elif value >= node.high:
                node = node.right
            else:
                return node.idx, node.value
        return None

    def to_string(self, depth: int = 0) -> str:
        """An indented, multi-line drawing of the tree."""
        pad = "  " * depth
        lines = [f"{pad}[{self.low}, {self.high}) #{self.idx}"]
        for child in (self.left, self.right):
            lines.append(child.to_string(depth + 1) if child else f"{pad}  -")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"FileTree([{self.low}, {self.high}) #{self.idx})"


class FileSet:
    """The files of a dataset, ordered by the frames they hold.

    Parameters
    ----------
    files
        The files; their ``[start_idx, end_idx)`` ranges must follow each other.
    frame_header_bytes, frame_footer_bytes
        Bytes before and after each frame in every file; where 0, the files' own
        values apply.
    """

    def __init__(
        self, files: list[File], frame_header_bytes: int = 0, frame_footer_bytes: int = 0
    ):
        self._files = sorted(files, key=lambda f: f.start_idx)
        self._frame_header_bytes = int(frame_header_bytes)
        self._frame_footer_bytes = int(frame_footer_bytes)
        for a, b in zip(self._files, self._files[1:]):
            if b.start_idx < a.end_idx:
                raise ValueError(f"files overlap: {a} and {b}")
        self._tree = None

    @property
    def files(self) -> list[File]:
        """The files, in frame order."""
        return list(self._files)

    @property
    def frame_header_bytes(self) -> int:
        """Bytes of header before each frame (set-wide; 0: the files' own)."""
        return self._frame_header_bytes

    @property
    def frame_footer_bytes(self) -> int:
        """Bytes after each frame (set-wide; 0: the files' own)."""
        return self._frame_footer_bytes

    def __iter__(self) -> Iterator[File]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, idx: int) -> File:
        return self._files[idx]

    def _clone(self, files: list[File]) -> FileSet:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._files = list(files)
        clone._tree = None
        return clone

    def get_for_range(self, start: int, stop: int) -> FileSet:
        """The files holding any of the file frames ``[start, stop]`` (a file set of the same
        kind; ``stop`` is included, as a partition's last frame)."""
        return self._clone([f for f in self._files if f.start_idx <= stop and f.end_idx > start])

    def files_from(self, start: int) -> Iterator[File]:
        """The files from the one holding frame ``start`` on."""
        for f in self._files:
            if f.end_idx > start:
                yield f

    def file_for_frame(self, frame: int) -> tuple[int, File] | None:
        """``(index, file)`` holding file frame ``frame``, or ``None``."""
        if self._tree is None:
            self._tree = FileTree.make(self._files)
        return None if self._tree is None else self._tree.search_start(frame)

    def _header_footer(self, f: File) -> tuple[int, int]:
        return (
            self._frame_header_bytes or f.frame_header_bytes,
            self._frame_footer_bytes or f.frame_footer_bytes,
        )

    def get_as_arr(self) -> np.ndarray:
        """The files as an ``int64`` array, one row per file:
        ``start_idx, end_idx, file_header, frame_header, frame_footer``."""
        rows = []
        for f in self._files:
            header, footer = self._header_footer(f)
            rows.append((f.start_idx, f.end_idx, f.file_header_bytes, header, footer))
        return np.array(rows, dtype=np.int64).reshape((len(rows), 5))

    def get_read_ranges(
        self,
        start_at_frame: int,
        stop_before_frame: int,
        dtype,
        tiling_scheme,
        sync_offset: int = 0,
        roi: np.ndarray | None = None,
    ):
        """Byte ranges to read the tiles of dataset frames ``[start_at_frame, stop_before_frame)``.

        See :func:`~libertem.io.dataset.base.readranges.default_get_read_ranges` for the
        result; ``dtype`` is the stored dtype (its size gives the bits per pixel) and
        ``roi`` a flat mask of the whole dataset or ``None``.
        """
        from libertem.io.dataset.base.readranges import compute_read_ranges

        return compute_read_ranges(
            self,
            start_at_frame,
            stop_before_frame,
            self._bits_per_pixel(dtype),
            tiling_scheme,
            sync_offset,
            roi,
            self._get_read_ranges_fn(),
            extra=self._read_ranges_extra(),
        )

    def _bits_per_pixel(self, dtype) -> int:
        """Stored bits per pixel (subclasses: packed formats)."""
        return np.dtype(dtype).itemsize * 8

    def _get_read_ranges_fn(self):
        """The compiled read range function (subclasses: formats with their own layout)."""
        from libertem.io.dataset.base.readranges import default_get_read_ranges

        return default_get_read_ranges

    def _read_ranges_extra(self):
        """The ``extra`` argument of the read range function."""
        return None

    def to_layout(self, sig_shape=None, decoder: tuple | None = None) -> FrameLayout:
        """The frames as a :class:`~libertem.io.dataset.base.layout.FrameLayout`.

        Parameters
        ----------
        sig_shape
            Shape of the decoded frames; by default the files' ``sig_shape``.
        decoder
            ``(name, args)`` of a kernel in :mod:`~libertem.io.dataset.base.decode` for
            packed data (the files' dtype is then the stored byte dtype), or ``None``.
        """
        if not self._files:
            raise ValueError("a file set without files has no layout")
        for a, b in zip(self._files, self._files[1:]):
            if b.start_idx != a.end_idx:
                raise ValueError(f"frames missing between {a} and {b}")
        first = self._files[0]
        spans = []
        for f in self._files:
            header, footer = self._header_footer(f)
            stride = header + f.frame_bytes + footer
            spans.append(FileSpan(f.path, f.file_header_bytes + header, stride, f.num_frames))
        sig = tuple(first.sig_shape if sig_shape is None else sig_shape)
        name, args = (None, ()) if decoder is None else decoder
        return FrameLayout(
            tuple(spans), first.frame_bytes, sig, first.native_dtype.str, name, tuple(args)
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self._files)} files>"


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "TilingScheme": "libertem.io.dataset.base.tiling",
        "default_get_read_ranges": "libertem.io.dataset.base.readranges",
        "flat_nonzero": "libertem.common.math",
    },
)
