"""A stack of masks that hands out per-tile views, ready for dot products."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from libertem.common.backend import is_cupy_backend
from libertem.common.lazy import LazyModule, lazy_names
from libertem.common.slice import Slice
from libertem.common.sparse import is_sparse, to_dense, to_sparse

# pydata.sparse (which imports numba) and scipy.sparse: imported when sparse masks
# or data come along
scipy_sparse = LazyModule("scipy.sparse")
sparse = LazyModule("sparse")

MaskFactory = Callable[[], object]

NUMPY = "numpy"
CUDA = "cuda"

# Representations of the stack (and of its slices) by the names ``use_sparse``
# and ``sparse_backend`` accept.
_REPRESENTATIONS = {
    False: False,
    "scipy.sparse": "scipy.sparse",
    "scipy.sparse.csr": "scipy.sparse",
    "scipy.sparse.csc": "scipy.sparse.csc",
    "sparse.pydata": "sparse.pydata",
    "sparse.pydata.GCXS": "sparse.pydata.GCXS",
}
_SCIPY_FORMATS = {"scipy.sparse": "csr", "scipy.sparse.csc": "csc"}


def _representation(value, what: str, default_sparse: str):
    if value is True:
        value = default_sparse
    try:
        return _REPRESENTATIONS[value]
    except (KeyError, TypeError):
        choices = [k for k in _REPRESENTATIONS if k is not False]
        raise ValueError(f"{what}={value!r} is not one of None, True, False, {choices}") from None


def _device_of(backend: str | None) -> str:
    """``'cupy'`` for the CuPy array backends, ``'numpy'`` for all others."""
    if backend is None:
        return NUMPY
    if is_cupy_backend(backend):
        return "cupy"
    from sparseconverter import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not an array backend ({sorted(BACKENDS)})")
    return NUMPY


def _as_array(obj):
    """A Python list or tuple of masks (or of rows) as a NumPy array; other objects as given."""
    if isinstance(obj, (list, tuple)):
        return np.array(obj)
    return obj


def _shape_of(obj, what: str) -> tuple[int, ...]:
    shape = getattr(obj, "shape", None)
    if shape is None:
        raise ValueError(f"{what} returned {type(obj).__name__}, expected an array with a shape")
    return tuple(int(s) for s in shape)


class MaskContainer:
    """A stack of masks, computed lazily, sliced per tile and cached.

    Parameters
    ----------
    mask_factories
        Either a single callable returning the whole stack, shaped
        ``(n, *sig_shape)`` (`numpy.ndarray`, `sparse.COO`) or ``(n, sig_size)``
        (also a `scipy.sparse` matrix), or a Python list or tuple of equally shaped
        masks (converted with `numpy.array`); or a sequence of callables each
        returning one mask of shape ``sig_shape`` (dense, `sparse.COO` or `scipy.sparse`).
    dtype
        dtype of the computed masks. Default: the masks' own dtype (NumPy's result
        type of the dtypes of several masks): bool masks stay bool, uint16 stays
        uint16, complex128 stays complex128.
    use_sparse
        ``None``: sparse (``default_sparse``) if every factory returns a sparse
        object, else dense; ``False``: dense `numpy.ndarray`; ``True``: as
        ``default_sparse``; ``'scipy.sparse'`` or ``'scipy.sparse.csr'``:
        `scipy.sparse.csr_matrix`; ``'scipy.sparse.csc'``: `scipy.sparse.csc_matrix`;
        ``'sparse.pydata'``: `sparse.COO`; ``'sparse.pydata.GCXS'``: `sparse.GCXS`.
    count
        Number of masks, if known without computing them.
    backend
        Array backend of the slices `get` returns: ``None``/``'numpy'`` (and the
        other CPU backends) for CPU arrays, ``'cupy'`` for CuPy arrays (or
        ``cupyx.scipy.sparse`` matrices).
    default_sparse
        The sparse representation that ``use_sparse=True`` (or ``None`` with sparse
        masks) selects.
    sig_shape
        Signal shape of the masks. Only needed when a stack factory returns a flat
        ``(n, sig_size)`` stack and tiles do not cover whole frames.

    Notes
    -----
    When pickled, the factories and settings are kept but computed masks are
    dropped, so they are recomputed on first use in the receiving process.
    """

    def __init__(
        self,
        mask_factories: MaskFactory | Sequence[MaskFactory],
        dtype=None,
        use_sparse: bool | str | None = None,
        count: int | None = None,
        backend: str | None = None,
        default_sparse: str = "scipy.sparse",
        *,
        sig_shape: Sequence[int] | None = None,
    ):
        self._default_sparse = _representation(default_sparse, "default_sparse", "scipy.sparse")
        if self._default_sparse is False:
            raise ValueError("default_sparse must name a sparse representation, not False")
        rep = None
        if use_sparse is not None:
            rep = _representation(use_sparse, "use_sparse", self._default_sparse)
        _device_of(backend)
        if not callable(mask_factories):
            mask_factories = tuple(mask_factories)
            if not mask_factories:
                raise ValueError("mask_factories is empty")
            if not all(callable(f) for f in mask_factories):
                raise ValueError("mask_factories must be a callable or a sequence of callables")
        self.mask_factories = mask_factories
        self._dtype = None if dtype is None else np.dtype(dtype)
        self._use_sparse = rep
        self._count = None if count is None else int(count)
        self.backend = backend
        self._sig_shape = None if sig_shape is None else tuple(int(s) for s in sig_shape)
        self._reset()

    def _reset(self) -> None:
        # the computed stack, None until computed in this process (LiberTEM's name):
        # (n, *sig_shape) dense/COO, or (n, sig_size) scipy
        self._computed_masks = None
        self._cache: dict = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_computed_masks"] = None
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ---- computing the stack ----------------------------------------------

    def _call_factories(self) -> tuple[list, bool]:
        """Masks as a list of parts to stack, and whether they form a stack already."""
        if callable(self.mask_factories):
            stack = _as_array(self.mask_factories())
            shape = _shape_of(stack, "the mask factory")
            if len(shape) < 2:
                raise ValueError(
                    f"the mask factory returned shape {shape}, expected a stack "
                    "(n, *sig_shape) with at least 2 dimensions"
                )
            return [stack], True
        masks = [_as_array(f()) for f in self.mask_factories]
        shapes = [_shape_of(m, f"mask factory {i}") for i, m in enumerate(masks)]
        for i, shape in enumerate(shapes):
            if len(shape) == 0:
                raise ValueError(f"mask factory {i} returned a scalar, expected a 2D mask")
            if shape != shapes[0]:
                raise ValueError(
                    f"mask factory {i} returned shape {shape}, but mask factory 0 "
                    f"returned {shapes[0]}; all masks must have the same shape"
                )
        return masks, False

    def _compute(self) -> None:
        parts, is_stack = self._call_factories()
        if self._use_sparse is None:
            self._use_sparse = self._default_sparse if all(is_sparse(p) for p in parts) else False
        if self._dtype is None:
            self._dtype = np.result_type(*(p.dtype for p in parts))
        rep = self._use_sparse
        if rep is False:
            dense = [to_dense(p) for p in parts]
            stack = dense[0] if is_stack else np.stack(dense)
            stack = np.ascontiguousarray(stack, dtype=self._dtype)
        else:
            coo = [to_sparse(p) for p in parts]
            stack = coo[0] if is_stack else sparse.stack(coo)
            stack = stack.astype(self._dtype)
        n = stack.shape[0]
        if self._count is not None and self._count != n:
            raise ValueError(f"count={self._count} given, but the factories produced {n} masks")
        self._count = n
        sig_shape = tuple(stack.shape[1:])
        if self._sig_shape is None:
            if not (is_stack and len(sig_shape) == 1):  # a flat stack leaves the shape open
                self._sig_shape = sig_shape
        elif prod(self._sig_shape) != prod(sig_shape):
            raise ValueError(f"masks of shape {sig_shape} do not fit sig_shape={self._sig_shape}")
        if rep in _SCIPY_FORMATS:
            stack = stack.reshape((n, -1)).to_scipy_sparse().asformat(_SCIPY_FORMATS[rep])
        elif self._sig_shape is not None:
            stack = stack.reshape((n, *self._sig_shape))
        self._computed_masks = stack

    def _get_stack(self):
        if self._computed_masks is None:
            self._compute()
        return self._computed_masks

    # ---- properties -----------------------------------------------------------

    @property
    def dtype(self) -> np.dtype:
        """dtype of the computed masks (computes them if no dtype was given)."""
        if self._dtype is None:
            self._compute()
        return self._dtype

    @property
    def use_sparse(self) -> bool | str:
        """Resolved representation: ``False``, ``'scipy.sparse'``, ``'scipy.sparse.csc'``
        or ``'sparse.pydata'``."""
        if self._use_sparse is None:
            self._compute()
        return self._use_sparse

    @property
    def mask_count(self) -> int:
        """Number of masks."""
        if self._count is None:
            self._compute()
        return self._count

    def __len__(self) -> int:
        return self.mask_count

    @property
    def computed_masks(self):
        """The whole stack as ``(mask_count, *sig_shape)``.

        Dense masks as `numpy.ndarray`; sparse ones as `sparse.COO` (`sparse.GCXS`
        for ``'sparse.pydata.GCXS'``), also when slices are handed out as scipy.sparse
        matrices, which cannot hold more than two axes. While the signal shape is
        unknown (a flat stack without ``sig_shape``), the shape is ``(mask_count, sig_size)``.
        """
        stack = self._get_stack()
        if self.use_sparse in _SCIPY_FORMATS:
            stack = sparse.COO.from_scipy_sparse(stack)
        if self._sig_shape is not None:
            return stack.reshape((stack.shape[0], *self._sig_shape))
        return stack

    def validate_mask_functions(self) -> None:
        """Call the factories once and check what they return.

        Raises
        ------
        ValueError
            If a factory returns no array, masks of different shapes, or a stack
            of fewer than two dimensions.
        """
        self._call_factories()

    # ---- slicing ----------------------------------------------------------------

    def get(
        self,
        key: Slice,
        dtype=None,
        sparse_backend=None,
        transpose: bool = True,
        backend=None,
    ):
        """Masks restricted to the signal region of a tile, flattened.

        Parameters
        ----------
        key
            Slice of the tile; its navigation part is ignored.
        dtype
            dtype of the result (default: the container's).
        sparse_backend
            Representation of the result if the masks are sparse (``'scipy.sparse'``,
            ``'scipy.sparse.csr'``, ``'scipy.sparse.csc'``, ``'sparse.pydata'``,
            ``'sparse.pydata.GCXS'``); default: the container's.
        transpose
            Return ``(tile_sig_size, mask_count)`` instead of
            ``(mask_count, tile_sig_size)``.
        backend
            Array backend of the result (default: the container's ``backend``).

        Returns
        -------
        numpy.ndarray, scipy.sparse matrix, sparse.COO or sparse.GCXS (or CuPy
        equivalents). Results are cached per signal slice and options.
        """
        nav_dims = key.shape.nav_dims
        sig_origin = tuple(key.origin[nav_dims:])
        sig_shape = tuple(key.shape[nav_dims:])
        options = (
            None if dtype is None else np.dtype(dtype),
            sparse_backend,
            bool(transpose),
            self.backend if backend is None else backend,
        )
        cache_key = (sig_origin, sig_shape, options)
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        result = self.get_masks_for_slice(
            Slice(sig_origin, key.shape.sig),
            dtype=options[0],
            sparse_backend=sparse_backend,
            transpose=transpose,
            backend=options[3],
        )
        self._cache[cache_key] = result
        return result

    def get_for_sig_slice(self, sig_slice: Slice, *args, **kwargs):
        """Like `get`, for a slice that has only signal axes."""
        return self.get(sig_slice, *args, **kwargs)

    def get_for_idx(self, scheme, idx: int, *args, **kwargs):
        """Like `get`, for the ``idx``-th signal region of a tiling scheme."""
        return self.get(scheme[idx], *args, **kwargs)

    def get_masks_for_slice(
        self, slice_: Slice, dtype=None, sparse_backend=None, transpose=True, backend="numpy"
    ):
        """Like `get`, without the cache: computes the slice of the masks every time."""
        nav_dims = slice_.shape.nav_dims
        origin, shape = tuple(slice_.origin[nav_dims:]), tuple(slice_.shape[nav_dims:])
        result = self._slice(origin, shape, transpose)
        rep = self.use_sparse
        if rep is not False and sparse_backend is not None:
            result = _convert_sparse(
                result, _representation(sparse_backend, "sparse_backend", self._default_sparse)
            )
        if dtype is not None and result.dtype != np.dtype(dtype):
            result = result.astype(dtype)
        return _to_device(result, _device_of(backend))

    def _resolve_sig_shape(self, origin: tuple, shape: tuple) -> tuple[int, ...]:
        if self._sig_shape is not None:
            return self._sig_shape
        sig_size = prod(self._get_stack().shape[1:])
        if len(shape) == 1:
            self._sig_shape = (sig_size,)
        elif not any(origin) and prod(shape) == sig_size:
            self._sig_shape = tuple(shape)  # a whole-frame tile tells the frame shape
        else:
            raise ValueError(
                f"cannot slice a flat stack of {sig_size} pixels for a tile of shape {shape}: "
                "pass sig_shape to MaskContainer"
            )
        if self.use_sparse not in _SCIPY_FORMATS:
            self._computed_masks = self._computed_masks.reshape(
                (self.mask_count, *self._sig_shape)
            )
        return self._sig_shape

    def _slice(self, origin: tuple, shape: tuple, transpose: bool):
        stack = self._get_stack()
        sig_shape = self._resolve_sig_shape(origin, shape)
        if len(origin) != len(sig_shape) or any(
            o < 0 or o + s > full for o, s, full in zip(origin, shape, sig_shape)
        ):
            raise ValueError(
                f"tile signal region origin={origin} shape={shape} does not lie within "
                f"the masks' signal shape {sig_shape}"
            )
        n = self.mask_count
        index = tuple(slice(o, o + s) for o, s in zip(origin, shape))
        rep = self.use_sparse
        if rep in _SCIPY_FORMATS:
            if tuple(shape) == sig_shape:
                result = stack
            else:
                columns = np.arange(prod(sig_shape)).reshape(sig_shape)[index].reshape(-1)
                result = stack[:, columns]
            if transpose:
                result = result.T
            return result.asformat(_SCIPY_FORMATS[rep])
        result = stack[(slice(None), *index)].reshape((n, -1))
        if transpose:
            result = result.T
        if rep is False:
            return np.ascontiguousarray(result)
        if rep == "sparse.pydata.GCXS":
            return sparse.GCXS(result)
        return result

    def __repr__(self) -> str:
        return (
            f"MaskContainer(count={self._count}, dtype={self._dtype}, "
            f"use_sparse={self._use_sparse!r}, backend={self.backend!r})"
        )


def _convert_sparse(arr, rep):
    """A sparse slice in representation ``rep`` (see ``_REPRESENTATIONS``)."""
    if rep in _SCIPY_FORMATS:
        if isinstance(arr, sparse.SparseArray):
            arr = sparse.COO(arr).to_scipy_sparse()
        if not isinstance(arr, scipy_sparse.sparray):
            arr = scipy_sparse.csr_array(arr)
        return arr.asformat(_SCIPY_FORMATS[rep])
    coo = to_sparse(arr)
    return sparse.GCXS(coo) if rep == "sparse.pydata.GCXS" else coo


def _to_device(arr, device: str):
    if device != "cupy":
        return arr
    import cupy

    if scipy_sparse.issparse(arr):
        import cupyx.scipy.sparse

        return getattr(cupyx.scipy.sparse, f"{arr.format}_matrix")(arr)
    if isinstance(arr, sparse.SparseArray):
        raise ValueError("backend='cupy' does not support pydata.sparse masks")
    return cupy.asarray(arr)


# documented here as well; lives with the datasets
__getattr__, __dir__ = lazy_names(__name__, {"TilingScheme": "libertem.io.dataset.base"})
