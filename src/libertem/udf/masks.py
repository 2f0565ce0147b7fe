"""Virtual detectors: dot products of frames with a stack of masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sparse

from libertem.common.container import MaskContainer
from libertem.udf.base import UDF

# Tasks of one run on one worker share the factories object: compute its masks once.
# Entries hold the factories themselves, so an id is never reused while cached.
_CONTAINER_CACHE: dict[tuple, tuple[object, MaskContainer]] = {}
_CONTAINER_CACHE_SIZE = 8


class ApplyMasksUDF(UDF):
    """Apply masks to every frame: result ``'intensity'`` has one value per frame and mask.

    Parameters
    ----------
    mask_factories
        A callable returning a stack ``(n, *sig_shape)``, or a sequence of callables
        each returning one mask of the signal shape (dense, ``scipy.sparse`` or
        pydata ``sparse``).
    use_sparse
        ``None`` (sparse if all masks are sparse), ``False``, ``True`` /
        ``'scipy.sparse'``, ``'scipy.sparse.csc'`` or ``'sparse.pydata'``.
    mask_count
        Number of masks, when a single stack factory is given and computing it on
        the main node only to count should be avoided.
    mask_dtype
        Dtype of the masks. By default the masks take the input dtype's precision
        (complex if the masks are complex), so that the dot product runs in BLAS.
    preferred_dtype
        Preferred input dtype (default float32).
    """

    def __init__(
        self,
        mask_factories: Callable | Sequence[Callable],
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype=None,
        preferred_dtype=None,
    ):
        super().__init__(
            mask_factories=mask_factories,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
        )

    def _make_container(self, factories=None, dtype=None) -> MaskContainer:
        p = self.params
        return MaskContainer(
            p.mask_factories if factories is None else factories,
            dtype=dtype,
            use_sparse=p.use_sparse,
            count=p.mask_count,
            sig_shape=tuple(self.meta.dataset_shape.sig),
            backend=None if self.meta.array_backend == "numpy" else self.meta.array_backend,
        )

    def _mask_dtype(self, native) -> np.dtype:
        """The masks' dtype: as asked, else the input's precision (complex if needed)."""
        if self.params.mask_dtype is not None:
            return np.dtype(self.params.mask_dtype)
        kind = np.complex64 if np.dtype(native).kind == "c" else np.float32
        return np.result_type(self.meta.input_dtype, kind)

    def get_preferred_input_dtype(self):
        if self.params.preferred_dtype is None:
            return np.float32
        return self.params.preferred_dtype

    def get_tiling_preferences(self):
        # deep tiles over part of the frame: the matching slice of the mask stack stays
        # small and in cache while the dot product runs over many frames
        return {"depth": 128, "total_size": 4 * 1024 * 1024}

    def get_task_data(self):
        return {"masks": self._masks()}

    def _masks(self) -> MaskContainer:
        """The masks in their final dtype, computed once per process and factories object."""
        p = self.params
        key = (
            id(p.mask_factories),
            p.mask_dtype,
            p.use_sparse,
            str(self.meta.input_dtype),
            self.meta.array_backend,
        )
        cached = _CONTAINER_CACHE.get(key)
        if cached is not None and cached[0] is p.mask_factories:
            return cached[1]
        native = self._make_container()
        dtype = self._mask_dtype(native.dtype)
        if dtype == native.dtype:
            container = native
        else:
            stack = native.computed_masks
            container = self._make_container(factories=lambda: stack, dtype=dtype)
        while len(_CONTAINER_CACHE) >= _CONTAINER_CACHE_SIZE:
            _CONTAINER_CACHE.pop(next(iter(_CONTAINER_CACHE)))
        _CONTAINER_CACHE[key] = (p.mask_factories, container)
        return container

    def get_result_buffers(self):
        p = self.params
        if p.mask_count is not None and p.mask_dtype is not None:
            count, mask_dtype = p.mask_count, np.dtype(p.mask_dtype)
        else:
            container = self._masks()
            count, mask_dtype = len(container), container.dtype
        dtype = np.result_type(self.meta.input_dtype, mask_dtype)
        return {
            "intensity": self.buffer(kind="nav", extra_shape=(count,), dtype=dtype, where="device")
        }

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)

    def process_tile(self, tile):
        """Dot product of the tile with the matching part of the mask stack."""
        masks = self.task_data.masks.get(self.meta.slice, transpose=True)
        flat = tile.reshape((tile.shape[0], -1))
        if flat.dtype != masks.dtype:
            flat = flat.astype(np.result_type(flat.dtype, masks.dtype))
        if isinstance(masks, sparse.SparseArray):
            result = sparse.dot(flat, masks)
            if isinstance(result, sparse.SparseArray):
                result = result.todense()
        else:
            result = flat @ masks
        self.results.intensity[:] += result
