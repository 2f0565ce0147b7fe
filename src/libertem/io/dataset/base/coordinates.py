"""Navigation coordinates of the frames in a slice."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.common.shape import Shape
from libertem.common.slice import Slice


def get_coordinates(slice_: Slice, ds_shape: Shape, roi=None) -> np.ndarray:
    """The navigation coordinates of the frames that ``slice_`` covers.

    Parameters
    ----------
    slice_
        A slice with one flat navigation axis; with ``roi``, its frame axis counts the
        selected frames only (as the slices UDFs see).
    ds_shape
        Shape of the dataset.
    roi
        Boolean mask of the dataset's navigation axes (or flat), or ``None``.

    Returns
    -------
    numpy.ndarray
        ``(frames, nav_dims)`` integer coordinates, in frame order.
    """
    start, n = int(slice_.origin[0]), int(slice_.shape[0])
    if roi is None:
        flat = np.arange(start, start + n)
    else:
        flat = np.flatnonzero(np.asarray(roi).reshape(-1))[start : start + n]
    nav = tuple(ds_shape.nav)
    return np.stack(np.unravel_index(flat, nav), axis=1).astype(np.int64)


def roi_to_nd_indices(roi, part_slice: Slice) -> Iterator[tuple[int, ...]]:
    """Navigation indices of the frames that ``roi`` selects within ``part_slice``.

    Parameters
    ----------
    roi
        Boolean mask of the dataset's navigation axes.
    part_slice
        A slice with one flat navigation axis (not compressed by the ROI).

    Yields
    ------
    tuple of int
        The indices, in frame order.
    """
    roi = np.asarray(roi)
    start, n = int(part_slice.origin[0]), int(part_slice.shape[0])
    flat = np.flatnonzero(roi.reshape(-1)[start : start + n]) + start
    for idx in zip(*np.unravel_index(flat, roi.shape)):
        yield tuple(int(i) for i in idx)


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "prod": "libertem.common.math",
    },
)
