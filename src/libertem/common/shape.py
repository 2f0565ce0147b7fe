"""Shapes that know which of their trailing axes are signal axes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from math import prod
from typing import Union

ShapeLike = Union["Shape", Iterable[int]]


class Shape:
    """An n-dimensional shape split into navigation and signal parts.

    Parameters
    ----------
    shape
        The full shape, navigation axes first.
    sig_dims
        How many trailing axes are signal axes.

    Examples
    --------
    >>> s = Shape((16, 16, 32, 32), sig_dims=2)
    >>> tuple(s.nav), tuple(s.sig)
    ((16, 16), (32, 32))
    >>> tuple(s.flatten_nav())
    (256, 32, 32)
    >>> s
    (16, 16, 32, 32)
    >>> (2,) + s, ((2,) + s).sig_dims
    ((16, 16, 2, 32, 32), 2)
    >>> s + (2,), (s + (2,)).sig_dims
    ((16, 16, 32, 32, 2), 3)
    """

    __slots__ = ("_shape", "_sig_dims")

    def __init__(self, shape: ShapeLike, sig_dims: int):
        shape = tuple(int(s) for s in shape)
        if not 0 <= sig_dims <= len(shape):
            raise ValueError(f"sig_dims={sig_dims} does not fit a shape of {len(shape)} dims")
        self._shape = shape
        self._sig_dims = int(sig_dims)

    @property
    def sig_dims(self) -> int:
        """Number of signal axes."""
        return self._sig_dims

    @property
    def nav_dims(self) -> int:
        """Number of navigation axes."""
        return len(self._shape) - self._sig_dims

    @property
    def dims(self) -> int:
        """Total number of axes."""
        return len(self._shape)

    @property
    def nav(self) -> Shape:
        """The navigation part, as a `Shape` without signal axes."""
        return NavOnlyShape(self._shape[: self.nav_dims])

    @property
    def sig(self) -> Shape:
        """The signal part, as a `Shape` whose axes are all signal axes."""
        return SigOnlyShape(self._shape[self.nav_dims :])

    @property
    def size(self) -> int:
        """Number of elements; ``0`` for a shape without axes.

        So ``shape.nav.size`` is ``0`` when there are no navigation axes.
        """
        if not self._shape:
            return 0
        return prod(self._shape)

    def flatten_nav(self) -> Shape:
        """The shape with all navigation axes merged into one."""
        nav = prod(self._shape[: self.nav_dims])
        return Shape((nav, *self._shape[self.nav_dims :]), sig_dims=self._sig_dims)

    def flatten_sig(self) -> Shape:
        """The shape with all signal axes merged into one."""
        sig = prod(self._shape[self.nav_dims :])
        return Shape((*self._shape[: self.nav_dims], sig), sig_dims=1)

    def to_tuple(self) -> tuple[int, ...]:
        """The full shape as a plain tuple."""
        return self._shape

    def __iter__(self) -> Iterator[int]:
        return iter(self._shape)

    def __len__(self) -> int:
        return len(self._shape)

    def __getitem__(self, key):
        return self._shape[key]

    def __add__(self, other: Iterable[int]) -> Shape:
        """``shape + (a, b)``: the axes appended as further signal axes.

        Raises
        ------
        NotImplementedError
            If ``other`` is a `Shape` (which axes would be signal axes is unclear).
        """
        if isinstance(other, Shape):
            raise NotImplementedError()
        extra = tuple(other)
        return Shape(self._shape + extra, sig_dims=self._sig_dims + len(extra))

    def __radd__(self, other: Iterable[int]) -> Shape:
        """``(a, b) + shape``: the axes appended to the navigation part."""
        extra = tuple(other)
        nav = self._shape[: self.nav_dims]
        sig = self._shape[self.nav_dims :]
        return Shape(nav + extra + sig, sig_dims=self._sig_dims)

    def __eq__(self, other) -> bool:
        if isinstance(other, Shape):
            return self._shape == other._shape and self._sig_dims == other._sig_dims
        if isinstance(other, (tuple, list)):
            return self._shape == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._shape, self._sig_dims))

    def __repr__(self) -> str:
        return repr(self._shape)


class NavOnlyShape(Shape):
    """A shape that has only navigation axes (``sig_dims == 0``).

    Parameters
    ----------
    shape
        The navigation shape.
    """

    __slots__ = ()

    def __init__(self, shape: ShapeLike):
        super().__init__(shape, sig_dims=0)

    def flatten_sig(self) -> Shape:
        """Itself: there are no signal axes to merge."""
        return self


class SigOnlyShape(Shape):
    """A shape that has only signal axes (``nav_dims == 0``).

    Parameters
    ----------
    shape
        The signal shape.
    """

    __slots__ = ()

    def __init__(self, shape: ShapeLike):
        shape = tuple(shape)
        super().__init__(shape, sig_dims=len(shape))

    def flatten_nav(self) -> Shape:
        """Itself: there are no navigation axes to merge."""
        return self
