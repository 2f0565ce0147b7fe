"""`CorrectionSet`: the corrections applied to every tile of a run, and tile-shape adjustment.

Excluded pixels are patched from their neighbours within one tile. So that a
tile that cuts the frame gives the same result as a whole frame, the tiling is
adjusted (:meth:`CorrectionSet.adjust_tileshape`): no tile border may pass
between an excluded pixel and one of its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sparse

from libertem.common.slice import Slice
from libertem.io.corrections.detector import (
    CorrectError,
    RepairDescriptor,
    apply_prepared,
    check_real,
    correct,
    excluded_coords,
)

__all__ = [
    "CorrectionSet",
    "RepairDescriptor",
    "Slice",
    "adjust",
    "correct",
    "disjunct_multiplier",
]


def _crossing(excluded: np.ndarray, size: int, length: int) -> bool:
    """Whether tiles of ``size`` along an axis of ``length`` separate an excluded pixel
    from a neighbour."""
    if size >= length or excluded.size == 0:
        return False
    pos = excluded % size
    first = (pos == 0) & (excluded > 0)
    last = (pos == size - 1) & (excluded < length - 1)
    return bool(np.any(first | last))


def disjunct_multiplier(excluded, sig_shape, base_shape=1, target=1) -> int:
    """A multiple of ``base_shape`` for the tile size along one axis that keeps pixels whole.

    Tiles of size ``m * base_shape`` along an axis of length ``sig_shape`` have
    borders at the multiples of that size. The multiplier ``m`` returned is the
    one closest to ``target`` (the larger one at equal distance) for which no
    border lies between an excluded pixel and its neighbours; tiles spanning the
    whole axis always qualify.

    Parameters
    ----------
    excluded : array-like of int
        Coordinates of the excluded pixels along this axis.
    sig_shape : int
        Length of the axis.
    base_shape : int
        The tile size is a multiple of this.
    target : int
        The wanted multiplier.

    Returns
    -------
    int
        The multiplier, at least 1.
    """
    excluded = np.asarray(excluded, dtype=np.int64).reshape(-1)
    length, base = int(sig_shape), max(1, int(base_shape))
    top = max(1, -(-length // base))
    target = min(max(1, int(target)), top)
    for step in range(top + 1):
        for m in (target + step, target - step):
            if 1 <= m <= top and not _crossing(excluded, m * base, length):
                return m
    return top  # pragma: no cover - m == top spans the axis and always qualifies


def adjust(adjusted_shape_inout, sig_shape, base_shape, excluded_list) -> None:
    """Adjust a signal tile shape in place so that tiles keep excluded pixels whole.

    Parameters
    ----------
    adjusted_shape_inout : list or numpy.ndarray of int
        The signal tile shape, changed in place along every axis the tiles cut.
    sig_shape, base_shape : sequence of int
        The signal shape and the natural block of the data (tile sides are multiples).
    excluded_list : sequence of arrays
        Per signal axis, the coordinates of the excluded pixels along it (the
        rows of ``sparse.COO.coords``).
    """
    for axis, (size, length) in enumerate(zip(adjusted_shape_inout, sig_shape)):
        if size >= length:
            continue
        base = max(1, int(base_shape[axis]))
        m = disjunct_multiplier(excluded_list[axis], length, base, max(1, round(size / base)))
        adjusted_shape_inout[axis] = min(m * base, int(length))


def _check_frame(a, what: str):
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise CorrectError(f"{what} must be an array of the signal shape, got a scalar")
    return check_real(arr, what)


def _to_coo(excluded_pixels) -> sparse.COO | None:
    if excluded_pixels is None:
        return None
    if isinstance(excluded_pixels, np.ndarray):
        if excluded_pixels.dtype != bool:
            raise CorrectError(
                f"excluded_pixels must be a boolean mask (sparse.COO or numpy), "
                f"got dtype {excluded_pixels.dtype}"
            )
        return sparse.COO.from_numpy(excluded_pixels)
    try:
        coo = sparse.COO(excluded_pixels)
    except (TypeError, ValueError) as e:
        raise CorrectError(
            f"excluded_pixels must be a boolean mask (sparse.COO or numpy), "
            f"got {type(excluded_pixels).__name__}"
        ) from e
    return coo.astype(bool)


class CorrectionSet:
    """Corrections applied to the data on the fly: dark frame, gain map, excluded pixels.

    Each frame is corrected as ``(raw - dark) * gain``, then every excluded
    pixel is replaced by the median of its valid neighbours (see
    :mod:`libertem.io.corrections.detector`). Pass it to
    ``Context.run_udf(..., corrections=...)``.

    Parameters
    ----------
    dark : numpy.ndarray, optional
        Dark frame to subtract, of the signal shape.
    gain : numpy.ndarray, optional
        Gain map to multiply with, of the signal shape.
    excluded_pixels : sparse.COO, optional
        Boolean mask of the signal shape, ``True`` at pixels to patch (a dense
        boolean numpy array is accepted too).
    allow_empty : bool
        Accept excluded pixels that have no valid neighbour (they are set to
        zero); otherwise they raise
        :class:`~libertem.io.corrections.detector.RepairValueError` when the
        corrections are applied.

    Raises
    ------
    CorrectError
        If the parts have different shapes or are not numeric arrays.
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
            if a is not None
        }
        if len(set(shapes.values())) > 1:
            raise CorrectError(f"corrections of different shapes: {shapes}")
        self._cache: dict = {}

    def get_dark_frame(self) -> np.ndarray | None:
        """The dark frame, or ``None``."""
        return self._dark

    def get_gain_map(self) -> np.ndarray | None:
        """The gain map, or ``None``."""
        return self._gain

    def get_excluded_pixels(self) -> sparse.COO | None:
        """The boolean ``sparse.COO`` mask of excluded pixels, or ``None``."""
        return self._excluded_pixels

    @property
    def allow_empty(self) -> bool:
        """Whether excluded pixels without valid neighbours are accepted."""
        return self._allow_empty

    @property
    def sig_shape(self) -> tuple[int, ...] | None:
        """The signal shape of the corrections, or ``None`` if there are none."""
        for a in (self._dark, self._gain, self._excluded_pixels):
            if a is not None:
                return tuple(int(s) for s in a.shape)
        return None

    def have_corrections(self) -> bool:
        """Whether applying this set changes any data."""
        excluded = self._excluded_pixels
        return (
            self._dark is not None
            or self._gain is not None
            or (excluded is not None and excluded.nnz > 0)
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
                if a is not None
            ]
            raise CorrectError(
                f"the corrections ({', '.join(parts)}) have shape {own}, "
                f"the data's signal shape is {sig_shape}"
            )

    def adjust_tileshape(self, tile_shape, sig_shape, base_shape):
        """A tile shape near ``tile_shape`` that keeps excluded pixels with their neighbours.

        Parameters
        ----------
        tile_shape : tuple of int
            Wanted tile shape: the signal part, optionally preceded by the depth.
        sig_shape : tuple of int
            The dataset's signal shape.
        base_shape : tuple of int
            The dataset's natural block, like ``tile_shape`` with or without depth;
            the adjusted signal sides stay multiples of it (or span the axis).

        Returns
        -------
        tuple of int
            The adjusted tile shape, with as many entries as ``tile_shape``.

        Raises
        ------
        CorrectError
            If the corrections do not fit ``sig_shape``.
        RepairValueError
            If an excluded pixel has no valid neighbour and ``allow_empty`` is not set.
        """
        sig_shape = tuple(int(s) for s in sig_shape)
        self.check_sig_shape(sig_shape)
        if self._excluded_pixels is not None and ("checked", sig_shape) not in self._cache:
            RepairDescriptor(sig_shape, self._excluded_pixels, self._allow_empty)
            self._cache[("checked", sig_shape)] = True
        d = len(sig_shape)
        tile_shape = tuple(int(s) for s in tile_shape)
        lead, sig_tile = tile_shape[: len(tile_shape) - d], list(tile_shape[len(tile_shape) - d :])
        base = tuple(int(b) for b in base_shape)[-d:]
        excluded = self._excluded_pixels
        if excluded is not None and excluded.nnz > 0:
            adjust(sig_tile, sig_shape, base, excluded_coords(excluded, sig_shape))
        return (*lead, *sig_tile)

    def _prepared(self, dtype: np.dtype, origin: tuple[int, ...], shape: tuple[int, ...]):
        """Dark, gain (in ``dtype``) and repair descriptor for one signal region, cached."""
        key = (dtype.str, origin, shape)
        entry = self._cache.get(key)
        if entry is None:
            full = self.sig_shape
            if full is not None and len(full) != len(shape):
                raise CorrectError(
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
                    raise CorrectError(
                        f"tile region at {origin} of shape {shape} lies outside the "
                        f"corrections of shape {full}"
                    )
            excluded = self._excluded_pixels
            if excluded is not None and excluded.nnz > 0:
                local = excluded[region]
                if tuple(local.shape) != shape:
                    raise CorrectError(
                        f"tile region at {origin} of shape {shape} lies outside the "
                        f"corrections of shape {full}"
                    )
                if local.nnz > 0:
                    descriptor = RepairDescriptor(shape, local, self._allow_empty)
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
            raise CorrectError(
                f"tile data of shape {data.shape} does not fit the tile slice's "
                f"signal shape {shape}"
            )
        origin = tuple(tile_slice.origin[len(tile_slice.origin) - d :])
        dark, gain, descriptor = self._prepared(data.dtype, origin, shape)
        apply_prepared(data, d, dark, gain, descriptor)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        parts = [name for name, a in (("dark", self._dark), ("gain", self._gain)) if a is not None]
        if self._excluded_pixels is not None:
            parts.append(f"{self._excluded_pixels.nnz} excluded pixels")
        return f"<CorrectionSet {', '.join(parts) or 'empty'}>"
