"""Writing frames into Zarr arrays: chunks of whole frames in flat navigation order,
collected per partition, and the chunks that two partitions share (see
:func:`libertem.udf.export.export_zarr`, which runs the export)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from math import prod

import numpy as np

from libertem.io.dataset.base.chunked import FlatChunkGrid, flat_slabs
from libertem.io.dataset.zarr import is_zarr_store

#: default bytes of one chunk of an exported dataset
CHUNK_BYTES = 8 * 1024 * 1024
#: name prefix of the scratch folder inside a store that is being written
SCRATCH_PREFIX = ".libertem-export-"


def is_zarr_target(path: str | os.PathLike) -> bool:
    """Whether ``export_dataset`` writes Zarr to ``path`` by default: a name ending in
    ``.zarr``, or an existing directory."""
    path = os.fspath(path)
    return path.rstrip("/\\").lower().endswith(".zarr") or os.path.isdir(path)


def zarr_modules():
    """``zarr`` and its ``LocalStore`` (imported on first use: Zarr is slow to import)."""
    import zarr
    from zarr.storage import LocalStore

    return zarr, LocalStore


def clear_target(path: str, overwrite: bool) -> None:
    """Make room for a new store at ``path``; only Zarr stores and empty folders are removed.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false, or it is a folder that holds
        something other than a Zarr store.
    """
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path) and not is_zarr_store(path):
            raise FileExistsError(f"{path} exists and is not a Zarr store; not replacing it")
        shutil.rmtree(path)
    else:
        os.remove(path)


def export_chunks(
    nav_shape: Sequence[int], sig_shape: Sequence[int], chunk_frames: int
) -> tuple[int, ...]:
    """Chunks of an exported array: about ``chunk_frames`` whole frames that follow each
    other in flat navigation order (the fastest navigation axes whole, then a part of the
    next one, ones before)."""
    nav = [int(n) for n in nav_shape]
    chunks = [1] * len(nav)
    run = 1
    for axis in reversed(range(len(nav))):
        if chunk_frames >= nav[axis] * run:
            chunks[axis] = nav[axis]
            run *= nav[axis]
        else:
            chunks[axis] = max(1, chunk_frames // run)
            break
    return (*chunks, *(int(s) for s in sig_shape))


class ChunkWriter:
    """Collects the frames of one partition's tiles into whole chunks and writes them."""

    def __init__(self, array, n_nav: int):
        self.array = array
        self.nav_shape = tuple(array.shape[:n_nav])
        self.sig_shape = tuple(array.shape[n_nav:])
        self.grid = FlatChunkGrid(self.nav_shape, array.chunks[:n_nav])
        self.open: dict[int, list] = {}
        self.frame_size = prod(self.sig_shape)

    def put(self, first: int, sig_index: tuple, data: np.ndarray) -> None:
        """Take frames ``first ...`` of the region ``sig_index`` of each frame."""
        stop = first + data.shape[0]
        pixels = prod(data.shape[1:])
        frame = first
        while frame < stop:
            start, end = self.grid.chunk_range(frame)
            entry = self.open.get(start)
            if entry is None:
                buf = np.empty((end - start, *self.sig_shape), dtype=self.array.dtype)
                entry = self.open[start] = [buf, 0]
            upto = min(end, stop)
            entry[0][(slice(frame - start, upto - start), *sig_index)] = data[
                frame - first : upto - first
            ]
            entry[1] += (upto - frame) * pixels
            if entry[1] == (end - start) * self.frame_size:
                write_frames(self.array, start, entry[0])
                del self.open[start]
            frame = upto

    def spill(self, first: int, stop: int, folder: str) -> None:
        """Save the parts of unfinished chunks that frames ``[first, stop)`` hold."""
        for start, (buf, _) in self.open.items():
            lo = max(start, first)
            hi = min(start + buf.shape[0], stop)
            np.save(os.path.join(folder, f"{start}_{lo}_{hi}.npy"), buf[lo - start : hi - start])
        self.open.clear()


def write_frames(array, first: int, frames: np.ndarray) -> None:
    """Write ``frames`` (``(n, *sig)``) to flat frames ``first ...`` of a Zarr array."""
    n_nav = array.ndim - (frames.ndim - 1)
    nav = tuple(array.shape[:n_nav])
    for offset, sel in flat_slabs(first, first + frames.shape[0], nav):
        slab = tuple(s.stop - s.start for s in sel)
        part = frames[offset - first : offset - first + prod(slab)]
        array[sel] = part.reshape(slab + part.shape[1:])


def write_shared_chunks(array, scratch: str, n_nav: int) -> None:
    """Assemble and write the chunks whose parts the partitions left in ``scratch``."""
    pieces: dict[int, list[tuple[int, int, str]]] = {}
    for name in os.listdir(scratch):
        start, lo, hi = (int(v) for v in name[: -len(".npy")].split("_"))
        pieces.setdefault(start, []).append((lo, hi, os.path.join(scratch, name)))
    grid = FlatChunkGrid(array.shape[:n_nav], array.chunks[:n_nav])
    for start, parts in sorted(pieces.items()):
        stop = grid.chunk_range(start)[1]
        covered = sum(hi - lo for lo, hi, _ in parts)
        if covered != stop - start:
            raise RuntimeError(f"export: chunk at frame {start} got {covered} of {stop - start}")
        buf = np.empty((stop - start, *array.shape[n_nav:]), dtype=array.dtype)
        for lo, hi, file in parts:
            buf[lo - start : hi - start] = np.load(file)
        write_frames(array, start, buf)


__all__ = [
    "CHUNK_BYTES",
    "ChunkWriter",
    "SCRATCH_PREFIX",
    "clear_target",
    "export_chunks",
    "is_zarr_target",
    "write_frames",
    "write_shared_chunks",
    "zarr_modules",
]
