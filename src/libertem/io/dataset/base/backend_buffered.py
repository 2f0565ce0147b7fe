"""Buffered reading: files read with explicit reads into (pooled) buffers.

:class:`BufferedFile` and :class:`DirectBufferedFile` are the file objects of the
buffered and direct strategies: plain unbuffered reads at a position, resp.
``O_DIRECT`` reads through :func:`~libertem.io.direct.readinto_direct`. The
backends themselves (:class:`BufferedBackend`, :class:`BufferedBackendImpl`) and
the buffer pool live in :mod:`~libertem.io.dataset.base.backend`,
:mod:`~libertem.io.dataset.base.backend_impl` and :mod:`libertem.common.alloc`;
they are also available here, as in LiberTEM.
"""

from __future__ import annotations

import os

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.lazy import lazy_names
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.readahead import DIRECT_ALIGN


class BufferedFile:
    """A file of a file set, read with unbuffered reads at explicit positions.

    Parameters
    ----------
    path
        The file.
    desc
        Its :class:`~libertem.io.dataset.base.file.File` description.
    """

    def __init__(self, path: str | os.PathLike, desc: File | None):
        self._path = os.fspath(path)
        self._desc = desc
        self._file = None

    def open(self) -> BufferedFile:
        """Open the file for reading; returns ``self``.

        Raises
        ------
        DataSetException
            If the file cannot be opened.
        """
        try:
            self._file = open(self._path, "rb", buffering=0)
        except OSError as e:
            raise DataSetException(f"{self._path}: cannot open: {e}") from e
        return self

    def close(self) -> None:
        """Close the file (if open)."""
        if self._file is not None:
            self._file.close()
        self._file = None

    @property
    def handle(self):
        """The open (unbuffered) file object, or ``None`` when closed."""
        return self._file

    def _require_open(self):
        if self._file is None:
            raise DataSetException(f"{self._path}: file is not open")
        return self._file

    def get_blocksize(self) -> int:
        """The file system's preferred I/O size for this file, in bytes."""
        st = os.stat(self._path)
        return int(getattr(st, "st_blksize", 0) or 4096)

    def seek(self, offset: int) -> int:
        """Move to byte ``offset`` of the file; returns the new position."""
        return self._require_open().seek(int(offset))

    def readinto(self, buf) -> int:
        """Read from the current position into ``buf`` until it is full or the file ends.

        Returns
        -------
        int
            Bytes read.
        """
        f = self._require_open()
        dest = memoryview(buf).cast("B")
        got = 0
        while got < len(dest):
            n = f.readinto(dest[got:])
            if not n:
                break
            got += n
        return got

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


class DirectBufferedFile(BufferedFile):
    """A :class:`BufferedFile` opened with ``O_DIRECT``: reads bypass the page cache."""

    def open(self) -> DirectBufferedFile:
        """Open the file with ``O_DIRECT``; returns ``self``.

        Raises
        ------
        DataSetException
            If the file system (or platform) refuses direct I/O.
        """
        from libertem.io.direct import open_direct

        self._file = open_direct(self._path)
        return self

    def close(self) -> None:
        """Close the file (if open)."""
        super().close()

    def get_blocksize(self) -> int:
        """The alignment direct reads need (at least a page), in bytes."""
        return max(super().get_blocksize(), DIRECT_ALIGN)

    def readinto(self, buf) -> int:
        """Read from the current position into ``buf`` (aligned as needed)."""
        from libertem.io.direct import readinto_direct

        return readinto_direct(self._require_open(), buf)


def block_get_min_fill_factor(rrs: np.ndarray) -> float:
    """How densely the read ranges of a block cover the bytes they span, per file.

    For each file, the bytes the ranges ask for divided by the bytes from the
    first range's start to the last range's stop; the smallest of these. ``1.0``:
    reading each file's span in one request reads nothing unneeded; small values:
    reading range by range is cheaper.

    Parameters
    ----------
    rrs
        Read ranges ``(..., 3)`` of ``(file index, start, stop)``; negative file
        indices (frames outside the files) are ignored.

    Returns
    -------
    float
        In ``(0, 1]``; ``1.0`` when there is nothing to read.
    """
    rrs = np.asarray(rrs).reshape((-1, 3))
    rrs = rrs[rrs[:, 0] >= 0]
    factor = 1.0
    for fi in np.unique(rrs[:, 0]):
        mine = rrs[rrs[:, 0] == fi]
        span = int(mine[:, 2].max()) - int(mine[:, 1].min())
        if span > 0:
            factor = min(factor, float((mine[:, 2] - mine[:, 1]).sum()) / span)
    return factor


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BufferPool": "libertem.common.alloc",
        "ManagedBuffer": "libertem.common.alloc",
        "BufferedBackend": "libertem.io.dataset.base.backend",
        "BufferedBackendImpl": "libertem.io.dataset.base.backend_impl",
        "CUDA": "libertem.common.udf",
        "NUMPY": "libertem.common.udf",
        "DataTile": "libertem.io.dataset.base.tiles",
        "DtypeConversionDecoder": "libertem.io.dataset.base.decoders",
        "FileSet": "libertem.io.dataset.base.fileset",
        "IOBackend": "libertem.io.dataset.base.backend",
        "IOBackendImpl": "libertem.io.dataset.base.backend_impl",
        "Shape": "libertem.common.shape",
        "Slice": "libertem.common.slice",
        "cached_njit": "libertem.common.numba",
        "prod": "libertem.common.math",
    },
)

__all__ = ["BufferedFile", "DirectBufferedFile", "block_get_min_fill_factor"]
