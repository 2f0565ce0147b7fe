"""Negotiator: the tiling scheme for a set of UDFs on a dataset, with LiberTEM's interface."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from libertem.common.shape import Shape
from libertem.io.dataset.base.tiling import TilingScheme, make_tiling_scheme, sig_base_shape


def _have(corrections) -> bool:
    return corrections is not None and corrections.have_corrections()


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


class Negotiator:
    """Agrees on a tiling scheme between UDFs, a dataset (its natural blocks and I/O
    limits) and corrections; built on :func:`make_tiling_scheme`."""

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
        from libertem.udf.base import find_method
        from libertem.udf.main_udf import tiling_request

        methods = [find_method(udf) for udf in udfs]
        request = tiling_request(udfs, methods)
        itemsize = np.dtype(read_dtype).itemsize
        base = sig_base_shape(dataset.get_base_shape(roi), tuple(dataset.shape.sig))
        corrections = corrections if _have(corrections) else None
        max_io = dataset.get_max_io_size()
        scheme = make_tiling_scheme(
            request,
            tuple(dataset.shape.sig),
            base,
            itemsize,
            int(approx_partition_shape[0]),
            dataset.get_preferred_depth(),
            corrections=corrections,
            dataset_shape=dataset.shape,
            max_io_size=max_io,
        )
        scheme = adjust_scheme(scheme, dataset, roi, request.full_frames)
        tileshape = tuple(scheme.shape)
        self.validate(
            tileshape,
            tuple(dataset.shape.sig),
            prod(tileshape) * itemsize,
            max_io,
            itemsize,
            base,
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
