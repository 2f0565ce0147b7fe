"""Partitioning arithmetic for datasets.

:func:`get_partition_shape` decides how many frames go into a partition; the
other names LiberTEM has in this module (``get_owner_name``, ``prod``, ``Shape``)
are re-exported on access from where they live.
"""

from __future__ import annotations

from libertem.common.lazy import lazy_names
from libertem.common.math import prod
from libertem.common.shape import Shape


def get_partition_shape(
    dataset_shape: Shape, target_size_items: int, min_num: int, num_cores: int
) -> tuple[int, ...]:
    """The shape of a partition (all axes) of about ``target_size_items`` elements.

    Signal axes are whole. The navigation axes fill up from the fastest one, so
    that a partition is a contiguous run of frames: an axis is taken whole only
    while the frames still fit, the slower axes then have extent 1.

    Parameters
    ----------
    dataset_shape
        Shape of the dataset (or of the region to partition).
    target_size_items
        Wanted number of elements (frames x pixels per frame) per partition; a
        partition has at least one frame.
    min_num
        At least this many partitions (if there are that many frames).
    num_cores
        Also at least this many partitions, one per core.

    Returns
    -------
    tuple of int
        The partition shape, navigation axes first.

    Examples
    --------
    >>> get_partition_shape(Shape((16, 16, 8, 8), sig_dims=2), 64 * 32, 1, 1)
    (2, 16, 8, 8)
    >>> get_partition_shape(Shape((16, 16, 8, 8), sig_dims=2), 64 * 512, 4, 1)
    (4, 16, 8, 8)
    """
    shape = tuple(dataset_shape)
    sig_dims = dataset_shape.sig_dims
    nav, sig = shape[: len(shape) - sig_dims], shape[len(shape) - sig_dims :]
    frame_items = max(1, prod(sig))
    n_frames = prod(nav)
    frames = max(1, int(target_size_items) // frame_items)
    min_parts = max(1, int(min_num or 1), int(num_cores or 1))
    if min_parts > 1:
        frames = min(frames, max(1, n_frames // min_parts))
    out: list[int] = []
    for extent in reversed(nav):
        take = max(1, min(extent, frames))
        out.insert(0, take)
        frames = frames // extent if take == extent else 1
    return (*out, *sig)


_WHERE = {"get_owner_name": "libertem.io.fs"}
__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = ["Shape", "get_partition_shape", "prod", *_WHERE]
