"""Tiling schemes: how a partition is cut into tiles, negotiated once per run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Literal

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.common.shape import Shape
from libertem.common.slice import Slice

DEFAULT_TILE_BYTES = 1024 * 1024
LARGE_TILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TilingRequest:
    """What the consumers of a run need from the tiles.

    Attributes
    ----------
    total_size
        Wanted bytes per tile (of the input dtype).
    depth
        Wanted frames per tile, or ``None`` to derive it from ``total_size``.
    full_frames
        Tiles must hold whole frames (a ``process_frame`` consumer).
    whole_partition
        One tile per partition (a ``process_partition`` consumer).
    """

    total_size: int = DEFAULT_TILE_BYTES
    depth: int | None = None
    full_frames: bool = False
    whole_partition: bool = False


class TilingScheme:
    """How partitions are cut into tiles: ``depth`` frames times one of the signal
    regions in :attr:`slices`.

    Usually made with :meth:`make_for_shape` or negotiated (:func:`make_tiling_scheme`,
    :class:`~libertem.udf.negotiation.Negotiator`).

    Parameters
    ----------
    slices
        Signal-only slices that cover the frame exactly once, in C order.
    tileshape
        Shape of a full tile, ``(depth, *signal tile shape)``; slices at the far edges
        of the frame may be smaller.
    dataset_shape
        Shape of the dataset.
    intent
        What the tiles are for: ``'partition'`` (one tile per partition), ``'frame'``
        (whole frames), ``'tile'``, or ``None``.
    debug
        Anything that tells how the scheme was made (shown by ``repr``).
    """

    def __init__(
        self,
        slices: list[Slice],
        tileshape: Shape,
        dataset_shape: Shape,
        intent: Literal["partition", "frame", "tile"] | None = None,
        debug=None,
    ):
        if not isinstance(tileshape, Shape):
            raise TypeError(f"tileshape must be a Shape, got {type(tileshape).__name__}")
        if not isinstance(dataset_shape, Shape):
            raise TypeError(f"dataset_shape must be a Shape, got {type(dataset_shape).__name__}")
        if intent not in (None, "partition", "frame", "tile"):
            raise ValueError(
                f"intent must be 'partition', 'frame', 'tile' or None, not {intent!r}"
            )
        self._tileshape = tileshape
        self._dataset_shape = dataset_shape
        self._intent = intent
        self._debug = debug
        self._depth = int(tileshape[0])
        self.sig_tile_shape = tuple(int(s) for s in tileshape[1:])
        self.sig_shape = tuple(int(s) for s in dataset_shape.sig)
        if self._depth < 1:
            raise ValueError("tile depth must be at least 1")
        if len(self.sig_tile_shape) != len(self.sig_shape):
            raise ValueError(
                f"tile shape {tuple(tileshape)} and signal shape {self.sig_shape} differ "
                "in dimensions"
            )
        self._slices = list(slices)
        self._slices_array = None

    @classmethod
    def make_for_shape(
        cls,
        tileshape: Shape | Sequence[int],
        dataset_shape: Shape,
        intent: Literal["partition", "frame", "tile"] | None = None,
        debug=None,
    ) -> TilingScheme:
        """The scheme of tiles of ``tileshape`` (``(depth, *signal tile shape)``), whose
        signal regions cover the frames of ``dataset_shape`` exactly once."""
        sig_dims = dataset_shape.sig_dims
        if not isinstance(tileshape, Shape):
            tileshape = Shape(tuple(int(s) for s in tileshape), sig_dims=sig_dims)
        sig_tile = tuple(int(s) for s in tileshape[1:])
        sig = tuple(int(s) for s in dataset_shape.sig)
        if len(sig_tile) != len(sig):
            raise ValueError(f"tile shape {tuple(tileshape)} does not fit signal shape {sig}")
        if any(t < 1 for t in sig_tile):
            raise ValueError(f"tile shape {tuple(tileshape)} must be positive")
        sig_tile = tuple(min(t, s) for t, s in zip(sig_tile, sig))
        tileshape = Shape((int(tileshape[0]), *sig_tile), sig_dims=len(sig))
        return cls(_cover(sig_tile, sig), tileshape, dataset_shape, intent, debug)

    def adjust_for_partition(self, partition) -> TilingScheme:
        """This scheme for ``partition``: no deeper than its frames (exactly as deep for
        the ``'partition'`` intent)."""
        n = int(partition.shape[0])
        depth = n if self._intent == "partition" else min(self.depth, n)
        depth = max(1, depth)
        if depth == self.depth:
            return self
        tileshape = Shape((depth, *self.sig_tile_shape), sig_dims=len(self.sig_shape))
        return TilingScheme(self.slices, tileshape, self._dataset_shape, self._intent, self._debug)

    @property
    def depth(self) -> int:
        """Frames per tile (the last tile of a partition may hold fewer)."""
        return self._depth

    @property
    def slices(self) -> list[Slice]:
        """The signal slices of the tiles, in C order."""
        return self._slices

    @property
    def shape(self) -> Shape:
        """Shape of a full tile: ``(depth, *sig_tile_shape)``."""
        return self._tileshape

    @property
    def dataset_shape(self) -> Shape:
        """Shape of the dataset the scheme was made for."""
        return self._dataset_shape

    @property
    def intent(self) -> str | None:
        """``'partition'``, ``'frame'``, ``'tile'`` or ``None``."""
        return self._intent

    @property
    def debug(self):
        """How the scheme was made."""
        return self._debug

    @property
    def slices_array(self) -> np.ndarray:
        """The signal slices as an ``int64`` array ``(n, 2, sig_dims)``: origins, shapes."""
        if self._slices_array is None:
            self._slices_array = np.array(
                [(s.origin, tuple(s.shape)) for s in self.slices], dtype=np.int64
            ).reshape((len(self.slices), 2, len(self.sig_shape)))
        return self._slices_array

    @property
    def full_frames(self) -> bool:
        """Whether every tile holds whole frames."""
        return self.sig_tile_shape == self.sig_shape

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> Slice:
        return self.slices[index]

    def __repr__(self) -> str:
        return (
            f"TilingScheme(depth={self.depth}, sig_tile_shape={self.sig_tile_shape}, "
            f"intent={self._intent!r}, tiles per block={len(self.slices)})"
        )


def _cover(tile: tuple[int, ...], full: tuple[int, ...]) -> list[Slice]:
    """Signal slices of (at most) shape ``tile`` that cover ``full`` exactly once, C order."""
    ranges = [[(o, min(t, f - o)) for o in range(0, f, t)] for t, f in zip(tile, full)]
    slices = [((), ())]
    for axis in ranges:
        slices = [(o + (a,), s + (b,)) for o, s in slices for a, b in axis]
    sig_dims = len(full)
    return [Slice(o, Shape(s, sig_dims=sig_dims)) for o, s in slices]


def sig_base_shape(base_shape: Sequence[int], sig_shape: Sequence[int]) -> tuple[int, ...]:
    """The signal part of a dataset's base shape, which is either just that or, as
    LiberTEM writes it, ``(1, *signal block)``."""
    base = tuple(int(b) for b in base_shape)
    if len(base) == len(sig_shape) + 1:
        return base[1:]
    return base


def make_tiling_scheme(
    request: TilingRequest,
    sig_shape: Sequence[int],
    base_shape: Sequence[int],
    itemsize: int,
    max_depth: int,
    preferred_depth: int | None = None,
    corrections=None,
    dataset_shape: Shape | None = None,
    max_io_size: int | None = None,
) -> TilingScheme:
    """Negotiate a tiling scheme between the consumers and the dataset.

    Parameters
    ----------
    request
        What the consumers need.
    sig_shape
        The dataset's signal shape.
    base_shape
        The dataset's natural block: tile sides are multiples of it (or the full
        axis); the signal part, or LiberTEM's form with a leading depth axis.
    itemsize
        Bytes per element of the largest input dtype.
    max_depth
        Frames in the largest partition: no tile is deeper.
    preferred_depth
        The dataset's natural depth, used when the consumers state none.
    corrections
        A ``CorrectionSet`` applied to the tiles, or ``None``: it checks that it
        fits ``sig_shape`` and adjusts the signal tile shape (see its
        ``adjust_tileshape``).
    dataset_shape
        Shape of the dataset, recorded in the scheme; by default one partition of
        ``max_depth`` frames of ``sig_shape``.
    max_io_size
        Most bytes per tile the dataset's I/O reads at once (e.g. an I/O backend's
        buffer size), or ``None``.
    """
    sig_shape = tuple(int(s) for s in sig_shape)
    if dataset_shape is None:
        dataset_shape = Shape((max(1, int(max_depth)), *sig_shape), sig_dims=len(sig_shape))
    base = tuple(min(int(b), s) for b, s in zip(sig_base_shape(base_shape, sig_shape), sig_shape))
    max_depth = max(1, int(max_depth))
    if request.whole_partition:
        if corrections is not None:
            corrections.adjust_tileshape(sig_shape, sig_shape, base)
        return TilingScheme.make_for_shape((max_depth, *sig_shape), dataset_shape, "partition")
    total = max(int(request.total_size), itemsize)
    if max_io_size is not None:
        total = max(itemsize, min(total, int(max_io_size)))
    wanted_depth = request.depth if request.depth is not None else preferred_depth
    wanted_depth = None if wanted_depth is None else max(1, min(int(wanted_depth), max_depth))
    # with a wanted depth, the signal region shrinks so that depth x region fits the size
    per_frame = total if wanted_depth is None else max(itemsize, total // wanted_depth)
    tile = list(sig_shape)
    if not request.full_frames:
        # shrink from the first signal axis on, in steps of the natural block
        for axis in range(len(tile)):
            if prod(tile) * itemsize <= per_frame:
                break
            others = prod(tile[:axis]) * prod(tile[axis + 1 :]) * itemsize
            fit = max(1, per_frame // others)
            tile[axis] = max(base[axis], (fit // base[axis]) * base[axis])
            tile[axis] = min(tile[axis], sig_shape[axis])
    if corrections is not None:
        adjusted = corrections.adjust_tileshape(tuple(tile), sig_shape, base)
        # whole frames never separate an excluded pixel from its neighbours
        if not request.full_frames:
            tile = list(adjusted)
    tile_bytes = prod(tile) * itemsize
    depth = wanted_depth if wanted_depth is not None else total // tile_bytes
    depth = max(1, min(depth, max_depth))
    intent = "frame" if request.full_frames else "tile"
    return TilingScheme.make_for_shape((depth, *tile), dataset_shape, intent)


def adjust_scheme(scheme: TilingScheme, dataset, roi, full_frames: bool) -> TilingScheme:
    """``scheme`` with the tile shape the dataset asks for (``adjust_tileshape``; e.g. a
    ``MemoryDataSet`` with a fixed ``tileshape``).

    Raises
    ------
    ValueError
        If consumers need whole frames (``full_frames``) and the dataset's tile shape
        does not hold them.
    """
    tileshape = tuple(int(t) for t in dataset.adjust_tileshape(tuple(scheme.shape), roi))
    if tileshape == tuple(scheme.shape):
        return scheme
    sig = tuple(int(s) for s in dataset.shape.sig)
    if full_frames:
        base = (1, *sig)
        for dim, (t, b) in enumerate(zip(tileshape, base)):
            if t % b:
                raise ValueError(
                    f"The tileshape {tileshape} is incompatible with base shape {base} "
                    f"and dataset shape {sig} in dimension {dim}."
                )
    return TilingScheme.make_for_shape(tileshape, dataset.shape, scheme.intent)


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "DataTile": "libertem.io.dataset.base.tiles",
        "cached_njit": "libertem.common.numba",
        "default_get_read_ranges": "libertem.io.dataset.base.readranges",
        "make_get_read_ranges": "libertem.io.dataset.base.readranges",
    },
)
