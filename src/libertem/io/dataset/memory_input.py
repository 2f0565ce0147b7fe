"""What in-memory data is: its navigation and signal shapes, the array backends it is
offered in, and a forced tile shape (for :mod:`~libertem.io.dataset.memory`)."""

from __future__ import annotations

import sparseconverter

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod


def memory_shapes(
    data_shape: tuple[int, ...], nav_shape=None, sig_shape=None, sig_dims=None
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """The navigation and signal shapes of in-memory data of ``data_shape``, and the
    number of frames it holds.

    The signal dimensions are ``sig_dims``, else ``len(sig_shape)``, else those left
    by ``nav_shape``, else 2. The shapes default to the stored array's own leading
    (navigation) and trailing (signal) axes; they need not agree with each other:
    the data holds ``size // prod(sig_shape)`` frames, and navigation positions
    beyond them have no data.

    Raises
    ------
    ValueError
        If ``sig_shape`` and ``sig_dims`` disagree, or the data's size is not a
        multiple of the frame size.
    DataSetException
        If ``sig_dims`` does not fit the data.
    """
    data_shape = tuple(int(s) for s in data_shape)
    if sig_shape is not None:
        sig_shape = tuple(int(s) for s in sig_shape)
    if nav_shape is not None:
        nav_shape = tuple(int(s) for s in nav_shape)
    if sig_shape is not None and sig_dims is not None and len(sig_shape) != sig_dims:
        raise ValueError(f"Length of sig_shape {sig_shape} not matching sig_dims {sig_dims}.")
    if sig_dims is None:
        if sig_shape is not None:
            sig_dims = len(sig_shape)
        elif nav_shape is not None:
            sig_dims = len(data_shape) - len(nav_shape)
        else:
            sig_dims = 2
    sig_dims = int(sig_dims)
    if not 1 <= sig_dims <= len(data_shape):
        raise DataSetException(
            f"memory dataset: sig_dims={sig_dims} does not fit data of shape {data_shape}"
        )
    split = len(data_shape) - sig_dims
    nav = (data_shape[:split] or (1,)) if nav_shape is None else nav_shape
    sig = data_shape[split:] if sig_shape is None else sig_shape
    size = prod(data_shape)
    frame = prod(sig)
    if frame < 1 or size % frame != 0:
        raise ValueError("Data size is not a multiple of sig shape")
    if not nav or any(s < 1 for s in nav + sig):
        raise DataSetException(
            f"memory dataset: shapes must be positive, got nav {nav}, sig {sig}"
        )
    return nav, sig, size // frame


def check_array_backends(array_backends, native: str, sparse_input: bool) -> tuple[str, ...]:
    """The array backends a memory dataset offers: ``array_backends`` checked, by default
    the data's own (``native``; dense data: ``'numpy'`` and ``'cupy'``).

    Raises
    ------
    DataSetException
        If ``array_backends`` is empty or names an unknown backend.
    """
    if array_backends is None:
        return (native,) if sparse_input else ("numpy", "cupy")
    if isinstance(array_backends, str):
        array_backends = (array_backends,)
    backends = tuple(array_backends)
    unknown = [b for b in backends if b not in sparseconverter.BACKENDS]
    if unknown or not backends:
        raise DataSetException(
            f"memory dataset: array_backends {backends} must name array backends "
            f"(known: {sorted(sparseconverter.BACKENDS)})"
        )
    return backends


def check_tileshape(tileshape, sig) -> tuple[int, ...] | None:
    """A forced tile shape ``(depth, *sig_block)`` checked against the signal shape.

    Raises
    ------
    DataSetException
        If it has the wrong number of axes, a side below 1 or beyond the frame.
    """
    if tileshape is None:
        return None
    tileshape = tuple(int(t) for t in tileshape)
    if len(tileshape) != len(sig) + 1 or any(t < 1 for t in tileshape):
        raise DataSetException(
            f"memory dataset: tileshape {tileshape} must be (depth, *sig_block) "
            f"with {len(sig)} signal axes"
        )
    if any(t > s for t, s in zip(tileshape[1:], sig)):
        raise DataSetException(
            f"memory dataset: tileshape {tileshape} exceeds the signal shape {sig}"
        )
    return tileshape


__all__ = ["check_array_backends", "check_tileshape", "memory_shapes"]
