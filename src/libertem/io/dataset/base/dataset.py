"""The DataSet interface: what every format implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from math import ceil

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base.partition import Partition

PARTITION_TARGET_BYTES = 256 * 1024 * 1024


class DataSet(ABC):
    """A dataset: a shape, a dtype, and partitions that read tiles.

    Subclasses describe one format. The constructor only records arguments;
    :meth:`initialize` opens and checks the data (raising
    :class:`~libertem.exceptions.DataSetException`), and
    :meth:`get_partitions` cuts it into units of parallel work.
    """

    def __init__(self, num_partitions: int | None = None, sync_offset: int = 0):
        if num_partitions is not None and int(num_partitions) < 1:
            raise DataSetException(f"num_partitions must be at least 1, got {num_partitions}")
        self._num_partitions = None if num_partitions is None else int(num_partitions)
        self._sync_offset = int(sync_offset)
        self._num_workers = 1

    # to implement --------------------------------------------------------------
    @abstractmethod
    def initialize(self, executor) -> DataSet:
        """Open and validate the data; return ``self``."""

    @property
    @abstractmethod
    def shape(self) -> Shape:
        """Shape of the dataset, navigation axes first."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype:
        """Native dtype of the data."""

    @abstractmethod
    def make_partition(self, start: int, stop: int) -> Partition:
        """The partition of flat frames ``[start, stop)``."""

    # defaults -------------------------------------------------------------------
    @classmethod
    def detect_params(cls, path: str, executor=None) -> dict | bool:
        """Parameters to open ``path`` with this format, or ``False`` if it is not one."""
        return False

    def check_valid(self) -> bool:
        """Check that the data can be read; raise ``DataSetException`` otherwise."""
        return True

    def get_base_shape(self) -> tuple[int, ...]:
        """The natural signal block: tile sides are multiples of it."""
        return (1,) * (len(self.shape.sig) - 1) + (self.shape.sig[-1],)

    def get_preferred_depth(self) -> int | None:
        """The natural tile depth, or ``None`` to derive it from the tile size."""
        return None

    @property
    def sync_offset(self) -> int:
        """Shift between dataset frames and frames in the file."""
        return self._sync_offset

    def set_num_workers(self, n: int) -> None:
        """Tell the dataset how many workers will read it (for partitioning)."""
        self._num_workers = max(1, int(n))

    def get_num_partitions(self) -> int:
        """Number of partitions: as asked, else ~256 MiB each, at least one per worker."""
        nav_size = self.shape.nav.size
        if self._num_partitions is not None:
            return max(1, min(self._num_partitions, nav_size))
        nbytes = self.shape.size * np.dtype(self.dtype).itemsize
        n = max(self._num_workers, ceil(nbytes / PARTITION_TARGET_BYTES))
        return max(1, min(n, nav_size))

    def get_partitions(self) -> list[Partition]:
        """The partitions: contiguous, nearly equal ranges of flat frames."""
        nav_size = self.shape.nav.size
        bounds = np.linspace(0, nav_size, self.get_num_partitions() + 1).astype(np.int64)
        return [
            self.make_partition(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a
        ]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} shape={tuple(self.shape)} dtype={self.dtype}>"


def check_sync_offset(sync_offset: int, image_count: int, where: str) -> int:
    """Validate a ``sync_offset`` against the number of frames in the data."""
    sync_offset = int(sync_offset)
    if not -image_count < sync_offset < image_count:
        raise DataSetException(
            f"{where}: sync_offset {sync_offset} is outside the valid range "
            f"({-image_count}, {image_count}) for {image_count} frames"
        )
    return sync_offset


def resolve_shapes(
    nav_shape: Sequence[int] | None,
    sig_shape: Sequence[int] | None,
    native_shape: Sequence[int],
    sig_dims: int,
    where: str,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Apply user ``nav_shape``/``sig_shape`` to data of ``native_shape``.

    A ``sig_shape`` must hold as many pixels as the native frame; a ``nav_shape``
    may hold fewer or more frames than the data (missing frames read as zeros).
    """
    native_shape = tuple(int(s) for s in native_shape)
    if not 1 <= sig_dims <= len(native_shape):
        raise DataSetException(f"{where}: sig_dims={sig_dims} does not fit shape {native_shape}")
    native_sig = native_shape[len(native_shape) - sig_dims :]
    native_nav = native_shape[: len(native_shape) - sig_dims] or (1,)
    sig = native_sig if sig_shape is None else tuple(int(s) for s in sig_shape)
    if int(np.prod(sig)) != int(np.prod(native_sig)):
        raise DataSetException(
            f"{where}: sig_shape {sig} holds {int(np.prod(sig))} pixels, "
            f"but the data's frames {native_sig} hold {int(np.prod(native_sig))}"
        )
    nav = native_nav if nav_shape is None else tuple(int(s) for s in nav_shape)
    if any(s < 1 for s in nav + sig):
        raise DataSetException(f"{where}: shapes must be positive, got nav {nav}, sig {sig}")
    return nav, sig


def dataset_shape(
    nav_shape: Sequence[int] | None,
    sig_shape: Sequence[int] | None,
    native_shape: Sequence[int],
    sig_dims: int,
    n_frames: int,
    sync_offset: int,
    where: str,
) -> Shape:
    """The dataset's shape from the user's shapes and the data's, with the common checks.

    Applies :func:`resolve_shapes`, checks that the navigation shape fits the
    ``n_frames`` frames the data holds (unless a ``sync_offset`` shifts them) and
    that the ``sync_offset`` is valid.

    Raises
    ------
    DataSetException
        Naming ``where`` and the shape or offset that does not fit.
    """
    nav, sig = resolve_shapes(nav_shape, sig_shape, native_shape, sig_dims, where)
    needed = int(np.prod(nav))
    if sync_offset == 0 and needed > n_frames:
        raise DataSetException(
            f"{where}: nav_shape {nav} needs {needed} frames, the data has {n_frames}"
        )
    check_sync_offset(sync_offset, n_frames, where)
    return Shape(nav + sig, sig_dims=len(sig))
