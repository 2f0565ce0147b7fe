"""numpy-style in-place assignment into a Dask array, also through a remembered region.

A lazily built result buffer of the delayed executor is a Dask array; UDF code
written for numpy assigns into it (``dest.x[:] += src.x``). :class:`DaskInplaceWrapper`
turns such assignments into updates of the wrapped array's graph, and
:func:`combine_slices_multid` composes a region with an index into that region, so
that ``wrapper[key]`` addresses what ``array[region][key]`` would.
"""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as da
import numpy as np

_BASIC_ITEMS = (slice, numbers.Integral, type(Ellipsis), type(None))


def _as_tuple(slices) -> tuple:
    return slices if isinstance(slices, tuple) else (slices,)


def _is_full(item) -> bool:
    return isinstance(item, slice) and item == slice(None)


def combine_slices(slice1, slice2, length: int):
    """One index for one axis of ``length`` that selects ``x[slice1][slice2]``.

    Parameters
    ----------
    slice1
        The outer index: a ``slice`` or an int.
    slice2
        The index into what ``slice1`` selects: a ``slice``, an int, or ``None``
        (only allowed, like ``slice(None)``, when ``slice1`` is an int).
    length
        Length of the axis.

    Returns
    -------
    slice or int
        An int when either index is one, else a ``slice`` whose step is the product
        of both steps; an empty selection is ``slice(0, 0, step)``.
    """
    if isinstance(slice1, numbers.Integral):
        assert slice2 is None or _is_full(slice2), (
            f"cannot index into the single element {slice1} with {slice2!r}"
        )
        return slice1
    if slice2 is None:
        slice2 = slice(None)
    outer = range(*slice1.indices(length))
    if isinstance(slice2, numbers.Integral):
        return outer[slice2]
    start1, _stop1, step1 = slice1.indices(length)
    start2, stop2, step2 = slice2.indices(len(outer))
    step = step1 * step2
    if len(outer) == 0 or len(range(start2, stop2, step2)) == 0:
        return slice(0, 0, step)
    start = start1 + start2 * step1
    stop = start1 + stop2 * step1
    if stop < 0 and stop < start:
        stop = None
    return slice(start, stop, step)


def combine_slices_multid(slices1, slices2, shape: tuple[int, ...]) -> tuple:
    """One index ``t`` with ``x[t]`` selecting ``x[slices1][slices2]`` for ``x`` of ``shape``.

    Only basic indexing (slices, ints, one ``Ellipsis``) is supported.

    Parameters
    ----------
    slices1
        The outer index (a region of ``x``); may hold one ``Ellipsis``.
    slices2
        The index into that region; an ``Ellipsis`` only as its last item.
    shape
        Shape of ``x``.

    Returns
    -------
    tuple
        The combined index, one item per axis of ``x`` (or ``slices1`` / ``slices2``
        unchanged when the other selects everything).

    Raises
    ------
    IndexError
        For an ``Ellipsis`` in ``slices2`` other than at its end.
    AssertionError
        If ``slices2`` has more items than the region has axes.
    """
    slices1, slices2 = _as_tuple(slices1), _as_tuple(slices2)
    if all(_is_full(s) for s in slices2):
        return slices1
    if all(_is_full(s) for s in slices1):
        return slices2
    ndim = len(shape)
    if Ellipsis in slices1:
        at = slices1.index(Ellipsis)
        fill = (slice(None),) * (ndim - len(slices1) + 1)
        slices1 = slices1[:at] + fill + slices1[at + 1 :]
    if Ellipsis in slices2:
        if slices2.index(Ellipsis) != len(slices2) - 1:
            raise IndexError("No support for Ellipsis in subslice except at end")
        slices2 = slices2[:-1]
    slices1 = slices1 + (slice(None),) * (ndim - len(slices1))
    open_axes = [axis for axis, s in enumerate(slices1) if not isinstance(s, numbers.Integral)]
    assert len(slices2) <= len(open_axes), (
        f"index {slices2!r} has more items than the region {slices1!r} has axes"
    )
    inner: dict[int, Any] = dict(zip(open_axes, slices2))
    return tuple(
        combine_slices(outer, inner.get(axis, slice(None)), shape[axis])
        for axis, outer in enumerate(slices1)
    )


