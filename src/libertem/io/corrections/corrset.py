"""`CorrectionSet`: the corrections applied to every tile of a run, and tile-shape adjustment.

Excluded pixels are patched from their neighbours within one tile. So that a
tile that cuts the frame gives the same result as a whole frame, the tiling is
adjusted (:meth:`CorrectionSet.adjust_tileshape`): no tile border may pass
between an excluded pixel and one of its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.common.slice import Slice

if TYPE_CHECKING:
    import sparse

# The correction code (pydata.sparse, scipy.sparse, numba kernels) is imported when a
# CorrectionSet holds corrections: every run makes an empty one.
_ELSEWHERE = {
    "RepairDescriptor": "libertem.io.corrections.detector",
    "correct": "libertem.io.corrections.detector",
}
__getattr__, __dir__ = lazy_names(__name__, _ELSEWHERE)


def _detector():
    from libertem.io.corrections import detector

    return detector


def _repair():
    from libertem.io.corrections import repair

    return repair


__all__ = [
    "CorrectionSet",
    "Slice",
    "adjust",
    "disjunct_multiplier",
    *_ELSEWHERE,
]


def _candidates(start: int, base: int, target: int):
    """``start``, then alternately one step further from ``target`` and one step back
    past ``start``: ``start, start - s*base, start + s*base, start - 2*s*base, ...``."""
    sign = 1 if start >= target else -1
    yield start
    step = 1
    while True:
        yield start - sign * step * base
        yield start + sign * step * base
        step += 1


def disjunct_multiplier(excluded, sig_shape, base_shape=1, target=1) -> int:
    """A tile size along one axis whose tile borders avoid the positions ``excluded``.

    Tiles of size ``v`` along an axis of length ``sig_shape`` start at the
    multiples of ``v``. Candidates are multiples of ``base_shape``, starting at
    the one closest to ``target`` and then alternating around it (the side away
    from ``target`` first); the first candidate none of whose multiples below
    ``sig_shape`` lies in ``excluded`` wins. If none of the first
    ``max(excluded) // base_shape + 1`` candidates does, the smallest multiple of
    ``base_shape`` beyond ``max(excluded)`` is taken (at most ``sig_shape``).

    Parameters
    ----------
    excluded : array-like of int
        Forbidden border positions along this axis, not 0.
    sig_shape : int
        Length of the axis.
    base_shape : int
        The tile size is a multiple of this.
    target : int
        The wanted tile size.

    Returns
    -------
    int
        The tile size.
    """
    forbidden = np.unique(np.asarray(excluded, dtype=np.int64).reshape(-1))
    length, base, target = int(sig_shape), max(1, int(base_shape)), int(target)
    if forbidden.size == 0:
        return target
    top = int(forbidden[-1])
    tries = top // base + 1
    start = base * round(target / base)
    for i, candidate in enumerate(_candidates(start, base, target)):
        if i >= tries:
            break
        if candidate <= 0:
            continue
        borders = np.arange(candidate, min(top, length - 1) + 1, candidate)
        if not np.isin(borders, forbidden).any():
            return candidate
    return min((top // base + 1) * base, length)


def _adjust_axis(size: int, length: int, base: int, coords: np.ndarray) -> int:
    """The tile size along one axis, see :meth:`CorrectionSet.adjust_tileshape`."""
    if length <= 1:
        return size
    unique = np.unique(coords)
    if len(unique) > length / 3:
        return length
    forbidden = np.union1d(unique, unique + 1)
    forbidden = forbidden[forbidden <= length]
    pixel_at_zero = bool(forbidden[0] == 0)
    forbidden = forbidden[forbidden != 0]
    m = min(length, disjunct_multiplier(forbidden, length, base, size))
    minimum = max(m, 2) if pixel_at_zero else m
    if size < minimum or size % m != 0:
        size = m
    return length if size <= 0 or size > length else size


def adjust(adjusted_shape_inout, sig_shape, base_shape, excluded_list) -> None:
    """Adjust a signal tile shape in place so that tiles keep excluded pixels whole.

    Along each signal axis, no tile may start at an excluded pixel or right
    after one, so that the neighbours of every excluded pixel lie in its tile.

    Parameters
    ----------
    adjusted_shape_inout : list or numpy.ndarray of int
        The signal tile shape, changed in place.
    sig_shape, base_shape : sequence of int
        The signal shape and the natural block of the data (tile sides are multiples).
    excluded_list : sequence of arrays
        Per signal axis, the coordinates of the excluded pixels along it (the
        rows of ``sparse.COO.coords``).
    """
    for axis, length in enumerate(sig_shape):
        coords = np.asarray(excluded_list[axis], dtype=np.int64).reshape(-1)
        adjusted_shape_inout[axis] = _adjust_axis(
            int(adjusted_shape_inout[axis]), int(length), max(1, int(base_shape[axis])), coords
        )


def _check_frame(a, what: str):
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise _detector().CorrectError(
            f"{what} must be an array of the signal shape, got a scalar"
        )
    return _detector().check_real(arr, what)


def _to_coo(excluded_pixels) -> sparse.COO | None:
    """``excluded_pixels`` as ``sparse.COO`` (dtype kept; non-zero entries are excluded)."""
    if excluded_pixels is None:
        return None
    import scipy.sparse
    import sparse

    if scipy.sparse.issparse(excluded_pixels):
        # direct; sparseconverter would first compile a capability test (seconds)
        return sparse.COO.from_scipy_sparse(excluded_pixels)
    from sparseconverter import SPARSE_COO, for_backend

    return for_backend(excluded_pixels, SPARSE_COO)


def _has_excluded(excluded: sparse.COO | None) -> bool:
    return excluded is not None and excluded.nnz > 0


class CorrectionSet:
    """Corrections applied to the data on the fly: dark frame, gain map, excluded pixels.

    Each frame is corrected as ``(raw - dark) * gain``, then every excluded
    pixel is replaced by the mean of its valid neighbours (see
    :mod:`libertem.io.corrections.detector`). Pass it to
    ``Context.run_udf(..., corrections=...)``.

    Parameters
    ----------
    dark : numpy.ndarray, optional
        Dark frame to subtract, of the signal shape.
    gain : numpy.ndarray, optional
        Gain map to multiply with, of the signal shape.
    excluded_pixels : sparse.COO, optional
        Mask of the signal shape, non-zero at pixels to patch: a ``sparse.COO``
        or anything :mod:`sparseconverter` converts to one (a dense numpy array
        of any dtype, ``scipy.sparse`` matrices, ...). An empty array excludes
        nothing.
    allow_empty : bool
        Accept excluded pixels that have no valid neighbour (they keep their
        value); otherwise the constructor raises
        :class:`~libertem.io.corrections.detector.RepairValueError`.

    Raises
    ------
    CorrectError
        If the parts have different shapes or are not numeric arrays.
    RepairValueError
        If an excluded pixel has no valid neighbour and ``allow_empty`` is not set.
    """

    def __init__(
        self,
        dark: np.ndarray | None = None,
        gain: np.ndarray | None = None,
        excluded_pixels: sparse.COO | None = None,
        allow_empty: bool = False,
    ):
        self._dark = _check_frame(dark, "dark")
        self._gain = _check_frame(gain, "gain")
        self._excluded_pixels = _to_coo(excluded_pixels)
        self._allow_empty = bool(allow_empty)
        shapes = {
            name: tuple(a.shape)
            for name, a in (
                ("dark", self._dark),
                ("gain", self._gain),
                ("excluded_pixels", self._excluded_pixels),
            )
            if a is not None and (name != "excluded_pixels" or _has_excluded(a))
        }
        if len(set(shapes.values())) > 1:
            raise _detector().CorrectError(f"corrections of different shapes: {shapes}")
        if _has_excluded(self._excluded_pixels) and not self._allow_empty:
            excluded = self._excluded_pixels
            _detector().RepairDescriptor(excluded.shape, excluded, allow_empty=False)
        self._cache: dict = {}

    def get_dark_frame(self) -> np.ndarray | None:
        """The dark frame, or ``None``."""
        return self._dark

    def get_gain_map(self) -> np.ndarray | None:
        """The gain map, or ``None``."""
        return self._gain

    def get_excluded_pixels(self) -> sparse.COO | None:
        """The ``sparse.COO`` mask of excluded pixels (non-zero = excluded), or ``None``."""
        return self._excluded_pixels

    @property
    def allow_empty(self) -> bool:
        """Whether excluded pixels without valid neighbours are accepted."""
        return self._allow_empty

    @property
    def sig_shape(self) -> tuple[int, ...] | None:
        """The signal shape of the corrections, or ``None`` if there are none."""
        for a in (self._dark, self._gain):
            if a is not None:
                return tuple(int(s) for s in a.shape)
        if _has_excluded(self._excluded_pixels):
            return tuple(int(s) for s in self._excluded_pixels.shape)
        return None

    def have_corrections(self) -> bool:
        """Whether applying this set changes any data."""
        return (
            self._dark is not None
            or self._gain is not None
            or _has_excluded(self._excluded_pixels)
        )

    def check_sig_shape(self, sig_shape: Sequence[int]) -> None:
        """Check that the corrections fit frames of ``sig_shape``.

        Raises
        ------
        CorrectError
            Naming the part whose shape differs.
        """
        own = self.sig_shape
        sig_shape = tuple(int(s) for s in sig_shape)
        if own is not None and own != sig_shape:
            parts = [
                name
                for name, a in (
                    ("dark frame", self._dark),
                    ("gain map", self._gain),
                    ("excluded pixels", self._excluded_pixels),
                )
                if a is not None and (name != "excluded pixels" or _has_excluded(a))
            ]
            raise _detector().CorrectError(
                f"the corrections ({', '.join(parts)}) have shape {own}, "
                f"the data's signal shape is {sig_shape}"
            )

    def adjust_tileshape(self, tile_shape, sig_shape, base_shape):
        """A tile shape near ``tile_shape`` whose tiles keep excluded pixels with their
        neighbours.

        Without excluded pixels, ``tile_shape`` is returned as it is. Otherwise
        each signal axis ``d`` is adjusted on its own, so that no tile starts at
        an excluded pixel or right after one:

        1. An axis of length at most 1 is kept.
        2. If more than a third of the positions along ``d`` hold excluded
           pixels, the tiles span the axis.
        3. Otherwise the size is searched among multiples of ``base_shape[d]``
           (see :func:`disjunct_multiplier`), starting at the one closest to the
           wanted size; a wanted size that is a multiple of the size found (and
           at least 2 if a pixel at position 0 is excluded) is kept.

        Parameters
        ----------
        tile_shape : tuple of int
            Wanted tile shape: the signal part, optionally preceded by the depth.
        sig_shape : tuple of int
            The dataset's signal shape.
        base_shape : tuple of int
            The dataset's natural block, like ``tile_shape`` with or without depth.

        Returns
        -------
        tuple
            The adjusted tile shape (numpy integers), as many entries as
            ``tile_shape``.

        Raises
        ------
        CorrectError
            If the corrections do not fit ``sig_shape``.
        """
        sig_shape = tuple(int(s) for s in sig_shape)
        self.check_sig_shape(sig_shape)
        excluded = self._excluded_pixels
        if not _has_excluded(excluded):
            return tile_shape
        d = len(sig_shape)
        adjusted = np.array(tile_shape, dtype=np.int64)
        sig_tile = adjusted[len(adjusted) - d :]
        base = tuple(int(b) for b in base_shape)[-d:]
        adjust(sig_tile, sig_shape, base, _repair().excluded_coords(excluded, sig_shape))
        return tuple(adjusted)

    def _prepared(self, dtype: np.dtype, origin: tuple[int, ...], shape: tuple[int, ...]):
        """Dark, gain (in ``dtype``) and repair descriptor for one signal region, cached."""
        key = (dtype.str, origin, shape)
        entry = self._cache.get(key)
        if entry is None:
            full = self.sig_shape
            if full is not None and len(full) != len(shape):
                raise _detector().CorrectError(
                    f"tile region of shape {shape} does not fit corrections of shape {full}"
                )
            region = tuple(slice(o, o + s) for o, s in zip(origin, shape))
            dark = gain = descriptor = None
            if self._dark is not None:
                dark = np.ascontiguousarray(self._dark[region], dtype=dtype)
            if self._gain is not None:
                gain = np.ascontiguousarray(self._gain[region], dtype=dtype)
            for part in (dark, gain):
                if part is not None and part.shape != shape:
                    raise _detector().CorrectError(
                        f"tile region at {origin} of shape {shape} lies outside the "
                        f"corrections of shape {full}"
                    )
            excluded = self._excluded_pixels
            if _has_excluded(excluded):
                local = excluded[region]
                if tuple(local.shape) != shape:
                    raise _detector().CorrectError(
                        f"tile region at {origin} of shape {shape} lies outside the "
                        f"corrections of shape {full}"
                    )
                if local.nnz > 0:
                    descriptor = _detector().RepairDescriptor(shape, local, self._allow_empty)
            entry = self._cache[key] = (dark, gain, descriptor)
        return entry

    def apply(self, data: np.ndarray, tile_slice: Slice) -> None:
        """Correct a tile in place.

        Parameters
        ----------
        data : numpy.ndarray
            Float array of shape ``(frames, *signal region)``.
        tile_slice : Slice
            The tile's position; its signal part says which region of the frame
            ``data`` holds (the navigation part is not used).

        Raises
        ------
        TypeError
            If ``data`` does not have a float dtype.
        CorrectError
            If the region does not fit the corrections or ``data``.
        """
        if not self.have_corrections():
            return
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"corrections need a float tile buffer, got dtype {data.dtype}")
        sig = tile_slice.shape.sig
        d = len(sig)
        shape = tuple(int(s) for s in sig)
        if tuple(data.shape[data.ndim - d :]) != shape:
            raise _detector().CorrectError(
                f"tile data of shape {data.shape} does not fit the tile slice's "
                f"signal shape {shape}"
            )
        origin = tuple(tile_slice.origin[len(tile_slice.origin) - d :])
        dark, gain, descriptor = self._prepared(data.dtype, origin, shape)
        _detector().apply_prepared(data, d, dark, gain, descriptor)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        parts = [name for name, a in (("dark", self._dark), ("gain", self._gain)) if a is not None]
        if self._excluded_pixels is not None:
            parts.append(f"{self._excluded_pixels.nnz} excluded pixels")
        return f"<CorrectionSet {', '.join(parts) or 'empty'}>"
