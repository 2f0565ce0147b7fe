"""DataSetMeta: what workers need to know about a dataset, without the dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem.common.lazy import lazy_names
from libertem.common.shape import Shape

#: array backends of datasets with dense frames
DENSE_BACKENDS = ("numpy", "cupy")


class DataSetMeta:
    """Shape, dtypes and extra facts of a dataset, shipped to partitions and UDFs.

    Parameters
    ----------
    shape
        Shape of the dataset, navigation axes first.
    array_backends
        Array backends the dataset hands out tiles in (``'numpy'``, sparse ones, ...);
        by default the dense ones, ``('numpy', 'cupy')``.
    image_count
        Number of frames stored in the file(s), which may differ from the number of
        positions in ``shape`` (see ``sync_offset``).
    raw_dtype
        Dtype of the values as they are decoded from the file (the native dtype).
    dtype
        Dtype the dataset presents its data in; by default ``raw_dtype``.
    metadata
        Format-specific facts (a dict, usually), indexable with ``meta[key]``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    """

    def __init__(
        self,
        shape: Shape,
        array_backends: Sequence[str] | None = None,
        image_count: int = 0,
        raw_dtype=None,
        dtype=None,
        metadata: Any | None = None,
        sync_offset: int = 0,
    ):
        if not isinstance(shape, Shape):
            raise TypeError(f"shape must be a Shape, got {type(shape).__name__}")
        self.shape = shape
        self.array_backends = tuple(DENSE_BACKENDS if array_backends is None else array_backends)
        self.image_count = int(image_count)
        self.raw_dtype = None if raw_dtype is None else np.dtype(raw_dtype)
        if dtype is None:
            dtype = self.raw_dtype
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.metadata = metadata
        self.sync_offset = int(sync_offset)

    def __getitem__(self, key):
        """``metadata[key]``."""
        if self.metadata is None:
            raise KeyError(key)
        return self.metadata[key]

    def __repr__(self) -> str:
        return (
            f"DataSetMeta(shape={tuple(self.shape)}, sig_dims={self.shape.sig_dims}, "
            f"raw_dtype={self.raw_dtype}, image_count={self.image_count}, "
            f"sync_offset={self.sync_offset})"
        )


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "CUDA": "libertem.common.udf",
        "NUMPY": "libertem.common.udf",
        "PartitionStructure": "libertem.io.dataset.base.structure",
        "TYPE_CHECKING": "typing",
    },
)
