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
    """Index of the smaller neighbour of element ``idx`` (the left one on a tie; the only
    one at either end), or ``None`` for a sequence of one element."""
    idxs = neighbour_idxs(sequence, idx)
    if not idxs:
        return None
    return min(idxs, key=lambda i: (sequence[i], i))


def min_with_min_neighbor(sequence) -> tuple[int, int | None]:
    """The pair of chunks to merge next: a smallest chunk and its smaller neighbour.

    Among the positions holding the minimum, the one whose pair with its smaller
    neighbour (:func:`min_neighbour`) has the smallest summed length wins; on a tie
    the right-most such position.
    """
    values = [int(v) for v in sequence]
    smallest = min(values)
    best = None
    for idx in findall(values, smallest):
        other = min_neighbour(values, idx)
        total = smallest + (0 if other is None else values[other])
        if best is None or total <= best[0]:
            best = (total, idx, other)
    return best[1], best[2]


def modify_chunking(chunking, dim: int, merge_idxs: Sequence[int]) -> tuple:
    """``chunking`` with the consecutive chunks ``merge_idxs`` of axis ``dim`` merged."""
    merge_idxs = sorted(merge_idxs)
    if merge_idxs != list(range(merge_idxs[0], merge_idxs[-1] + 1)):
        raise ValueError(f"chunks {merge_idxs} are not consecutive")
    axis = list(chunking[dim])
    merged = sum(axis[i] for i in merge_idxs)
    axis = axis[: merge_idxs[0]] + [merged] + axis[merge_idxs[-1] + 1 :]
    return tuple(tuple(axis) if i == dim else tuple(c) for i, c in enumerate(chunking))


def _as_chunking(chunking) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(c) for c in axis) for axis in chunking)


def size_merged_chunking(chunking, itemsize: int, target, min_chunks: int = 0) -> tuple:
    """``chunking`` with neighbouring chunks merged until the smallest chunk holds at least
    ``target`` bytes.

    Data of fewer than ``target`` bytes becomes one chunk. Otherwise, while the smallest
    chunk (the product of each axis' shortest chunk, times ``itemsize``) is smaller
    than ``target``, the right-most axis cut into several chunks merges the pair
    :func:`min_with_min_neighbor` picks; it stops when every axis is one chunk, or at
    ``min_chunks`` chunks.
    """
    chunking = _as_chunking(chunking)
    total = prod(sum(axis) for axis in chunking) * int(itemsize)
    if total < target and int(min_chunks) <= 1:
        return tuple((sum(axis),) for axis in chunking)
    while prod(min(axis) for axis in chunking) * int(itemsize) < target:
        dim = get_last_chunked_dim(chunking)
        if dim < 0 or prod(len(axis) for axis in chunking) <= int(min_chunks):
            break
        idx, other = min_with_min_neighbor(chunking[dim])
        chunking = modify_chunking(chunking, dim, [idx, other])
    return chunking


def merge_until_target(array, target, min_chunks=0):
    """``array`` rechunked by :func:`size_merged_chunking` (neighbouring chunks merged until
    each holds ``target`` bytes or more, keeping at least ``min_chunks`` chunks)."""
    chunking = size_merged_chunking(
        array.chunks, np.dtype(array.dtype).itemsize, target, min_chunks
    )
    if chunking == _as_chunking(array.chunks):
        return array
    return array.rechunk(chunking)


def nav_order(chunking, nav_dims: int) -> tuple[int, ...]:
    """The navigation axes reordered so that axes cut into more chunks come first (a
    stable sort by chunk count, reversed: among equal counts the right-most first)."""
    axes = sorted(range(nav_dims), key=lambda i: len(chunking[i]))
    return tuple(reversed(axes))


def contiguous_chunking(chunking, nav_dims: int) -> tuple:
    """``chunking`` with every navigation axis right of the first one whose chunks are not
    all of length 1 merged into one chunk, so that each chunk is a contiguous run of
    flat frames."""
    chunking = _as_chunking(chunking)
    for i in range(nav_dims):
        if any(c != 1 for c in chunking[i]):
            return tuple(
                (sum(axis),) if i < j < nav_dims else axis for j, axis in enumerate(chunking)
            )
    return chunking


__all__ = [
    "array_mult",
    "contiguous_chunking",
    "findall",
    "get_chunksizes",
    "get_last_chunked_dim",
    "get_values",
    "merge_until_target",
    "min_neighbour",
    "min_with_min_neighbor",
    "modify_chunking",
    "nav_order",
    "neighbour_idxs",
    "size_merged_chunking",
]
