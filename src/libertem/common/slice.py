"""Rectangular regions of a dataset in flat-navigation coordinates."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from libertem.common.shape import Shape


class Slice:
    """A hyper-rectangle: an ``origin`` and a ``shape`` (a `Shape`).

    For a 4D dataset processed with flat navigation, a slice has three
    coordinates ``(n, y, x)``: the first is the (ROI-compressed) flat frame index,
    the rest are signal coordinates.

    Parameters
    ----------
    origin
        Coordinates of the first element, one per axis of ``shape``.
    shape
        Extent of the region; its ``sig_dims`` tells which axes are signal axes.
    """

    __slots__ = ("origin", "shape")

    def __init__(self, origin: Iterable[int], shape: Shape):
        origin = tuple(int(o) for o in origin)
        if not isinstance(shape, Shape):
            raise TypeError("shape must be a Shape")
        if len(origin) != len(shape):
            raise ValueError(f"origin {origin} and shape {tuple(shape)} differ in dimensions")
        self.origin = origin
        self.shape = shape

    def get(self, arr: np.ndarray | None = None, sig_only: bool = False, nav_only: bool = False):
        """Numpy index expression for this slice, or ``arr`` indexed with it.

        Parameters
        ----------
        arr
            If given, return ``arr[index]`` instead of the index expression.
        sig_only
            Index only the signal axes (for arrays shaped like a frame).
        nav_only
            Index only the navigation axes.
        """
        if sig_only and nav_only:
            raise ValueError("sig_only and nav_only are mutually exclusive")
        nav_dims = self.shape.nav_dims
        index = tuple(slice(o, o + s) for o, s in zip(self.origin, self.shape))
        if sig_only:
            index = index[nav_dims:]
        elif nav_only:
            index = index[:nav_dims]
        if arr is not None:
            return arr[index]
        return index

    def discard_nav(self) -> Slice:
        """The signal part of this slice."""
        nav_dims = self.shape.nav_dims
        return Slice(self.origin[nav_dims:], self.shape.sig)

    def shift(self, other: Slice) -> Slice:
        """This slice expressed relative to the origin of ``other``."""
        if len(other.origin) != len(self.origin):
            raise ValueError("cannot shift by a slice of different dimensionality")
        origin = tuple(a - b for a, b in zip(self.origin, other.origin))
        return Slice(origin, self.shape)

    def intersection_with(self, other: Slice) -> Slice:
        """The overlap of two slices (may have zero extent)."""
        origin = tuple(max(a, b) for a, b in zip(self.origin, other.origin))
        ends = tuple(
            min(a + s, b + t)
            for a, s, b, t in zip(self.origin, self.shape, other.origin, other.shape)
        )
        shape = tuple(max(0, e - o) for o, e in zip(origin, ends))
        return Slice(origin, Shape(shape, sig_dims=self.shape.sig_dims))

    def is_null(self) -> bool:
        """Whether the slice covers no element."""
        return any(s == 0 for s in self.shape)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Slice):
            return NotImplemented
        return self.origin == other.origin and self.shape == other.shape

    def __hash__(self) -> int:
        return hash((self.origin, self.shape))

    def __repr__(self) -> str:
        shape = tuple(self.shape)
        return f"Slice(origin={self.origin}, shape={shape}, sig_dims={self.shape.sig_dims})"
