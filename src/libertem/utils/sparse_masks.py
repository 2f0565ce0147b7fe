"""Sparse mask stacks, built without Python loops over the masks.

Re-exported by :mod:`libertem.masks`, where users find them, together with the
conversions of :mod:`libertem.common.sparse`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from libertem.common.lazy import LazyModule
from libertem.common.sparse import is_sparse, to_dense, to_sparse

# pydata.sparse (which imports numba) and scipy.sparse: imported when sparse masks
# or data come along
sparse = LazyModule("sparse")

__all__ = [
    "is_sparse",
    "to_dense",
    "to_sparse",
    "sparse_template_multi_stack",
    "sparse_circular_multi_stack",
]


def sparse_template_multi_stack(
    mask_index: Sequence[int],
    offsetX: Sequence[int],
    offsetY: Sequence[int],
    template,
    imageSizeX: int,
    imageSizeY: int,
) -> sparse.COO:
    """A stack of copies of ``template`` placed at different positions.

    Mask ``mask_index[i]`` holds ``template`` with its top-left corner at
    ``(offsetY[i], offsetX[i])``. Parts that fall outside the image are clipped,
    so offsets may be negative or run past the border. Built without Python loops.

    Parameters
    ----------
    mask_index
        Position of each placement in the stack, non-negative. Usually
        ``range(n)``. Placements sharing an index are summed.
    offsetX, offsetY
        Column and row of the top-left corner of each placement, same length as
        ``mask_index``.
    template
        2D template (dense or sparse). Only its nonzero entries are stored.
    imageSizeX, imageSizeY
        Width and height of each mask.

    Returns
    -------
    sparse.COO
        Stack of shape ``(max(mask_index) + 1, imageSizeY, imageSizeX)`` with the
        dtype of ``template``.

    Raises
    ------
    ValueError
        If the three sequences differ in length or an index is negative.
    """
    index = np.asarray(mask_index, dtype=np.intp).reshape(-1)
    offsetX = np.asarray(offsetX, dtype=np.intp).reshape(-1)
    offsetY = np.asarray(offsetY, dtype=np.intp).reshape(-1)
    n = len(index)
    if len(offsetX) != n or len(offsetY) != n:
        raise ValueError(
            f"mask_index, offsetX and offsetY differ in length: {n}, {len(offsetX)}, "
            f"{len(offsetY)}"
        )
    if n and index.min() < 0:
        raise ValueError("mask_index values must not be negative")
    n_masks = int(index.max()) + 1 if n else 0
    template = to_dense(template)
    if template.ndim != 2:
        raise ValueError(f"template must be 2D, got shape {template.shape}")
    ty, tx = np.nonzero(template)
    values = template[ty, tx]
    # One row per placement, one column per nonzero template pixel.
    ys = offsetY[:, np.newaxis] + ty[np.newaxis, :]
    xs = offsetX[:, np.newaxis] + tx[np.newaxis, :]
    inside = (ys >= 0) & (ys < imageSizeY) & (xs >= 0) & (xs < imageSizeX)
    masks = np.broadcast_to(index[:, np.newaxis], ys.shape)[inside]
    data = np.broadcast_to(values[np.newaxis, :], ys.shape)[inside]
    coords = np.stack([masks, ys[inside], xs[inside]])
    # np.nonzero is row-major, so the coordinates are already sorted and unique
    # when the mask indices are strictly increasing.
    ordered = bool(np.all(np.diff(index) > 0))
    return sparse.COO(
        coords,
        data,
        shape=(n_masks, imageSizeY, imageSizeX),
        sorted=ordered,
        has_duplicates=not ordered,
    )


def sparse_circular_multi_stack(
    mask_index: Sequence[int],
    centerX: Sequence[float],
    centerY: Sequence[float],
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
) -> sparse.COO:
    """A stack of disks of one radius at many positions, as a sparse array.

    The disk is drawn once in an odd-sized square template around its central
    pixel and placed with that pixel on ``(int(centerY[i]), int(centerX[i]))``, so
    the centres are truncated to whole pixels.

    Parameters
    ----------
    mask_index
        Position of each disk in the stack, see :func:`sparse_template_multi_stack`.
    centerX, centerY
        Centre of each disk (column, row).
    imageSizeX, imageSizeY
        Width and height of each mask.
    radius
        Radius of the disks.

    Returns
    -------
    sparse.COO
        Boolean stack of shape ``(max(mask_index) + 1, imageSizeY, imageSizeX)``.
    """
    from libertem.masks import circular

    size = int(2 * np.ceil(radius) + 1)
    middle = (size - 1) // 2
    template = circular(middle, middle, size, size, radius)
    return sparse_template_multi_stack(
        mask_index=mask_index,
        offsetX=np.asarray(centerX).astype(int) - middle,
        offsetY=np.asarray(centerY).astype(int) - middle,
        template=template,
        imageSizeX=imageSizeX,
        imageSizeY=imageSizeY,
    )
