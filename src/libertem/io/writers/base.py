"""Writing the frames of a partition to a file, atomically.

A :class:`WriteHandle` collects the tiles of one partition in a temporary file
next to nothing else (in ``tmp_base_path``) and moves it to its destination only
when all went well: readers never see a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import DTypeLike

from libertem.common.slice import Slice


class WriteHandle:
    """Write the frames of one partition into the raw file ``path`` (C order).

    Use it as a context manager: on entering, a temporary file of the partition's
    size is created in ``tmp_base_path`` and mapped; tiles are written into it
    with :meth:`write_tile` / :meth:`write_tiles`; on leaving without an
    exception, the data is flushed, the file moved to ``path`` (replacing it)
    and the directory synced. On an exception, :meth:`abort` removes the
    temporary file and ``path`` is left as it was.

    Parameters
    ----------
    path
        Destination file.
    tmp_base_path
        Directory for the temporary file (best on the same file system as
        ``path``, so that the final move is a rename).
    part_slice
        The partition's :class:`~libertem.common.slice.Slice` (a flat navigation
        axis first); tiles are placed relative to its origin.
    dtype
        Dtype of the stored values.

    Examples
    --------
    >>> import tempfile, os
    >>> from libertem.common import Shape, Slice
    >>> from libertem.io.dataset.base.tiles import DataTile
    >>> d = tempfile.mkdtemp()
    >>> part = Slice((4, 0, 0), Shape((2, 2, 2), sig_dims=2))
    >>> tile = DataTile(np.ones((2, 2, 2)), Slice((4, 0, 0), Shape((2, 2, 2), sig_dims=2)), 0)
    >>> with WriteHandle(os.path.join(d, "p.raw"), d, part, np.float32) as wh:
    ...     wh.write_tile(tile)
    >>> np.fromfile(os.path.join(d, "p.raw"), dtype=np.float32).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tmp_base_path: str | os.PathLike,
        part_slice: Slice,
        dtype: DTypeLike,
    ):
        self._path = os.fspath(path)
        self._tmp_base_path = os.fspath(tmp_base_path)
        self._slice = part_slice
        self._dtype = np.dtype(dtype)
        self._tmp_path: str | None = None
        self._dest: np.memmap | None = None

    def __enter__(self) -> WriteHandle:
        os.makedirs(self._tmp_base_path, exist_ok=True)
        fd, self._tmp_path = tempfile.mkstemp(
            prefix=".write-", suffix=".tmp", dir=self._tmp_base_path
        )
        os.close(fd)
        shape = tuple(self._slice.shape)
        if int(np.prod(shape)) == 0:
            self._dest = None
        else:
            self._dest = np.memmap(self._tmp_path, dtype=self._dtype, mode="w+", shape=shape)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        self._finish()

    def _require_open(self) -> np.memmap | None:
        if self._tmp_path is None:
            raise RuntimeError("WriteHandle is not open: use it in a `with` block")
        return self._dest

    def write_tile(self, tile) -> None:
        """Store ``tile`` (a :class:`~libertem.io.dataset.base.tiles.DataTile`, or
        anything with ``tile_slice`` and array data) at its place in the partition."""
        dest = self._require_open()
        local = tile.tile_slice.shift(self._slice)
        if dest is not None:
            dest[local.get()] = np.asarray(tile)

    def write_tiles(self, tiles: Iterable) -> Iterator:
        """Store each tile of ``tiles`` and pass it on: ``for t in wh.write_tiles(ts): ...``."""
        for tile in tiles:
            self.write_tile(tile)
            yield tile

    def abort(self) -> None:
        """Discard what was written: remove the temporary file."""
        self._dest = None
        if self._tmp_path is not None and os.path.exists(self._tmp_path):
            os.remove(self._tmp_path)
        self._tmp_path = None

    def sync_dir(self, path: str | os.PathLike) -> None:
        """Make a rename in directory ``path`` durable (fsync the directory; POSIX only)."""
        if not hasattr(os, "O_DIRECTORY"):
            return
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _finish(self) -> None:
        dest = self._require_open()
        if dest is not None:
            dest.flush()
        self._dest = None
        del dest
        with open(self._tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp_path, self._path)
        self._tmp_path = None
        self.sync_dir(os.path.dirname(os.path.abspath(self._path)))


__all__ = ["WriteHandle"]
