"""FileSetDataSet: the base of formats whose frames are records in a FileSet."""

from __future__ import annotations

import warnings

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base.basepartition import BasePartition
from libertem.io.dataset.base.dataset import DataSet, files_cache_key
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.partition import frames_slice

FILE_IO_BACKENDS = ["mmap", "buffered", "direct"]


def renamed_shape(new, old, new_name: str, old_name: str, where: str):
    """``new``, or the deprecated ``old`` (with a warning); both given is an error."""
    if old is None:
        return new
    if new is not None:
        raise DataSetException(f"{where}: pass {new_name} only, not also {old_name}")
    warnings.warn(f"{old_name} is deprecated, use {new_name} instead", FutureWarning, stacklevel=4)
    return old


def ignored_tileshape(tileshape) -> None:
    """Warn that ``tileshape`` no longer has an effect (tiling is negotiated)."""
    if tileshape is not None:
        warnings.warn(
            "tileshape is ignored: tiles are negotiated between the UDFs and the dataset",
            FutureWarning,
            stacklevel=4,
        )


class FileSetDataSet(DataSet):
    """A dataset whose frames are fixed-size records in the files of a :class:`FileSet`.

    Subclasses set :attr:`_fileset` and :attr:`_meta` in ``initialize`` (and
    :attr:`partition_cls`, :meth:`get_decoder` as needed); partitions are
    :class:`~libertem.io.dataset.base.basepartition.BasePartition` objects reading
    with the dataset's I/O backend.
    """

    partition_cls: type[BasePartition] = BasePartition
    _fileset: FileSet | None = None

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        """``['mmap', 'buffered', 'direct']``."""
        return list(FILE_IO_BACKENDS)

    @property
    def shape(self) -> Shape:
        if self._meta is None:
            raise DataSetException(f"{type(self).__name__}: dataset is not initialized")
        return self._meta.shape

    @property
    def dtype(self):
        return None if self._meta is None else self._meta.raw_dtype

    def _need_fileset(self) -> FileSet:
        if self._fileset is None or self._meta is None:
            raise DataSetException(f"{type(self).__name__}: dataset is not initialized")
        return self._fileset

    def _set_meta(self, shape: Shape, raw_dtype, image_count: int, metadata=None) -> DataSetMeta:
        self._image_count = int(image_count)
        self._meta = DataSetMeta(
            shape=shape,
            image_count=image_count,
            raw_dtype=raw_dtype,
            metadata=metadata,
            sync_offset=self._sync_offset,
        )
        return self._meta

    def _partition_args(self, start: int, stop: int) -> tuple:
        """The common constructor arguments of the partition of frames ``[start, stop)``."""
        fileset = self._need_fileset()
        part_slice = frames_slice(start, stop, self.shape.sig)
        return (
            self._meta,
            part_slice,
            fileset,
            start + self._sync_offset,
            stop - start,
            self.get_io_backend(),
            self.get_decoder(),
        )

    def make_partition(self, start: int, stop: int) -> BasePartition:
        return self.partition_cls(*self._partition_args(start, stop))

    def check_valid(self) -> bool:
        for f in self._need_fileset():
            try:
                with open(f.path, "rb") as fh:
                    fh.read(1)
            except OSError as e:
                raise DataSetException(f"{f.path}: cannot read: {e}") from e
        return True

    def get_diagnostics(self) -> list[dict]:
        """The dtype and the number of frames in the file(s)."""
        return [
            {"name": "dtype", "value": str(self.dtype)},
            {"name": "frames in file", "value": str(self.image_count)},
        ]

    def get_cache_key(self) -> str:
        """The files, their sizes and modification times, shape and sync offset as JSON."""
        return files_cache_key(self, [f.path for f in self._need_fileset()])
