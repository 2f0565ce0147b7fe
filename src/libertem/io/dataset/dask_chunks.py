"""Chunk arithmetic for Dask-array datasets: sizes of chunks, merging them to a target size.

A *chunking* is a tuple with one tuple of chunk lengths per axis, as
``dask.array.Array.chunks``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from libertem.common.math import prod


def array_mult(*arrays, dtype=np.float64) -> np.ndarray:
    """The outer product of 1D ``arrays`` (one axis each), as ``dtype``."""
    result = np.ones((), dtype=dtype)
    for a in arrays:
        result = np.multiply.outer(result, np.asarray(a, dtype=dtype))
    return result


def get_chunksizes(array, chunking=None) -> np.ndarray:
    """Bytes of each chunk of ``array`` (with ``chunking``, default its own), as an array
    over the grid of chunks."""
    chunking = array.chunks if chunking is None else chunking
    return array_mult(*chunking) * np.dtype(array.dtype).itemsize


def get_last_chunked_dim(chunking) -> int:
    """The last axis cut into more than one chunk, or ``-1``."""
    dims = [i for i, c in enumerate(chunking) if len(c) > 1]
    return dims[-1] if dims else -1


def findall(sequence, val) -> list[int]:
    """Indices of the elements of ``sequence`` equal to ``val``."""
    return [i for i, v in enumerate(sequence) if v == val]


def get_values(sequence, idxs) -> list:
    """The elements of ``sequence`` at ``idxs``."""
    return [sequence[i] for i in idxs]


def neighbour_idxs(sequence, idx) -> list[int]:
    """Indices of the neighbours of element ``idx`` that exist (left, right)."""
    return [i for i in (idx - 1, idx + 1) if 0 <= i < len(sequence)]


def min_neighbour(sequence, idx) -> int | None:
    """Index of the smaller neighbour of element ``idx`` (left on ties), or ``None``."""
    idxs = neighbour_idxs(sequence, idx)
    if not idxs:
        return None
    return min(idxs, key=lambda i: (sequence[i], i))


def min_with_min_neighbor(sequence) -> tuple[int, int | None]:
    """The smallest element (first on ties) and its smaller neighbour: the pair to merge."""
    idx = int(np.argmin(np.asarray(sequence)))
    return idx, min_neighbour(sequence, idx)


def modify_chunking(chunking, dim: int, merge_idxs: Sequence[int]) -> tuple:
    """``chunking`` with the consecutive chunks ``merge_idxs`` of axis ``dim`` merged."""
    merge_idxs = sorted(merge_idxs)
    if merge_idxs != list(range(merge_idxs[0], merge_idxs[-1] + 1)):
        raise ValueError(f"chunks {merge_idxs} are not consecutive")
    axis = list(chunking[dim])
    merged = sum(axis[i] for i in merge_idxs)
    axis = axis[: merge_idxs[0]] + [merged] + axis[merge_idxs[-1] + 1 :]
    return tuple(tuple(axis) if i == dim else tuple(c) for i, c in enumerate(chunking))


def merged_chunking(array, target, min_chunks=0) -> tuple:
    """The chunking :func:`merge_until_target` rechunks ``array`` to."""
    chunking = (array.chunks[0], *((s,) for s in array.shape[1:]))
    row_bytes = prod(array.shape[1:]) * np.dtype(array.dtype).itemsize
    while len(chunking[0]) > max(1, int(min_chunks)):
        sizes = [c * row_bytes for c in chunking[0]]
        idx, other = min_with_min_neighbor(sizes)
        if sizes[idx] >= target or other is None:
            break
        chunking = modify_chunking(chunking, 0, [idx, other])
    return chunking


def merge_until_target(array, target, min_chunks=0):
    """``array`` rechunked along its first axis: the smallest chunk merged with its smaller
    neighbour until every chunk holds ``target`` bytes or more, keeping at least
    ``min_chunks`` chunks. Chunks along the other axes are joined into one."""
    chunking = merged_chunking(array, target, min_chunks)
    if chunking == array.chunks:
        return array
    return array.rechunk(chunking)
