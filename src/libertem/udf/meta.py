"""What a UDF may know about the data it processes."""

from __future__ import annotations

import numpy as np

from libertem.common.shape import Shape
from libertem.common.slice import Slice


class UDFMeta:
    """Context information available to a UDF as ``self.meta``.

    Attributes
    ----------
    dataset_shape : Shape
        Shape of the whole dataset, navigation axes not flattened.
    partition_shape : Shape
        Flat-nav shape of the partition now processed (selected frames only);
        on the main node, that of the whole selection.
    dataset_dtype : numpy.dtype
        Native dtype of the dataset.
    input_dtype : numpy.dtype
        Dtype of the data passed to ``process_*``.
    roi : numpy.ndarray or None
        Boolean mask of the navigation shape, or ``None``.
    slice : Slice
        Region now processed, in flat-nav coordinates compressed by the ROI.
    tiling_scheme : TilingScheme
        The negotiated tiling scheme of this run.
    device_class : str
        ``'cpu'`` or ``'cuda'``.
    array_backend : str
        ``'numpy'`` or ``'cupy'``.
    """

    def __init__(
        self,
        dataset_shape: Shape,
        partition_shape: Shape,
        dataset_dtype,
        input_dtype,
        roi: np.ndarray | None = None,
        tiling_scheme=None,
        device_class: str = "cpu",
        array_backend: str = "numpy",
        frame_indices: tuple[int, np.ndarray] | None = None,
    ):
        self.dataset_shape = dataset_shape
        self.partition_shape = partition_shape
        self.dataset_dtype = np.dtype(dataset_dtype)
        self.input_dtype = np.dtype(input_dtype)
        self.roi = roi
        self.tiling_scheme = tiling_scheme
        self.device_class = device_class
        self.array_backend = array_backend
        self.slice: Slice | None = None
        self._frame_indices = frame_indices

    @property
    def sig_slice(self) -> Slice | None:
        """The signal part of :attr:`slice`."""
        return None if self.slice is None else self.slice.discard_nav()

    @property
    def coordinates(self) -> np.ndarray:
        """Navigation coordinates of the frames now processed, shape ``(n, nav_dims)``."""
        start = self.slice.origin[0]
        stop = start + self.slice.shape[0]
        if self._frame_indices is None:
            flat = np.arange(start, stop)
        else:
            offset, indices = self._frame_indices
            flat = indices[start - offset : stop - offset]
        nav_shape = tuple(self.dataset_shape.nav)
        return np.stack(np.unravel_index(flat, nav_shape), axis=1)

    def __repr__(self) -> str:
        return (
            f"UDFMeta(dataset_shape={self.dataset_shape}, partition_shape={self.partition_shape}, "
            f"input_dtype={self.input_dtype}, slice={self.slice})"
        )
