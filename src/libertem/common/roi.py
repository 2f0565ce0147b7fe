"""Validation and bookkeeping of regions of interest over the navigation axes."""

from __future__ import annotations

import warnings

import numpy as np

from libertem.common.shape import Shape


def _roi_from_coordinates(roi, nav_shape: tuple[int, ...]) -> np.ndarray | None:
    """A ROI given as one frame's coordinates, or as ``(coordinates, selected)`` pairs."""
    nav_dims = len(nav_shape)

    def as_index(coords) -> tuple[int, ...]:
        coords = tuple(int(c) for c in coords)
        if len(coords) != nav_dims or any(not 0 <= c < s for c, s in zip(coords, nav_shape)):
            raise ValueError(
                f"roi coordinates {coords} lie outside the navigation shape {nav_shape}"
            )
        return coords

    if isinstance(roi, tuple) and roi and all(isinstance(c, (int, np.integer)) for c in roi):
        mask = np.zeros(nav_shape, dtype=bool)
        mask[as_index(roi)] = True
        return mask
    if isinstance(roi, (list, tuple)) or (
        not isinstance(roi, np.ndarray) and hasattr(roi, "__iter__")
    ):
        pairs = list(roi)
        if all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            mask = np.zeros(nav_shape, dtype=bool)
            for coords, selected in pairs:
                mask[as_index(coords)] = bool(selected)
            return mask
    return None


def normalize_roi(roi, nav_shape: Shape | tuple[int, ...]) -> np.ndarray | None:
    """Check a ROI against the navigation shape and return it as a new flat bool array.

    A ROI of another dtype is cast to bool (non-zero: selected) with a
    ``UserWarning``; the caller's array is not changed.

    Parameters
    ----------
    roi
        ``None`` (all frames); a boolean array of the navigation shape, or flat
        with one entry per frame; the same as a sparse array (``sparse.COO``,
        ``scipy.sparse``); the coordinates of one frame (a tuple of ints); or
        pairs ``(coordinates, selected)``, frames not named being unselected.
    nav_shape
        The dataset's navigation shape.

    Raises
    ------
    ValueError
        If the ROI does not match the navigation shape.
    """
    if roi is None:
        return None
    nav_shape = tuple(nav_shape)
    from libertem.common.sparse import is_sparse, to_dense

    if is_sparse(roi):
        roi = to_dense(roi)
    elif not isinstance(roi, np.ndarray):
        from_coords = _roi_from_coordinates(roi, nav_shape)
        if from_coords is not None:
            roi = from_coords
    roi = np.asarray(roi)
    if roi.dtype != np.bool_:
        warnings.warn(
            f"ROI dtype is {roi.dtype}, expected bool. Attempting cast to bool.",
            UserWarning,
            stacklevel=3,
        )
        roi = roi.astype(bool)  # a new array: the caller's ROI stays as it is
    nav_size = int(np.prod(nav_shape, dtype=np.int64))
    if roi.shape != nav_shape and roi.shape != (nav_size,):
        raise ValueError(
            f"roi shape {roi.shape} does not match the navigation shape {nav_shape} "
            f"(or its flat form ({nav_size},))"
        )
    # a copy: changing the caller's array later must not change a run's results
    return np.array(roi.reshape(-1), copy=True)


def count_selected(roi_flat: np.ndarray | None, start: int, stop: int) -> int:
    """Number of frames in ``[start, stop)`` that the (flat) ROI selects."""
    if roi_flat is None:
        return stop - start
    return int(np.count_nonzero(roi_flat[start:stop]))


def roi_for_partition(roi: np.ndarray, partition) -> np.ndarray:
    """The flat part of ``roi`` (of the whole dataset) for the frames of ``partition``."""
    sl = partition.slice
    start, stop = int(sl.origin[0]), int(sl.origin[0] + sl.shape[0])
    return np.asarray(roi, dtype=bool).reshape(-1)[start:stop]
