"""Bounding boxes and inner regions of masks: which part of a buffer holds valid data."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from libertem.common.slice import Slice


def get_bbox(arr: np.ndarray) -> tuple[int, ...]:
    """Inclusive bounds of the nonzero elements: ``(min_0, max_0, min_1, max_1, ...)``.

    Raises
    ------
    ValueError
        If ``arr`` has no nonzero element.
    """
    arr = np.asarray(arr)
    if not np.any(arr):
        raise ValueError("get_bbox: the array has no nonzero element")
    bounds = []
    for axis in range(arr.ndim):
        others = tuple(a for a in range(arr.ndim) if a != axis)
        hits = np.flatnonzero(np.any(arr, axis=others))
        bounds.extend((int(hits[0]), int(hits[-1])))
    return tuple(bounds)


def get_bbox_2d(arr, eps: float = 1e-8) -> tuple[int, ...]:
    """``(ymin, ymax, xmin, xmax)`` (inclusive) of the entries of a 2D array above ``eps``."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"get_bbox_2d needs a 2D array, got shape {arr.shape}")
    return get_bbox(np.abs(arr) > eps)


def get_bbox_slice(arr: np.ndarray) -> tuple[slice, ...]:
    """Index expression of the bounding box of the nonzero elements."""
    bounds = get_bbox(arr)
    return tuple(slice(lo, hi + 1) for lo, hi in zip(bounds[::2], bounds[1::2]))


def get_inner_slice(arr: np.ndarray, axis: int = 0) -> tuple[slice, ...]:
    """Index expression of the first run of entirely nonzero hyperplanes along ``axis``.

    For a mask of valid results that fills a scan row by row, ``axis=0`` gives the
    rows that are complete. The other axes are covered whole. An empty run gives
    an empty slice along ``axis``.
    """
    arr = np.asarray(arr, dtype=bool)
    axis = axis % arr.ndim
    others = tuple(a for a in range(arr.ndim) if a != axis)
    full = np.all(arr, axis=others) if others else arr
    hits = np.flatnonzero(full)
    if hits.size == 0:
        run = slice(0, 0)
    else:
        start = int(hits[0])
        gaps = np.flatnonzero(np.diff(hits) != 1)
        stop = int(hits[gaps[0]] + 1) if gaps.size else int(hits[-1] + 1)
        run = slice(start, stop)
    index = [slice(None)] * arr.ndim
    index[axis] = run
    return tuple(index)


def disjoint(sl: Slice, slices: Iterable[Slice]) -> bool:
    """Whether ``sl`` overlaps none of ``slices``."""
    return all(sl.intersection_with(other).is_null() for other in slices)


__all__ = ["disjoint", "get_bbox", "get_bbox_2d", "get_bbox_slice", "get_inner_slice"]
