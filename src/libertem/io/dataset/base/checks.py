"""What a dataset's description must satisfy: checks of shapes, sizes and dtypes.

Formats call these at load time (from ``initialize``), so that impossible data --
a shape whose size wraps around in 64-bit arithmetic, a header claiming more
frames than the file holds, values that are not numbers -- raise a
:class:`~libertem.common.exceptions.DataSetException` naming the file before any
work starts. All arithmetic is on Python integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.shape import Shape

if TYPE_CHECKING:
    from libertem.io.dataset.base.dataset import DataSet


def check_sync_offset(sync_offset: int, image_count: int, where: str = "") -> int:
    """Validate a ``sync_offset`` against the number of stored frames ``image_count``:
    ``-image_count < sync_offset < image_count`` (so no data at all always fails).

    Raises
    ------
    DataSetException
        With LiberTEM's text, which existing code matches (``where`` is not part of it).
    """
    sync_offset = int(sync_offset)
    image_count = int(image_count)
    if not -image_count < sync_offset < image_count:
        raise DataSetException(
            f"sync_offset should be in ({-image_count}, {image_count}), "
            "which is (-image_count, image_count)"
        )
    return sync_offset


#: numpy cannot address more bytes than this in one array
MAX_DATASET_BYTES = 2**63 - 1

#: dtype kinds of values that tiles can hold: bool, integers, floats, complex
NUMERIC_KINDS = "biufc"


def check_dtype(dtype, where: str) -> np.dtype:
    """``dtype`` as a numpy dtype, if it is a plain numeric one.

    Raises
    ------
    DataSetException
        For structured, string, object, date/time or sub-array dtypes.
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError as e:
        raise DataSetException(f"{where}: invalid dtype {dtype!r}: {e}") from e
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
        raise DataSetException(
            f"{where}: data of dtype {dtype} is not supported: values must be numbers "
            "(bool, integer, float or complex)"
        )
    return dtype


def check_size(shape: Sequence[int], dtype, where: str) -> int:
    """The bytes of data of ``shape`` x ``dtype`` (a Python ``int``), if that is possible.

    Raises
    ------
    DataSetException
        If an axis is not positive, or the data would exceed :data:`MAX_DATASET_BYTES`.
    """
    shape = tuple(int(s) for s in shape)
    if any(s < 1 for s in shape):
        raise DataSetException(f"{where}: shape {shape} has an axis that is not positive")
    nbytes = prod(shape) * np.dtype(dtype).itemsize
    if nbytes > MAX_DATASET_BYTES:
        raise DataSetException(
            f"{where}: shape {shape} x {np.dtype(dtype)} would be {nbytes} bytes, "
            f"more than can be addressed ({MAX_DATASET_BYTES})"
        )
    return nbytes


#: the values of a compressed or partly written dataset (chunks never written read as the
#: fill value) may exceed the bytes stored for them at most this many times ...
MAX_EXPANSION = 2**16
#: ... unless they are at most this many bytes
MIN_CHECKED_BYTES = 2**30


def check_stored(claimed: int, stored, where: str) -> None:
    """Reject data that claims far more bytes than are stored for it.

    Parameters
    ----------
    claimed
        Bytes of the values the data claims to hold.
    stored
        A function returning the bytes stored for them (called only for large claims).
    where
        Names the data in the message.

    Raises
    ------
    DataSetException
        If ``claimed`` exceeds both :data:`MIN_CHECKED_BYTES` and :data:`MAX_EXPANSION`
        times the stored bytes: corrupt metadata, or data that was never written.
    """
    if claimed <= MIN_CHECKED_BYTES:
        return
    try:
        stored_bytes = int(stored())
    except (OSError, RuntimeError, ValueError) as e:
        raise DataSetException(f"{where}: cannot determine the stored size: {e}") from e
    if claimed > stored_bytes * MAX_EXPANSION:
        raise DataSetException(
            f"{where}: the data claims {claimed} bytes, but only {stored_bytes} bytes are "
            "stored for it: corrupt metadata or data never written"
        )


def check_dataset(dataset: DataSet, where: str) -> DataSet:
    """Check what every initialized dataset must satisfy: a numeric dtype and a shape
    of positive axes that fits :data:`MAX_DATASET_BYTES`; returns ``dataset``."""
    dtype = check_dtype(dataset.dtype, where)
    check_size(tuple(dataset.shape), dtype, where)
    return dataset


def resolve_shapes(
    nav_shape: Sequence[int] | None,
    sig_shape: Sequence[int] | None,
    native_shape: Sequence[int],
    sig_dims: int,
    where: str,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Apply user ``nav_shape``/``sig_shape`` to data of ``native_shape``.

    A ``sig_shape`` must hold as many pixels as the native frame; a ``nav_shape``
    may hold fewer or more frames than the data (frames without data are never read).
    """
    try:
        native_shape = tuple(int(s) for s in native_shape)
        sig = None if sig_shape is None else tuple(int(s) for s in sig_shape)
        nav = None if nav_shape is None else tuple(int(s) for s in nav_shape)
    except (TypeError, ValueError) as e:
        raise DataSetException(
            f"{where}: shapes must be sequences of integers, got nav_shape {nav_shape!r}, "
            f"sig_shape {sig_shape!r}"
        ) from e
    if not 1 <= sig_dims <= len(native_shape):
        raise DataSetException(f"{where}: sig_dims={sig_dims} does not fit shape {native_shape}")
    native_sig = native_shape[len(native_shape) - sig_dims :]
    native_nav = native_shape[: len(native_shape) - sig_dims] or (1,)
    sig = native_sig if sig is None else sig
    if prod(sig) != prod(native_sig):
        raise DataSetException(
            f"{where}: sig_shape {sig} holds {prod(sig)} pixels, "
            f"but the data's frames {native_sig} hold {prod(native_sig)}"
        )
    nav = native_nav if nav is None else nav
    if not nav or not sig or any(s < 1 for s in nav + sig):
        raise DataSetException(f"{where}: shapes must be positive, got nav {nav}, sig {sig}")
    return nav, sig


def check_scan_size(scan: Sequence[int], n_frames: int, sync_offset: int, where: str) -> None:
    """A scan size from a format's metadata must not need more frames than the data can
    give (``n_frames`` and the frames a ``sync_offset`` shifts in)."""
    if prod(scan) > n_frames + abs(int(sync_offset)):
        raise DataSetException(
            f"{where}: scan size {tuple(scan)} needs {prod(scan)} frames, the data has "
            f"{n_frames}; pass nav_shape"
        )


def dataset_shape(
    nav_shape: Sequence[int] | None,
    sig_shape: Sequence[int] | None,
    native_shape: Sequence[int],
    sig_dims: int,
    n_frames: int,
    sync_offset: int,
    where: str,
    dtype=None,
) -> Shape:
    """The dataset's shape from the user's shapes and the data's, with the common checks.

    Applies :func:`resolve_shapes`; the navigation shape may ask for more or fewer
    frames than the ``n_frames`` the data holds (frames without data are never read).
    Checks that the ``sync_offset`` is valid and (given the ``dtype``) that the size
    is possible.

    Raises
    ------
    DataSetException
        Naming ``where`` and the shape that does not fit, or for an invalid offset.
    """
    nav, sig = resolve_shapes(nav_shape, sig_shape, native_shape, sig_dims, where)
    check_sync_offset(sync_offset, n_frames, where)
    check_size(nav + sig, "u1" if dtype is None else dtype, where)
    return Shape(nav + sig, sig_dims=len(sig))