class fake_np_flags:
    """The one numpy array flag code asks a :class:`DaskInplaceWrapper` for.

    Parameters
    ----------
    c_contiguous
        Value of :attr:`c_contiguous`.
    """

    def __init__(self, c_contiguous: bool):
        self.c_contiguous = c_contiguous

    def __repr__(self) -> str:
        return f"fake_np_flags(c_contiguous={self.c_contiguous!r})"


class DaskInplaceWrapper:
    """A Dask array that takes numpy-style assignments, optionally through a region.

    ``w[key] = value`` updates the wrapped array's graph (so ``w[key] += value``
    works); after :meth:`set_slice`, ``w[key]`` and ``w[key] = value`` address
    ``array[region][key]``. :attr:`shape`, :attr:`dtype`, :attr:`size` and
    :attr:`ndim` always describe the whole array.

    Parameters
    ----------
    dask_array
        The array (a :class:`dask.array.Array`).
    """

    def __init__(self, dask_array):
        assert isinstance(dask_array, da.Array), (
            f"DaskInplaceWrapper wraps dask arrays, not {type(dask_array).__name__}"
        )
        self._array = dask_array
        self._slice = None

    @property
    def data(self) -> da.Array:
        """The whole array as it is now (assignments replace its graph: read it again)."""
        return self._array

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the whole array."""
        return self._array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole array (also while a region is set)."""
        return self._array.shape

    @property
    def size(self) -> int:
        """Number of elements of the whole array."""
        return self._array.size

    @property
    def ndim(self) -> int:
        """Number of axes of the whole array."""
        return self._array.ndim

    @property
    def flags(self) -> fake_np_flags:
        """numpy-like flags: treated as C-contiguous."""
        return fake_np_flags(c_contiguous=True)

    def check_valid_slices(self, slices) -> None:
        """Assert that ``slices`` is a basic index with at most :attr:`ndim` items.

        Raises
        ------
        AssertionError
            For a list, an array or any other item than a slice, an int, ``Ellipsis``
            or ``None``, or for too many items.
        """
        items = _as_tuple(slices)
        assert all(isinstance(s, _BASIC_ITEMS) and not isinstance(s, bool) for s in items), (
            f"only slices, ints, Ellipsis and None are supported, got {slices!r}"
        )
        assert len(items) <= self.ndim, (
            f"index {slices!r} has more items than the array has axes ({self.ndim})"
        )

    def set_slice(self, slices) -> None:
        """Address the region ``slices`` of the array from now on."""
        self.check_valid_slices(slices)
        self._slice = slices

    def clear_slice(self) -> None:
        """Address the whole array again."""
        self._slice = None

    def unwrap_sliced(self) -> da.Array:
        """The whole array, or its region when one is set."""
        if self._slice is None:
            return self._array
        return self._array[self._slice]

    def _key(self, key):
        if self._slice is None:
            return key
        return combine_slices_multid(self._slice, key, self.shape)

    def __getitem__(self, key) -> da.Array:
        return self._array[self._key(key)]

    def __setitem__(self, key, value) -> None:
        if hasattr(value, "unwrap_sliced"):  # a wrapper, or a buffer view built on one
            value = value.unwrap_sliced()
        if isinstance(value, da.Array):
            value = _without_empty_chunks(value)
        elif not np.isscalar(value) and np.size(value) == 1:
            value = np.asarray(value).item()
        try:
            self._array[self._key(key)] = value
        except ValueError:
            if isinstance(value, np.ndarray) and value.size == 0:
                return
            raise
        except NotImplementedError as e:
            raise NotImplementedError(
                f"in-place assignment into Dask arrays needs dask 2021.04.1 or newer ({e})"
            ) from e

    def __array__(self, dtype=None, copy=None):
        result = np.asarray(self.unwrap_sliced().compute())
        return result if dtype is None else result.astype(dtype)

    def __repr__(self) -> str:
        return f"<DaskInplaceWrapper {self._array!r} slice={self._slice!r}>"


def _without_empty_chunks(arr: da.Array) -> da.Array:
    """``arr`` without zero-length chunks: dask's in-place assignment of a value that has
    them (e.g. ``x[0:4:4]`` of an array in chunks of 3) builds a graph with a missing
    dependency."""
    chunks = tuple(tuple(c for c in axis if c) or (0,) for axis in arr.chunks)
    return arr if chunks == arr.chunks else arr.rechunk(chunks)


__all__ = ["DaskInplaceWrapper", "combine_slices", "combine_slices_multid", "fake_np_flags"]
