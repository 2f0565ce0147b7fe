"""BasePartition: a partition of frames stored as records in the files of a FileSet."""

from __future__ import annotations

import dataclasses

import numpy as np

from libertem.common.slice import Slice
from libertem.io.dataset.base.backend import IOBackend, resolve_backend
from libertem.io.dataset.base.blocks import clip_tiles, selected_range, stored_range
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.filesource import FileFrameSource, LayoutPartition
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.partition import Partition
from libertem.io.dataset.base.tiles import DataTile, iter_tiles


class BasePartition(LayoutPartition):
    """Frames of a dataset stored in the files of a :class:`FileSet`.

    Tiles are read by our frame sources (memory maps or buffered/direct reads, in
    blocks of frames) when the data are plain values or the decoder names a block
    kernel (:meth:`Decoder.layout_decoder`); otherwise the read ranges of the file
    set are decoded range by range with the decoder's decode function.

    Parameters
    ----------
    meta
        The dataset's :class:`~libertem.io.dataset.base.meta.DataSetMeta` (its
        ``raw_dtype`` is the dtype of the decoded values).
    partition_slice
        The partition's flat-navigation slice.
    fileset
        The files (their ``native_dtype`` is the stored dtype).
    start_frame
        File frame of the partition's first frame (the partition start plus the
        dataset's ``sync_offset``).
    num_frames
        Frames in the partition.
    io_backend
        The :class:`~libertem.io.dataset.base.backend.IOBackend` (``None``: memory maps).
    decoder
        The :class:`~libertem.io.dataset.base.decoders.Decoder`, or ``None`` for plain values.
    """

    def __init__(
        self,
        meta: DataSetMeta,
        partition_slice: Slice,
        fileset: FileSet,
        start_frame: int,
        num_frames: int,
        io_backend: IOBackend | None,
        decoder=None,
    ):
        backend = resolve_backend(io_backend, fileset[0].path if len(fileset) else "")
        Partition.__init__(self, meta, partition_slice, backend, decoder)
        if int(num_frames) != self.stop - self.start:
            raise ValueError(
                f"num_frames {num_frames} differs from the partition slice's "
                f"{self.stop - self.start} frames"
            )
        self._fileset = fileset
        self._start_frame = int(start_frame)
        self._num_frames = int(num_frames)
        self.sync_offset = self._start_frame - self.start
        self.layout = None
        native = fileset[0].native_dtype if len(fileset) else np.dtype(self.dtype)
        how = (native.str, None, ()) if decoder is None else decoder.layout_decoder(native)
        if how is not None and len(fileset):
            stored, name, args = how
            self.layout = fileset.to_layout(
                tuple(meta.shape.sig), None if name is None else (name, args)
            )
            if np.dtype(stored) != native:
                self.layout = dataclasses.replace(self.layout, stored_dtype=np.dtype(stored).str)

    @property
    def fileset(self) -> FileSet:
        """The files of the partition."""
        return self._fileset

    @property
    def start_frame(self) -> int:
        """File frame of the partition's first frame."""
        return self._start_frame

    @property
    def num_frames(self) -> int:
        """Frames in the partition."""
        return self._num_frames

    def get_locations(self):
        """``None``: files are shared, any worker may read them."""
        return None

    def open_source(self) -> FileFrameSource:
        """The frame source of this partition (block reading)."""
        # layout frames are counted from the first file of the (possibly partial) file set
        first = self._fileset[0].start_idx
        return FileFrameSource(self.layout, self.dtype, self.sync_offset - first, self._io_backend)

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        if not len(self._fileset):
            raise ValueError(f"{self}: the file set holds no files")
        if self.layout is not None:
            return iter_tiles(
                self._planned_source(roi_part),
                self.start,
                self.stop,
                scheme,
                dest_dtype,
                roi_part,
                self._corrections,
            )
        return self._decoded_tiles(scheme, dest_dtype, roi_part)

    def _get_read_ranges(self, tiling_scheme, roi=None):
        """The read plan of this partition's tiles: ``(tile slices, byte ranges, scheme
        indices)`` (see ``FileSet.get_read_ranges``); ``roi`` as for :meth:`get_tiles`
        (numpy or sparse, over the whole dataset)."""
        native = self._fileset[0].native_dtype
        return self._fileset.get_read_ranges(
            self.start, self.stop, native, tiling_scheme, self.sync_offset, self._roi_part(roi)
        )

    def _decoded_tiles(self, scheme, dest_dtype, roi_part):
        """Tiles decoded range by range with the decoder's decode function."""
        native = self._fileset[0].native_dtype
        ranges = self._fileset.get_read_ranges(
            self.start, self.stop, native, scheme, self.sync_offset, roi_part
        )
        impl = self._io_backend.get_impl()
        stored = stored_range(self.start, self.stop, self.sync_offset, self._fileset[-1].end_idx)
        k0, k1 = selected_range(self.start, stored, roi_part)
        yield from clip_tiles(
            self._decoded_from(impl, scheme, ranges, roi_part, dest_dtype, native), k0, k1
        )

    def _decoded_from(self, impl, scheme, ranges, roi_part, dest_dtype, native):
        for tile in impl.get_tiles(
            scheme,
            self._fileset,
            ranges,
            roi_part,
            native,
            dest_dtype,
            self._decoder,
            self.sync_offset,
            self._corrections,
        ):
            sl = tile.slice
            local = Slice((sl.origin[0] - self.start, *sl.origin[1:]), sl.shape)
            yield DataTile(tile.data, local, tile.scheme_idx, self.start)
