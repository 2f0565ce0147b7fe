"""Negotiating the tiling scheme of a run: what the UDFs want of their tiles, the
dataset's natural blocks and I/O limits, and the corrections, agreed on once per run
(the rules themselves are :func:`~libertem.io.dataset.base.tiling.make_tiling_scheme`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import prod
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.shape import Shape
from libertem.common.udf import TileDepthEnum, TileSizeEnum
from libertem.io.dataset.base.tiling import (
    DEFAULT_TILE_BYTES,
    LARGE_TILE_BYTES,
    TilingRequest,
    TilingScheme,
    adjust_scheme,
    make_tiling_scheme,
    sig_base_shape,
)
from libertem.udf.mixins import find_method

if TYPE_CHECKING:
    from libertem.udf.classes import UDF


def _have(corrections) -> bool:
    return corrections is not None and corrections.have_corrections()


def _is_inf(value) -> bool:
    return isinstance(value, (int, float)) and math.isinf(value)


def tiling_request(udfs: Sequence[UDF], methods: Sequence[str]) -> TilingRequest:
    """What the UDFs together want of the tiles."""
    sizes, depths = [], []
    for udf in udfs:
        prefs = udf.get_tiling_preferences() or {}
        size = prefs.get("total_size", TileSizeEnum.BEST_FIT)
        if size in (TileSizeEnum.BEST_FIT, TileSizeEnum.BEST_FIT.value):
            sizes.append(DEFAULT_TILE_BYTES)
        elif _is_inf(size):
            sizes.append(LARGE_TILE_BYTES)
        else:
            sizes.append(max(1, int(size)))
        depth = prefs.get("depth", TileDepthEnum.DEFAULT)
        if depth in (TileDepthEnum.DEFAULT, TileDepthEnum.DEFAULT.value):
            continue
        depths.append(None if _is_inf(depth) else max(1, int(depth)))
    whole = any(m == "partition" for m in methods) or (
        bool(depths) and all(d is None for d in depths)
    )
    finite = [d for d in depths if d is not None]
    return TilingRequest(
        total_size=min(sizes) if sizes else DEFAULT_TILE_BYTES,
        depth=min(finite) if finite else None,
        full_frames=any(m != "tile" for m in methods),
        whole_partition=whole,
    )


def negotiate(
    udfs: Sequence[UDF],
    methods: Sequence[str],
    dataset,
    itemsize: int,
    max_depth: int,
    sig_shape: Sequence[int] | None = None,
    roi: np.ndarray | None = None,
    corrections=None,
) -> TilingScheme:
    """The tiling scheme for running ``udfs`` (processing with ``methods``) on ``dataset``.

    Parameters
    ----------
    udfs, methods
        The UDFs and the processing method each uses (``'tile'``, ``'frame'``,
        ``'partition'``).
    dataset
        The (initialized) dataset: its base shape, preferred depth, I/O limit and
        ``adjust_tileshape`` count.
    itemsize
        Bytes per element of the largest input dtype.
    max_depth
        Frames in the largest partition: no tile is deeper.
    sig_shape
        The signal shape (default: the dataset's).
    roi
        The ROI, passed to the dataset's ``get_base_shape`` and ``adjust_tileshape``.
    corrections
        A ``CorrectionSet``; tiles are cut so that it can be applied per tile.
    """
    sig_shape = tuple(dataset.shape.sig) if sig_shape is None else tuple(sig_shape)
    request = tiling_request(udfs, methods)
    scheme = make_tiling_scheme(
        request,
        sig_shape,
        tuple(dataset.get_base_shape(roi)),  # LiberTEM datasets require the roi argument
        itemsize,
        max_depth,
        dataset.get_preferred_depth(),
        corrections=corrections if _have(corrections) else None,
        dataset_shape=dataset.shape,
        max_io_size=dataset.get_max_io_size(),
    )
    return adjust_scheme(scheme, dataset, roi, request.full_frames)


def negotiate_scheme(
    udfs: Sequence[UDF],
    methods: Sequence[str],
    dataset,
    partitions: Sequence,
    input_dtypes: Sequence[np.dtype],
    sig_shape: tuple[int, ...],
    corrections,
) -> TilingScheme:
    """The tiling scheme of a run of ``udfs`` over ``partitions`` (see :func:`negotiate`)."""
    return negotiate(
        udfs,
        methods,
        dataset,
        max(d.itemsize for d in input_dtypes),
        max((p.stop - p.start for p in partitions), default=1),
        sig_shape,
        None,
        corrections,
    )


class Negotiator:
    """Agrees on a tiling scheme between UDFs, a dataset (its natural blocks and I/O
    limits) and corrections (LiberTEM's interface of :func:`negotiate`)."""

    def get_scheme(
        self,
        udfs: Sequence,
        dataset,
        read_dtype,
        approx_partition_shape: Shape,
        roi: np.ndarray | None = None,
        corrections=None,
    ) -> TilingScheme:
        """The tiling scheme for running ``udfs`` together on ``dataset``.

        Parameters
        ----------
        udfs
            The UDFs; their methods (tile, frame, partition) and tiling preferences count.
        dataset
            The (initialized) dataset.
        read_dtype
            Dtype the tiles are read in.
        approx_partition_shape
            Shape of the largest partition (flat navigation axis first): no tile is deeper.
        roi
            The ROI, passed to the dataset's ``get_base_shape`` and ``adjust_tileshape``.
        corrections
            A ``CorrectionSet``; tiles are cut so that it can be applied per tile.
        """
        methods = [find_method(udf) for udf in udfs]
        itemsize = np.dtype(read_dtype).itemsize
        scheme = negotiate(
            udfs,
            methods,
            dataset,
            itemsize,
            int(approx_partition_shape[0]),
            roi=roi,
            corrections=corrections,
        )
        sig_shape = tuple(dataset.shape.sig)
        tileshape = tuple(scheme.shape)
        self.validate(
            tileshape,
            sig_shape,
            prod(tileshape) * itemsize,
            dataset.get_max_io_size(),
            itemsize,
            sig_base_shape(dataset.get_base_shape(roi), sig_shape),
            corrections,
        )
        return scheme

    def validate(
        self,
        shape: tuple[int, ...],
        ds_sig_shape: tuple[int, ...],
        size: int,
        io_max_size: int | None,
        itemsize: int,
        base_shape: tuple[int, ...],
        corrections,
    ) -> None:
        """Check a tile shape ``(depth, *sig)`` of ``size`` bytes against the dataset.

        Raises
        ------
        ValueError
            If the signal part does not fit the frame, is not made of whole base
            blocks (or whole axes), exceeds ``io_max_size`` bytes by more than one
            frame row of blocks, or does not suit the ``corrections``.
        """
        shape = tuple(int(s) for s in shape)
        sig = shape[1:]
        if len(sig) != len(ds_sig_shape):
            raise ValueError(f"tile shape {shape} does not fit signal shape {ds_sig_shape}")
        if shape[0] < 1 or any(not 1 <= t <= s for t, s in zip(sig, ds_sig_shape)):
            raise ValueError(f"tile shape {shape} does not fit in frames of {ds_sig_shape}")
        for t, s, b in zip(sig, ds_sig_shape, base_shape):
            if t != s and t % min(int(b), s):
                raise ValueError(
                    f"tile shape {shape} is not made of base blocks {tuple(base_shape)}"
                )
        if size != prod(shape) * int(itemsize):
            raise ValueError(f"tile shape {shape} x {itemsize} bytes is not {size} bytes")
        smallest = prod(min(int(b), s) for b, s in zip(base_shape, ds_sig_shape)) * itemsize
        if io_max_size is not None and size > max(int(io_max_size), smallest):
            raise ValueError(f"tiles of {size} bytes exceed the I/O limit of {io_max_size} bytes")
        if _have(corrections):
            adjusted = tuple(corrections.adjust_tileshape(sig, ds_sig_shape, base_shape))
            # whole frames never separate an excluded pixel from its neighbours
            if adjusted != sig and sig != tuple(ds_sig_shape):
                raise ValueError(
                    f"tile shape {shape} cuts through excluded pixel neighbourhoods; "
                    f"the corrections need {adjusted}"
                )


__all__ = ["Negotiator", "negotiate", "negotiate_scheme", "tiling_request"]
