"""Validation and bookkeeping of regions of interest over the navigation axes."""

from __future__ import annotations

import numpy as np

from libertem.common.shape import Shape


def normalize_roi(roi: np.ndarray | None, nav_shape: Shape | tuple[int, ...]) -> np.ndarray | None:
    """Check a ROI against the navigation shape and return it as a flat bool array.

    Parameters
    ----------
    roi
        ``None`` (all frames), or a boolean array of the navigation shape, or a flat
        boolean array with one entry per frame.
    nav_shape
        The dataset's navigation shape.

    Raises
    ------
    ValueError
        If the ROI is not boolean or does not match the navigation shape.
    """
    if roi is None:
        return None
    nav_shape = tuple(nav_shape)
    roi = np.asarray(roi)
    if roi.dtype != np.bool_:
        raise ValueError(
            f"roi must be a boolean array, got dtype {roi.dtype}; "
            "use e.g. `roi.astype(bool)` to select frames by nonzero values"
        )
    nav_size = int(np.prod(nav_shape, dtype=np.int64))
    if roi.shape != nav_shape and roi.shape != (nav_size,):
        raise ValueError(
            f"roi shape {roi.shape} does not match the navigation shape {nav_shape} "
            f"(or its flat form ({nav_size},))"
        )
    return np.ascontiguousarray(roi.reshape(-1))


def count_selected(roi_flat: np.ndarray | None, start: int, stop: int) -> int:
    """Number of frames in ``[start, stop)`` that the (flat) ROI selects."""
    if roi_flat is None:
        return stop - start
    return int(np.count_nonzero(roi_flat[start:stop]))
