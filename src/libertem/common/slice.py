"""Rectangular regions of a dataset in flat-navigation coordinates."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from itertools import product

import numpy as np

from libertem.common.math import count_nonzero, prod
from libertem.common.shape import Shape


class SliceUsageError(ValueError):
    """A slice built or combined in a way that does not fit: a shape that is not a
    `Shape`, mismatching dimensions, a non-contiguous navigation region."""


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
            raise SliceUsageError("please use libertem.common.Shape instance as shape parameter")
        if len(origin) != len(shape):
            raise SliceUsageError(
                "cannot build slice with dimensionality of shape/origin mismatch "
                f"({len(origin)} vs {len(shape)}); origin={origin}, shape={shape!r}"
            )
        self.origin = origin
        self.shape = shape

    def get(self, arr: np.ndarray | None = None, sig_only: bool = False, nav_only: bool = False):
        """Numpy index expression for this slice, or ``arr`` indexed with it.

        Parameters
        ----------
        arr
            If given, return ``arr`` indexed with it instead of the index expression.
        sig_only
            Only the signal part: applied to an array, it indexes the **last**
            ``sig_dims`` axes (``arr[..., y0:y1, x0:x1]``), leading axes stay whole.
        nav_only
            Only the navigation part (applied to the leading axes of an array).

        Raises
        ------
        SliceUsageError
            If both ``sig_only`` and ``nav_only`` are set.
        """
        if sig_only and nav_only:
            raise SliceUsageError("sig_only and nav_only are mutually exclusive")
        nav_dims = self.shape.nav_dims
        index = tuple(slice(o, o + s) for o, s in zip(self.origin, self.shape))
        if sig_only:
            index = index[nav_dims:]
            if arr is not None:
                return arr[(Ellipsis, *index)]
            return index
        if nav_only:
            index = index[:nav_dims]
        if arr is not None:
            return arr[index]
        return index

    @classmethod
    def from_shape(cls, shape: Sequence[int], sig_dims: int) -> Slice:
        """The slice covering all of ``shape``, starting at the origin."""
        shape = tuple(shape)
        return cls((0,) * len(shape), Shape(shape, sig_dims=sig_dims))

    @property
    def nav(self) -> Slice:
        """The navigation part of this slice."""
        nav_dims = self.shape.nav_dims
        return Slice(self.origin[:nav_dims], self.shape.nav)

    @property
    def sig(self) -> Slice:
        """The signal part of this slice (same as :meth:`discard_nav`)."""
        return self.discard_nav()

    def shift_by(self, offset: Sequence[int]) -> Slice:
        """This slice moved by ``offset`` (one entry per axis).

        Raises
        ------
        SliceUsageError
            If ``offset`` has another number of axes.
        """
        offset = tuple(offset)
        if len(offset) != len(self.origin):
            raise SliceUsageError(
                f"cannot shift slices with different dimensionality ({self.origin} vs {offset})"
            )
        return Slice(tuple(o + d for o, d in zip(self.origin, offset)), self.shape)

    def clip_to(self, shape: Shape) -> Slice:
        """This slice cut so that it lies within ``shape`` (from the origin)."""
        if len(shape) != len(self.origin):
            raise SliceUsageError(f"cannot clip {self} to a shape of {len(shape)} dims")
        origin = tuple(min(max(o, 0), s) for o, s in zip(self.origin, shape))
        ends = tuple(min(o + e, s) for o, e, s in zip(self.origin, self.shape, shape))
        extent = tuple(max(0, e - o) for o, e in zip(origin, ends))
        return Slice(origin, Shape(extent, sig_dims=self.shape.sig_dims))

    def adjust_for_roi(self, roi: np.ndarray | None) -> Slice:
        """This flat-nav slice in the coordinates of the frames that ``roi`` selects.

        Parameters
        ----------
        roi
            Flat (or navigation-shaped) boolean mask of the whole dataset, or ``None``.
        """
        if roi is None:
            return self
        if self.shape.nav_dims != 1:
            raise SliceUsageError("adjust_for_roi needs a slice with a flat navigation axis")
        roi = np.asarray(roi).reshape(-1)
        start, n = self.origin[0], self.shape[0]
        origin = (count_nonzero(roi[:start]), *self.origin[1:])
        shape = (count_nonzero(roi[start : start + n]), *tuple(self.shape)[1:])
        return Slice(origin, Shape(shape, sig_dims=self.shape.sig_dims))

    def flatten_nav(self, containing_shape: Shape | Sequence[int]) -> Slice:
        """This slice with its navigation axes merged into one, within ``containing_shape``.

        Raises
        ------
        SliceUsageError
            If the navigation region is not one contiguous run of flat indices.
        """
        nav_dims = self.shape.nav_dims
        containing = tuple(containing_shape)
        nav_full = containing[:nav_dims]
        nav_origin, nav_extent = self.origin[:nav_dims], tuple(self.shape)[:nav_dims]
        # contiguous: after the first axis with extent > 1, every axis is full
        for axis in range(1, nav_dims):
            if any(e > 1 for e in nav_extent[:axis]) and (
                nav_origin[axis] != 0 or nav_extent[axis] != nav_full[axis]
            ):
                raise SliceUsageError(
                    f"the navigation region of {self} is not contiguous in {containing}"
                )
        start = int(np.ravel_multi_index(nav_origin, nav_full)) if nav_dims else 0
        sig = tuple(self.shape)[nav_dims:]
        return Slice(
            (start, *self.origin[nav_dims:]),
            Shape((prod(nav_extent), *sig), sig_dims=self.shape.sig_dims),
        )

    def subslices(self, shape: Shape | Sequence[int]) -> Generator[Slice, None, None]:
        """Slices of (at most) ``shape`` that cover this slice exactly once, in C order."""
        shape = tuple(shape)
        if len(shape) != len(self.origin):
            raise SliceUsageError(
                f"subslice shape {shape} does not match the dimensions of {self}"
            )
        starts = [
            range(o, o + e, max(1, s)) for o, e, s in zip(self.origin, tuple(self.shape), shape)
        ]
        ends = tuple(o + e for o, e in zip(self.origin, tuple(self.shape)))
        for origin in product(*starts):
            extent = tuple(min(s, end - o) for o, s, end in zip(origin, shape, ends))
            yield Slice(origin, Shape(extent, sig_dims=self.shape.sig_dims))

    def discard_nav(self) -> Slice:
        """The signal part of this slice."""
        nav_dims = self.shape.nav_dims
        return Slice(self.origin[nav_dims:], self.shape.sig)

    def shift(self, other: Slice) -> Slice:
        """This slice expressed relative to the origin of ``other``.

        Raises
        ------
        SliceUsageError
            If ``other`` has another number of axes.
        """
        if len(other.origin) != len(self.origin):
            raise SliceUsageError(
                "cannot shift slices with different dimensionality "
                f"({self.origin} vs {other.origin})"
            )
        origin = tuple(a - b for a, b in zip(self.origin, other.origin))
        return Slice(origin, self.shape)

    def intersection_with(self, other: Slice) -> Slice:
        """The overlap of two slices (may have zero extent).

        Raises
        ------
        SliceUsageError
            If the slices differ in their number of axes or of signal axes.
        """
        if len(self.origin) != len(other.origin):
            raise SliceUsageError(
                "cannot intersect slices with different dimensionality "
                f"({len(self.origin)} vs {len(other.origin)}); "
                f"self.origin={self.origin}, other.origin={other.origin}"
            )
        if self.shape.sig_dims != other.shape.sig_dims:
            raise SliceUsageError(
                "cannot intersect slices with different signal dimensionality "
                f"({self.shape.sig_dims} vs {other.shape.sig_dims})"
            )
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
