"""Tiling schemes: how a partition is cut into tiles, negotiated once per run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

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
    """Tiles of ``depth`` frames times one of the signal regions in :attr:`slices`.

    Parameters
    ----------
    depth
        Frames per tile (the last tile of a partition may hold fewer).
    sig_tile_shape
        Shape of the signal regions; those at the far edges may be smaller.
    sig_shape
        The dataset's signal shape.
    """

    def __init__(self, depth: int, sig_tile_shape: Sequence[int], sig_shape: Sequence[int]):
        self.depth = int(depth)
        self.sig_tile_shape = tuple(int(s) for s in sig_tile_shape)
        self.sig_shape = tuple(int(s) for s in sig_shape)
        if self.depth < 1:
            raise ValueError("tile depth must be at least 1")
        if len(self.sig_tile_shape) != len(self.sig_shape):
            raise ValueError("tile shape and signal shape differ in dimensions")
        self.slices = _cover(self.sig_tile_shape, self.sig_shape)

    @property
    def shape(self) -> Shape:
        """Shape of a full tile: ``(depth, *sig_tile_shape)``."""
        return Shape((self.depth, *self.sig_tile_shape), sig_dims=len(self.sig_shape))

    @property
    def full_frames(self) -> bool:
        """Whether every tile holds whole frames."""
        return self.sig_tile_shape == self.sig_shape

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> Slice:
        return self.slices[index]

    def __repr__(self) -> str:
        return f"TilingScheme(depth={self.depth}, sig_tile_shape={self.sig_tile_shape})"


def _cover(tile: tuple[int, ...], full: tuple[int, ...]) -> list[Slice]:
    """Signal slices of (at most) shape ``tile`` that cover ``full`` exactly once, C order."""
    ranges = [[(o, min(t, f - o)) for o in range(0, f, t)] for t, f in zip(tile, full)]
    slices = [((), ())]
    for axis in ranges:
        slices = [(o + (a,), s + (b,)) for o, s in slices for a, b in axis]
    sig_dims = len(full)
    return [Slice(o, Shape(s, sig_dims=sig_dims)) for o, s in slices]


def make_tiling_scheme(
    request: TilingRequest,
    sig_shape: Sequence[int],
    base_shape: Sequence[int],
    itemsize: int,
    max_depth: int,
    preferred_depth: int | None = None,
) -> TilingScheme:
    """Negotiate a tiling scheme between the consumers and the dataset.

    Parameters
    ----------
    request
        What the consumers need.
    sig_shape
        The dataset's signal shape.
    base_shape
        The dataset's natural signal block: tile sides are multiples of it
        (or the full axis).
    itemsize
        Bytes per element of the largest input dtype.
    max_depth
        Frames in the largest partition: no tile is deeper.
    preferred_depth
        The dataset's natural depth, used when the consumers state none.
    """
    sig_shape = tuple(int(s) for s in sig_shape)
    base = tuple(min(int(b), s) for b, s in zip(base_shape, sig_shape))
    max_depth = max(1, int(max_depth))
    if request.whole_partition:
        return TilingScheme(max_depth, sig_shape, sig_shape)
    total = max(int(request.total_size), itemsize)
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
    tile_bytes = prod(tile) * itemsize
    depth = wanted_depth if wanted_depth is not None else total // tile_bytes
    depth = max(1, min(depth, max_depth))
    return TilingScheme(depth, tile, sig_shape)
