"""Small helpers of the result buffers: fill values, host copies, ROIs and frame ranges."""

from __future__ import annotations

import numpy as np


def fill_value(dtype: np.dtype):
    """What ``kind='nav'`` results hold at positions outside the ROI, by dtype kind."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        return np.nan
    if kind == "c":
        return complex(np.nan, np.nan)
    if kind == "O":
        return None
    if kind == "S":
        return b""
    if kind == "U":
        return ""
    if kind == "M":
        return np.datetime64("NaT")
    if kind == "m":
        return np.timedelta64("NaT")
    if kind == "V":
        return np.zeros((), dtype=dtype)[()]
    return 0


def to_numpy(a) -> np.ndarray:
    """``a`` as a NumPy array: device arrays are copied to the host, NumPy arrays kept."""
    if isinstance(a, np.ndarray) and type(a) is np.ndarray:
        return a
    get = getattr(a, "get", None)
    if get is not None and not isinstance(a, dict):
        return np.asarray(get())
    return np.asarray(a)


def flat_roi(roi) -> np.ndarray | None:
    """``roi`` (boolean, nav-shaped or flat) as a flat boolean array; ``None`` stays."""
    return None if roi is None else np.asarray(roi, dtype=bool).reshape(-1)


def partition_range(partition) -> tuple[int, int]:
    """Flat frame range ``[start, stop)`` of a partition (our partitions or LiberTEM-style)."""
    start = getattr(partition, "start", None)
    stop = getattr(partition, "stop", None)
    if start is None or stop is None:
        sl = partition.slice
        start, stop = sl.origin[0], sl.origin[0] + sl.shape[0]
    return int(start), int(stop)


__all__ = ["fill_value", "flat_roi", "partition_range", "to_numpy"]
