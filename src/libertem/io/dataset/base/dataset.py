"""The DataSet interface: what every format implements, and what it gets for free."""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.lazy import lazy_names
from libertem.common.shape import Shape
from libertem.io.dataset.base.backend import BufferedBackend, IOBackend, MMapBackend, as_io_backend
from libertem.io.dataset.base.meta import DENSE_BACKENDS, DataSetMeta
from libertem.io.dataset.base.partition import Partition, split_frames
from libertem.io.utils import get_partition_shape

if TYPE_CHECKING:
    from libertem.io.dataset.base.roi import RoiHelper

PARTITION_TARGET_BYTES = 256 * 1024 * 1024

#: ``diagnostics`` entries of the frame mapping, and their ``get_sync_offset_info`` keys
_FRAME_DIAGNOSTICS = (
    ("Number of frames skipped at the beginning", "frames_skipped_start"),
    ("Number of frames ignored at the end", "frames_ignored_end"),
    ("Number of blank frames inserted at the beginning", "frames_inserted_start"),
    ("Number of blank frames inserted at the end", "frames_inserted_end"),
)


class DataSet(ABC):
    """A dataset: a shape, a dtype, and partitions that read tiles.

    Subclasses describe one format. The constructor only records arguments;
    :meth:`initialize` opens and checks the data (raising
    :class:`~libertem.exceptions.DataSetException`), and
    :meth:`get_partitions` cuts it into units of parallel work.

    Parameters
    ----------
    io_backend
        How to read files: an :class:`~libertem.io.dataset.base.backend.IOBackend`
        (or its id); ``None``: :meth:`get_default_io_backend`.
    num_partitions
        Number of partitions; by default derived from the size and the number of workers.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset`` (keyword only).
    """

    #: upper bound of the bytes in one partition
    MAX_PARTITION_SIZE = 512 * 1024 * 1024

    def __init__(
        self,
        io_backend: IOBackend | None = None,
        num_partitions: int | None = None,
        *,
        sync_offset: int = 0,
    ):
        if num_partitions is not None and int(num_partitions) < 1:
            raise DataSetException(f"num_partitions must be at least 1, got {num_partitions}")
        self._num_partitions = None if num_partitions is None else int(num_partitions)
        self._sync_offset = int(sync_offset)
        self._cores = 1
        self._meta: DataSetMeta | None = None
        self._image_count: int | None = None
        self._io_backend = as_io_backend(io_backend, type(self).__name__)
        if self._io_backend is not None:
            supported = list(self.get_supported_io_backends())
            if self._io_backend.id_ not in supported:
                raise DataSetException(
                    f"{type(self).__name__} does not support io_backend "
                    f"{self._io_backend.id_!r}; supported: {', '.join(supported) or 'none'}"
                )

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

    @property
    def stored_dtype(self) -> np.dtype:
        """The dtype of the values as the files store them, byte order included.

        Defaults to :attr:`dtype`. Formats that store the other byte order (e.g.
        big-endian Merlin frames) name it here; tiles requested in it are views of the
        stored data, for UDFs that cast while they compute.
        """
        return np.dtype(self.dtype)

    def make_partition(self, start: int, stop: int) -> Partition:
        """The partition of flat frames ``[start, stop)`` (used by :meth:`get_partitions`)."""
        raise NotImplementedError(f"{type(self).__name__} does not define make_partition")

    # format facts -----------------------------------------------------------------
    @classmethod
    def detect_params(cls, path: str, executor=None) -> dict | bool:
        """Parameters to open ``path`` with this format, or ``False`` if it is not one."""
        return False

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        """File name extensions of this format (lower case, without dot)."""
        return set()

    @classmethod
    def get_msg_converter(cls):
        """The :class:`~libertem.common.messageconverter.MessageConverter` of the format's
        parameters in JSON form."""
        raise NotImplementedError(f"{cls.__name__} has no message converter")

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        """Ids of the I/O backends this format can read with (empty: it does its own I/O)."""
        return []

    @classmethod
    def get_default_io_backend(cls) -> IOBackend:
        """The I/O backend used when none is given: buffered on Windows, memory maps else."""
        if sys.platform.startswith("win"):
            return BufferedBackend()
        return MMapBackend()

    def get_io_backend(self) -> IOBackend:
        """The I/O backend this dataset reads with."""
        backend = self._io_backend
        if backend is not None and not isinstance(backend, IOBackend):
            # subclasses may keep the id string of the backend they were given
            backend = as_io_backend(backend, type(self).__name__)
        return self.get_default_io_backend() if backend is None else backend

    def get_cache_key(self) -> str:
        """A key that identifies the data (for caches of derived results)."""
        raise NotImplementedError(f"{type(self).__name__} has no cache key")

    def get_diagnostics(self) -> list[dict]:
        """Facts about the data for display: a list of ``{"name": ..., "value": ...}``."""
        return []

    @property
    def diagnostics(self) -> list[dict]:
        """:meth:`get_diagnostics`, followed by how dataset frames map to stored ones:
        the frames skipped at the beginning and ignored at the end of the data, and the
        dataset frames without data (blank) at the beginning and at the end."""
        entries = list(self.get_diagnostics())
        try:
            info = self.get_sync_offset_info()
        except (AttributeError, DataSetException, TypeError):
            return entries
        names = {e.get("name") for e in entries if isinstance(e, dict)}
        for name, key in _FRAME_DIAGNOSTICS:
            if name not in names:
                entries.append({"name": name, "value": info[key]})
        return entries

    def check_valid(self) -> bool:
        """Check that the data can be read; raise ``DataSetException`` otherwise."""
        return True

    def get_decoder(self):
        """The :class:`~libertem.io.dataset.base.decoders.Decoder` of the stored data, or
        ``None`` for plain values."""
        return None

    def supports_correction(self) -> bool:
        """Whether corrections (dark frame, gain, excluded pixels) can be applied."""
        return True

    def get_correction_data(self):
        """Corrections the data itself calls for (an empty ``CorrectionSet`` by default)."""
        from libertem.corrections import CorrectionSet

        return CorrectionSet()

    def get_task_comm_handler(self):
        """The handler of messages between the main node and tasks (none by default)."""
        from libertem.common.executor import NoopCommHandler

        return NoopCommHandler()

    # description --------------------------------------------------------------------
    @property
    def meta(self) -> DataSetMeta | None:
        """The :class:`~libertem.io.dataset.base.meta.DataSetMeta` (``None`` before
        :meth:`initialize`)."""
        if self._meta is not None:
            return self._meta
        try:
            shape, dtype = self.shape, self.dtype
        except (AttributeError, DataSetException):
            return None
        if shape is None:
            return None
        return DataSetMeta(
            shape=shape,
            array_backends=self.array_backends,
            image_count=self.image_count,
            raw_dtype=dtype,
            sync_offset=self._sync_offset,
        )

    @property
    def array_backends(self) -> tuple[str, ...]:
        """Array backends the tiles come in natively (dense data: numpy, cupy)."""
        if self._meta is not None:
            return tuple(self._meta.array_backends)
        return DENSE_BACKENDS

    @property
    def image_count(self) -> int:
        """Number of frames stored in the file(s)."""
        if self._image_count is not None:
            return self._image_count
        return self.shape.nav.size

    @property
    def roi(self) -> RoiHelper:
        """A helper to build ROIs: ``ds.roi[index]`` is a new boolean array of the
        navigation shape, ``True`` exactly at ``mask[index]`` (any numpy basic index)."""
        from libertem.io.dataset.base.roi import RoiHelper

        return RoiHelper(self)

    @property
    def sync_offset(self) -> int:
        """Shift between dataset frames and frames in the file."""
        return self._sync_offset

    def get_sync_offset_info(self) -> dict[str, int]:
        """How ``sync_offset`` maps file frames to dataset frames.

        Returns
        -------
        dict
            ``frames_skipped_start`` (file frames before the first dataset frame),
            ``frames_ignored_end`` (file frames after the last one),
            ``frames_inserted_start`` and ``frames_inserted_end`` (dataset frames
            without a file frame, never read).
        """
        offset, count, n = self._sync_offset, self.image_count, self.shape.nav.size
        return {
            "frames_skipped_start": max(0, offset),
            "frames_ignored_end": max(0, count - n - offset),
            "frames_inserted_start": max(0, -offset),
            "frames_inserted_end": max(0, n + offset - count),
        }

    # tiling ---------------------------------------------------------------------------
    def get_base_shape(self, roi: np.ndarray | None = None) -> tuple[int, ...]:
        """The natural signal block: tile sides are multiples of it (whole rows here)."""
        return (1,) * (len(self.shape.sig) - 1) + (self.shape.sig[-1],)

    def adjust_tileshape(
        self, tileshape: tuple[int, ...], roi: np.ndarray | None
    ) -> tuple[int, ...]:
        """Adapt a negotiated ``tileshape`` (``(depth, *sig)``) to the format (unchanged here)."""
        return tuple(tileshape)

    def get_preferred_depth(self) -> int | None:
        """The natural tile depth, or ``None`` to derive it from the tile size."""
        return None

    def get_min_sig_size(self) -> int:
        """Fewest pixels per frame worth reading in one tile: a memory page of values."""
        itemsize = np.dtype(self.dtype).itemsize
        return max(1, min(self.shape.sig.size, 4096 // itemsize))

    def get_max_io_size(self) -> int | None:
        """Most bytes read at once (the I/O backend's buffer size), or ``None``."""
        return self.get_io_backend().max_io_size

    def need_decode(self, read_dtype, roi: np.ndarray | None, corrections) -> bool:
        """Whether tiles of ``read_dtype`` must be written into buffers (decoded,
        converted or corrected) rather than handed out as views of the stored data."""
        if corrections is not None and corrections.have_corrections():
            return True
        if self.get_decoder() is not None or np.dtype(read_dtype) != np.dtype(self.dtype):
            return True
        if self.get_io_backend().id_ != "mmap":
            return True
        return roi is not None and not bool(np.all(roi))

    # partitions -------------------------------------------------------------------------
    def set_num_cores(self, cores: int) -> None:
        """Tell the dataset how many workers will read it (for partitioning)."""
        self._cores = max(1, int(cores))

    def set_num_workers(self, n: int) -> None:
        """Same as :meth:`set_num_cores`."""
        self.set_num_cores(n)

    def get_num_partitions(self) -> int:
        """Number of partitions: as asked, else ~256 MiB each (at most
        :attr:`MAX_PARTITION_SIZE`), at least one per worker, and a multiple of the
        number of workers (5 partitions on 2 workers would keep one worker idle for a
        sixth of the run)."""
        nav_size = self.shape.nav.size
        if self._num_partitions is not None:
            return max(1, min(self._num_partitions, nav_size))
        nbytes = self.shape.size * np.dtype(self.dtype).itemsize
        target = min(PARTITION_TARGET_BYTES, self.MAX_PARTITION_SIZE)
        cores = max(1, self._cores)
        n = cores * ceil(max(1, ceil(nbytes / target)) / cores)
        return max(1, min(n, nav_size))

    def get_slices(self):
        """``(partition_slice, start, stop)`` of each partition, see
        :meth:`Partition.make_slices`."""
        return Partition.make_slices(self.shape, self.get_num_partitions(), self._sync_offset)

    def get_partition_ranges(self) -> list[tuple[int, int]]:
        """``(start, stop)`` flat-frame range of each partition: contiguous, nearly equal
        ranges (formats override this to align them with their storage)."""
        return split_frames(self.shape.nav.size, self.get_num_partitions())

    def get_partitions(self) -> Iterator[Partition]:
        """The partitions, as a generator (each call starts a new one).

        Yields
        ------
        Partition
            One per range of :meth:`get_partition_ranges`, in frame order, each
            knowing its index (``partition.idx``).
        """
        for idx, (a, b) in enumerate(self.get_partition_ranges()):
            p = self.make_partition(a, b)
            p.set_idx(idx)
            yield p

    def partition_shape(
        self,
        dtype,
        target_size: int,
        min_num_partitions: int | None = None,
        containing_shape: Shape | None = None,
    ) -> tuple[int, ...]:
        """A partition shape (all axes) of about ``target_size`` bytes of ``dtype``.

        Signal axes are whole; navigation axes fill up from the fastest one, so that
        partitions are contiguous runs of frames.

        Parameters
        ----------
        dtype
            Dtype the partition is read in.
        target_size
            Wanted bytes per partition.
        min_num_partitions
            At least this many partitions.
        containing_shape
            The shape the partitions must fit in (by default the dataset's).
        """
        shape = tuple(self.shape if containing_shape is None else containing_shape)
        return get_partition_shape(
            Shape(shape, sig_dims=self.shape.sig_dims),
            int(target_size) // np.dtype(dtype).itemsize,
            min_num_partitions or 1,
            1,
        )

    def __repr__(self) -> str:
        try:
            shape, dtype = tuple(self.shape), self.dtype
        except Exception:
            return f"<{type(self).__name__} (not initialized)>"
        return f"<{type(self).__name__} shape={shape} dtype={dtype}>"


def files_cache_key(dataset: DataSet, paths, **extra) -> str:
    """A cache key of ``dataset`` read from the files ``paths``, as JSON.

    It holds the dataset's class, each file's absolute path, size and modification
    time, the shape, the sync offset and ``extra`` (e.g. which array of a file), so
    that it changes when the data read changes.
    """
    files = []
    for path in paths:
        st = os.stat(path)
        files.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    key = {
        "cls": type(dataset).__name__,
        "files": files,
        "shape": list(dataset.shape),
        "sig_dims": dataset.shape.sig_dims,
        "sync_offset": dataset.sync_offset,
        **extra,
    }
    return json.dumps(key, default=str)


class WritableDataSet:
    """Mixin of datasets that can be written to, partition by partition
    (see :class:`~libertem.io.dataset.base.partition.WritablePartition`)."""


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BasePartition": "libertem.io.dataset.base.basepartition",
        "CUDA": "libertem.common.udf",
        "NUMPY": "libertem.common.udf",
        "CorrectionSet": "libertem.io.corrections.corrset",
        "MessageConverter": "libertem.common.messageconverter",
        "RoiHelper": "libertem.io.dataset.base.roi",
        "prod": "libertem.common.math",
    },
)
