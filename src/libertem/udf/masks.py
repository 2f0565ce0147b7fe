"""Virtual detectors: dot products of frames with a stack of masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from libertem.common.backend import is_cupy_backend
from libertem.common.buffers import AuxBufferWrapper
from libertem.common.container import MaskContainer
from libertem.common.lazy import LazyModule
from libertem.common.math import prod  # noqa: F401 (LiberTEM's name in this module)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.sparse import densify, is_pydata, is_sparse
from libertem.common.udf import UDFMethod
from libertem.udf.classes import UDF
from libertem.udf.meta import UDFMeta

# pydata.sparse (which imports numba) and scipy.sparse: imported when sparse masks
# or data come along
scipy_sparse = LazyModule("scipy.sparse")
sparse = LazyModule("sparse")

__all__ = ["ApplyMasksUDF", "ApplyMasksEngine", "rmatmul"]

# Tasks of one run on one worker share the factories object: compute its masks once.
# Entries hold the factories themselves, so an id is never reused while cached.
_CONTAINER_CACHE: dict[tuple, tuple[object, MaskContainer]] = {}
_CONTAINER_CACHE_SIZE = 8


def rmatmul(left_dense, right_sparse) -> np.ndarray:
    """``left_dense @ right_sparse`` for a dense left and a ``scipy.sparse`` right operand.

    Computed as ``(right_sparse.T @ left_dense.T).T``, so that scipy's fast
    sparse-times-dense product does the work.

    Parameters
    ----------
    left_dense
        Dense 2D array (NumPy or CuPy).
    right_sparse
        ``scipy.sparse`` (or ``cupyx.scipy.sparse``) matrix or array, CSR or CSC.

    Returns
    -------
    numpy.ndarray
        The dense product.

    Raises
    ------
    ValueError
        If ``left_dense`` is sparse or ``right_sparse`` is not.
    """
    if is_sparse(left_dense):
        raise ValueError(f"left operand must be dense, got {type(left_dense).__name__}")
    if not (scipy_sparse.issparse(right_sparse) or is_sparse(right_sparse)):
        raise ValueError(f"right operand must be scipy.sparse, got {type(right_sparse).__name__}")
    return (right_sparse.T @ left_dense.T).T


def _flat(tile):
    """A tile as ``(frames, pixels)``; 2D sparse matrices are flat already."""
    if is_sparse(tile) and tile.ndim == 2:  # scipy.sparse (and 2D pydata) tiles
        return tile
    return tile.reshape((tile.shape[0], -1))


def _dot(flat, masks):
    """``flat @ masks`` for any combination of dense and sparse operands, dense result."""
    if isinstance(flat, np.ndarray) and isinstance(masks, np.ndarray):
        return densify(flat @ masks)
    if is_pydata(flat) or is_pydata(masks):
        if scipy_sparse.issparse(flat):
            flat = sparse.COO.from_scipy_sparse(flat)
        if scipy_sparse.issparse(masks):
            masks = sparse.COO.from_scipy_sparse(masks)
        return densify(sparse.dot(flat, masks))
    if is_sparse(masks) and not is_sparse(flat):
        return densify(rmatmul(flat, masks))
    return densify(flat @ masks)


class ApplyMasksEngine:
    """The dot products of ApplyMasksUDF, for reuse by other UDFs (e.g. CoMUDF).

    The products run in ``numpy.result_type(tile dtype, mask dtype)``: the masks are
    converted to it once per tile shape (cached by the container), the tiles only
    where their dtype differs.

    Parameters
    ----------
    masks
        The mask stack.
    meta
        The UDF's meta data, for the position of the tile now processed.
    use_torch
        Use PyTorch's matrix product for dense CPU tiles when it is installed;
        otherwise NumPy's (BLAS).
    """

    def __init__(self, masks: MaskContainer, meta: UDFMeta, use_torch: bool):
        self.masks = masks
        self.meta = meta
        self.use_torch = use_torch and _torch() is not None
        self._compute_dtypes: dict = {}

    def _compute_dtype(self, dtype) -> np.dtype:
        try:
            return self._compute_dtypes[dtype]
        except KeyError:
            result = np.result_type(dtype, self.masks.dtype)
            self._compute_dtypes[dtype] = result
            return result

    def _masks_for(self, key: Slice, dtype=None):
        return self.masks.get(key, dtype=dtype, transpose=True)

    def process_tile(self, tile) -> np.ndarray:
        """Dot product of each frame of the tile with the matching part of every mask.

        Returns
        -------
        numpy.ndarray
            Shape ``(frames, mask_count)``, to add to the result.
        """
        dtype = self._compute_dtype(tile.dtype)
        masks = self._masks_for(self.meta.slice, dtype)
        flat = _flat(tile)
        if not is_sparse(flat) and not is_sparse(masks):
            if flat.dtype != dtype:
                flat = flat.astype(dtype)
            if self.use_torch and isinstance(flat, np.ndarray):
                return _torch_matmul(flat, masks)
        return _dot(flat, masks)

    def _as_frame(self, frame):
        """A frame in its signal shape: flat ``(1, sig_size)`` scipy.sparse frames (and
        GCXS ones) become `sparse.COO`, which can be sliced in every axis."""
        if scipy_sparse.issparse(frame):
            frame = sparse.COO.from_scipy_sparse(frame)
        elif isinstance(frame, sparse.SparseArray) and not isinstance(frame, sparse.COO):
            frame = sparse.COO(frame)
        sig_shape = tuple(self.meta.dataset_shape.sig)
        if tuple(frame.shape) != sig_shape:
            frame = frame.reshape(sig_shape)
        return frame

    def process_frame_shifted(self, frame, shifts: tuple[int, ...]) -> np.ndarray:
        """Apply the masks moved by ``shifts`` to one whole frame.

        Mask pixel ``p`` meets frame pixel ``p + shifts``; mask parts moved out of
        the frame count as zero.

        Parameters
        ----------
        frame
            A whole frame: signal-shaped, or a flat ``(1, sig_size)`` scipy.sparse
            matrix.
        shifts
            Integer shift per signal axis, e.g. ``(dy, dx)``; floats are truncated
            towards zero.

        Returns
        -------
        numpy.ndarray
            One value per mask.
        """
        frame = self._as_frame(frame)
        sig_shape = tuple(frame.shape)
        dtype = self._compute_dtype(frame.dtype)
        shifts = tuple(int(s) for s in np.asarray(shifts).reshape(-1))
        if len(shifts) != len(sig_shape):
            raise ValueError(f"shifts {shifts} do not match the frame's dimensions {sig_shape}")
        frame_index, origin, size = [], [], []
        for s, n in zip(shifts, sig_shape):
            lo, hi = max(0, s), min(n, n + s)
            if hi <= lo:
                return np.zeros(len(self.masks), dtype=dtype)
            frame_index.append(slice(lo, hi))
            origin.append(lo - s)
            size.append(hi - lo)
        key = Slice(origin=(0, *origin), shape=Shape((1, *size), sig_dims=len(size)))
        masks = self._masks_for(key, dtype)
        part = frame[tuple(frame_index)].reshape((1, -1))
        if not is_sparse(part) and not is_sparse(masks) and part.dtype != dtype:
            part = part.astype(dtype)
        return _dot(part, masks)[0]


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_matmul(flat: np.ndarray, masks: np.ndarray) -> np.ndarray:
    torch = _torch()
    return torch.mm(torch.from_numpy(flat), torch.from_numpy(np.ascontiguousarray(masks))).numpy()


class ApplyMasksUDF(UDF):
    """Apply masks to every frame: result ``'intensity'`` has one value per frame and mask.

    Parameters
    ----------
    mask_factories
        A callable returning a stack ``(n, *sig_shape)`` (or a Python list or tuple of
        ``n`` equally shaped masks, stacked with `numpy.array`), or a sequence of
        callables each returning one mask of the signal shape (dense,
        ``scipy.sparse`` or pydata ``sparse``).
    use_torch
        Use PyTorch for dense products on the CPU, where installed.
    use_sparse
        ``None`` (sparse if all masks are sparse), ``False``, ``True`` /
        ``'scipy.sparse'``, ``'scipy.sparse.csc'``, ``'sparse.pydata'`` or
        ``'sparse.pydata.GCXS'``. With ``shifts``, the ``'scipy.sparse'`` variants are
        refused, and ``True`` (or sparse masks) means ``'sparse.pydata'``.
    mask_count
        Number of masks, when a single stack factory is given and computing it on
        the main node only to count should be avoided.
    mask_dtype
        Dtype of the masks; default: the dtype the factories return.
    preferred_dtype
        Preferred input dtype (default float32). The result has the dtype
        ``numpy.result_type(input dtype, mask dtype)``.
    backends
        Restrict the array backends this UDF offers: those of the given ones that it
        supports (see :meth:`get_backends`).
    shifts
        Move the masks relative to each frame: an integer ``(dy, dx)`` for all frames,
        or per frame as ``UDF.aux_data(shifts, kind='nav', extra_shape=(2,),
        dtype=...)``. Mask pixel ``p`` then meets frame pixel ``p + shift``; the UDF
        processes whole frames.
    **kwargs
        Further parameters, passed to :class:`~libertem.udf.base.UDF`.

    Raises
    ------
    ValueError
        If none of the given ``backends`` is supported, or for ``shifts`` together
        with a ``'scipy.sparse...'`` ``use_sparse``.

    Examples
    --------
    >>> import numpy as np
    >>> udf = ApplyMasksUDF(mask_factories=[lambda: np.ones((16, 16))])
    """

    def __init__(
        self,
        mask_factories: Callable | Sequence[Callable],
        use_torch: bool = True,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype=None,
        preferred_dtype=None,
        backends: Sequence[str] | None = None,
        shifts=None,
        **kwargs,
    ):
        if shifts is not None and not isinstance(shifts, AuxBufferWrapper):
            shifts = tuple(int(s) for s in np.asarray(shifts).reshape(-1))
        if (
            shifts is not None
            and isinstance(use_sparse, str)
            and use_sparse.startswith("scipy.sparse")
        ):
            raise ValueError(
                f"Sparse backend {use_sparse} not supported for shifts, use sparse.pydata instead."
            )
        if backends is not None:
            backends = tuple(backends)
            if not _supported(backends, shifts is not None):
                raise ValueError(f"No compatible backend found in {backends}")
        self._mask_container = None
        super().__init__(
            mask_factories=mask_factories,
            use_torch=use_torch,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
            backends=backends,
            shifts=shifts,
            **kwargs,
        )

    # masks ------------------------------------------------------------------------
    def _on_cupy(self) -> bool:
        return is_cupy_backend(getattr(self.meta, "array_backend", None))

    def _make_container(self) -> MaskContainer:
        p = self.params
        meta = self.meta
        return MaskContainer(
            p.mask_factories,
            dtype=p.mask_dtype,
            use_sparse=p.use_sparse,
            count=p.mask_count,
            backend="cupy" if self._on_cupy() else None,
            # shifted masks are sliced in every signal axis: scipy.sparse cannot
            default_sparse="scipy.sparse" if p.shifts is None else "sparse.pydata",
            sig_shape=None if meta is None else tuple(meta.dataset_shape.sig),
        )

    @property
    def masks(self) -> MaskContainer:
        """The masks as a :class:`~libertem.common.container.MaskContainer`.

        Made on first use in this process (they are computed only when needed);
        tasks of one run in one process share the computed masks.
        """
        if self._mask_container is not None:
            return self._mask_container
        p = self.params
        meta = self.meta
        key = (
            id(p.mask_factories),
            None if p.mask_dtype is None else np.dtype(p.mask_dtype),
            p.use_sparse,
            p.shifts is None,
            None if meta is None else tuple(meta.dataset_shape.sig),
            self._on_cupy(),
        )
        cached = _CONTAINER_CACHE.get(key)
        if cached is not None and cached[0] is p.mask_factories:
            container = cached[1]
        else:
            container = self._make_container()
            while len(_CONTAINER_CACHE) >= _CONTAINER_CACHE_SIZE:
                _CONTAINER_CACHE.pop(next(iter(_CONTAINER_CACHE)))
            _CONTAINER_CACHE[key] = (p.mask_factories, container)
        self._mask_container = container
        return container

    def get_mask_count(self) -> int:
        """Number of masks: ``mask_count`` if given, else counted from the factories."""
        if self.params.mask_count is not None:
            return int(self.params.mask_count)
        factories = self.params.mask_factories
        if not callable(factories):
            return len(factories)
        return len(self.masks)

    def get_mask_dtype(self) -> np.dtype:
        """Dtype of the masks: ``mask_dtype`` if given, else the dtype of the masks the
        factories return."""
        if self.params.mask_dtype is not None:
            return np.dtype(self.params.mask_dtype)
        return self.masks.dtype

    # UDF interface ------------------------------------------------------------------
    def get_method(self) -> UDFMethod:
        """Frames when the masks are shifted per frame, tiles otherwise."""
        return UDFMethod.TILE if self.params.shifts is None else UDFMethod.FRAME

    def get_preferred_input_dtype(self):
        if self.params.preferred_dtype is None:
            return super().get_preferred_input_dtype()
        return self.params.preferred_dtype

    def get_tiling_preferences(self):
        if self.params.shifts is not None:
            return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": self.TILE_SIZE_MAX}
        # deep tiles over part of the frame: the matching slice of the mask stack stays
        # small and in cache while the dot product runs over many frames
        return {"depth": 128, "total_size": 4 * 1024 * 1024}

    def get_backends(self):
        """The array backends offered: NumPy, CuPy, sparse.COO/GCXS and the
        scipy.sparse (cupyx) matrix classes, never the scipy "array" classes; with
        ``shifts`` not the ``coo_matrix`` classes either (they cannot be sliced).
        With ``backends`` given, those of them that are in this set."""
        return _supported(self.params.backends, self.params.shifts is not None)

    def get_task_data(self):
        masks = self.masks
        return {
            "masks": masks,
            "engine": ApplyMasksEngine(masks, self.meta, self.params.use_torch),
        }

    def get_result_buffers(self):
        p = self.params
        if p.mask_dtype is not None and (
            p.mask_count is not None or not callable(p.mask_factories)
        ):
            # known without calling the factories (none are called on the main node)
            count, mask_dtype = self.get_mask_count(), np.dtype(p.mask_dtype)
        else:
            count, mask_dtype = len(self.masks), self.masks.dtype
        dtype = np.result_type(self.meta.input_dtype, mask_dtype)
        return {
            "intensity": self.buffer(kind="nav", extra_shape=(count,), dtype=dtype, where="device")
        }

    def process_tile(self, tile):
        """Dot product of the tile with the matching part of the mask stack."""
        if self.params.shifts is not None:
            self._process_tile_shifted(tile)
            return
        self.results.intensity[:] += self.task_data.engine.process_tile(tile)

    def _process_tile_shifted(self, tile):
        """Shifted masks need whole frames; an engine that hands out tiles of whole
        frames can still use this UDF frame by frame."""
        sig = tuple(self.meta.dataset_shape.sig)
        if tuple(tile.shape[1:]) != sig:
            raise ValueError(
                f"masks with shifts need whole frames {sig}, got a tile of {tuple(tile.shape)}"
            )
        shifts = np.asarray(self.params.shifts)  # per frame: the tile's rows of the aux data
        engine = self.task_data.engine
        for i in range(tile.shape[0]):
            s = shifts[i] if shifts.ndim > 1 else shifts
            self.results.intensity[i] += engine.process_frame_shifted(tile[i], s)

    def process_frame(self, frame):
        """Apply the masks, shifted by ``shifts``, to one frame."""
        shifts = self.params.shifts
        if shifts is None:
            shifts = (0,) * len(self.meta.dataset_shape.sig)
        self.results.intensity[:] += self.task_data.engine.process_frame_shifted(frame, shifts)


# the array backends of LiberTEM's ApplyMasksUDF; CoMUDF offers these as well
MASK_BACKENDS = (
    UDF.BACKEND_NUMPY,
    UDF.BACKEND_CUPY,
    "sparse.COO",
    "sparse.GCXS",
    "scipy.sparse.coo_matrix",
    "scipy.sparse.csr_matrix",
    "scipy.sparse.csc_matrix",
    "scipy.sparse.coo_array",
    "scipy.sparse.csr_array",
    "scipy.sparse.csc_array",
    "cupyx.scipy.sparse.csr_matrix",
    "cupyx.scipy.sparse.csc_matrix",
    "cupyx.scipy.sparse.coo_matrix",
)
_NEVER = {"scipy.sparse.coo_array", "scipy.sparse.csr_array", "scipy.sparse.csc_array"}
_NOT_WITH_SHIFTS = {"scipy.sparse.coo_matrix", "cupyx.scipy.sparse.coo_matrix"}


def _supported(backends: Sequence[str] | None, shifted: bool) -> tuple[str, ...]:
    """The backends of ``backends`` (default: all) that ApplyMasksUDF supports."""
    excluded = _NEVER | _NOT_WITH_SHIFTS if shifted else _NEVER
    wanted = MASK_BACKENDS if backends is None else backends
    return tuple(b for b in wanted if b in MASK_BACKENDS and b not in excluded)
