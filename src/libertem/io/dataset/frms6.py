"""PNDetector pnCCD acquisitions: ``<stem>.hdr`` and ``<stem>_NNN.frms6`` files.

The file layout, the unfolding of the two detector halves and the binning are described
in :mod:`libertem.io.dataset.frms6_header`. The first file, ``_000``, holds dark frames:
with ``enable_offset_correction`` (the default) their mean is subtracted from every
frame, and an optional gain map (``gain_map_path``, a CSV file) multiplies the result.
Both are applied on the fly to the tiles, as the dataset's
:meth:`~FRMS6DataSet.get_correction_data`.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import flat_nonzero, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.corrections.corrset import CorrectionSet
from libertem.io.dataset.base import DataSet, TilingScheme
from libertem.io.dataset.base.backend import IOBackend
from libertem.io.dataset.base.basepartition import BasePartition
from libertem.io.dataset.base.checks import check_scan_size, dataset_shape
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.decoders import Decoder
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.filebased import FileSetDataSet
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.filesource import FileFrameSource
from libertem.io.dataset.base.layout import FileSpan, FrameLayout
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.readranges import make_get_read_ranges
from libertem.io.dataset.frms6_decode import (
    DECODERS,
    decode_frms6_b1,
    decode_frms6_b2,
    decode_frms6_b4,
)
from libertem.io.dataset.frms6_header import (
    FRMS6FileHeader,
    GainMapCSVDialect,
    find_acquisition,
    get_filenames,
    hdr_binning,
    hdr_scan_shape,
    read_file_header,
    read_gain_map,
    read_hdr,
    sig_shape_of,
)

_IO_BACKENDS = ["mmap", "buffered", "direct"]
_FRAMES_DECODER = "libertem.io.dataset.frms6_decode:frames_decoder"
#: decoded bytes per block when averaging the dark frames
_DARK_BLOCK_BYTES = 16 * 1024 * 1024

__all__ = [
    "BasePartition",
    "CorrectionSet",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "Decoder",
    "FRMS6DataSet",
    "FRMS6DatasetParams",
    "FRMS6Decoder",
    "FRMS6FileSet",
    "FRMS6Partition",
    "File",
    "FileSet",
    "GainMapCSVDialect",
    "IOBackend",
    "MessageConverter",
    "Shape",
    "Slice",
    "TilingScheme",
    "decode_frms6_b1",
    "decode_frms6_b2",
    "decode_frms6_b4",
    "flat_nonzero",
    "frms6_get_read_ranges",
    "get_filenames",
    "make_get_read_ranges",
    "prod",
]


# --- LiberTEM's read range and decoder interfaces ------------------------------------------


@numba.njit(nogil=True, cache=True)
def _frms6_px_to_bytes(
    bpp,
    frame_in_file,
    slice_origin,
    slice_shape,
    sig_shape,
    file_header,
    frame_header,
    frame_footer,
    extra,
):
    # every tile needs its whole stored frame: the halves are folded side by side
    sig_size = 1
    for s in sig_shape:
        sig_size *= s
    frame_bytes = sig_size // extra * bpp // 8
    stride = frame_header + frame_bytes + frame_footer
    start = file_header + frame_in_file * stride + frame_header
    return start, start + frame_bytes


#: Read ranges of FRMS6 tiles: the whole stored frame for every tile and frame (``extra``
#: is the binning). Signature as
#: :func:`~libertem.io.dataset.base.readranges.default_get_read_ranges`.
frms6_get_read_ranges = make_get_read_ranges(px_to_bytes=_frms6_px_to_bytes)


class FRMS6FileSet(FileSet):
    """The signal ``.frms6`` files, with the acquisition's ``.hdr`` contents.

    Parameters
    ----------
    global_header
        The ``.hdr`` as returned by :func:`~libertem.io.dataset.frms6_header.read_hdr`
        (it gives the binning).
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.fileset.FileSet`.
    """

    def __init__(self, global_header, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.global_header = global_header
        self.binning = hdr_binning(global_header, "FRMS6 .hdr")

    # read ranges of whole stored frames (see :data:`frms6_get_read_ranges`)
    def _bits_per_pixel(self, dtype) -> int:
        return 16

    def _get_read_ranges_fn(self):
        return frms6_get_read_ranges

    def _read_ranges_extra(self):
        return self.binning


class FRMS6Decoder(Decoder):
    """Decoder of stored frames binned ``binning`` (1, 2 or 4) times."""

    def __init__(self, binning):
        if int(binning) not in DECODERS:
            raise ValueError(f"unsupported binning {binning}; use 1, 2 or 4")
        self.binning = int(binning)

    def get_decode(self, native_dtype, read_dtype):
        return DECODERS[self.binning]

    def get_native_dtype(self, inp_native_dtype, read_dtype):
        return np.dtype(np.uint8)


# --- partitions -----------------------------------------------------------------------------


def frames_layout(fileset, header: FRMS6FileHeader, binning: int, sig_shape) -> FrameLayout:
    """The :class:`FrameLayout` of the frames of ``fileset``, decoded to ``sig_shape``."""
    return fileset.to_layout(
        sig_shape=tuple(sig_shape),
        decoder=(_FRAMES_DECODER, (binning, header.height, header.width)),
    )


class FRMS6Partition(BasePartition):
    """Frames of a FRMS6 dataset.

    Parameters
    ----------
    binning
        The acquisition's binning (1, 2 or 4).
    header
        The :class:`~libertem.io.dataset.frms6_header.FRMS6FileHeader` of the signal files.
    *args, **kwargs
        ``meta, partition_slice, fileset, start_frame, num_frames, io_backend, decoder``
        as for :class:`~libertem.io.dataset.base.BasePartition`.
    """

    def __init__(self, binning, header, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._binning = int(binning)
        self._header = header
        # read whole frames with the block kernel (the decoder's functions are for
        # LiberTEM's range-by-range reading)
        self.layout = frames_layout(self._fileset, header, self._binning, self.meta.shape.sig)

    def validate_tiling_scheme(self, tiling_scheme) -> None:
        """Raise ``ValueError`` unless the scheme is for this dataset's frames and its slices
        lie within them."""
        super().validate_tiling_scheme(tiling_scheme)
        sig = tuple(self.meta.shape.sig)
        for origin, shape in tiling_scheme.slices_array:
            if any(o < 0 or o + s > n for o, s, n in zip(origin, shape, sig)):
                raise ValueError(
                    f"invalid tiling scheme: slice at {tuple(origin)} of shape {tuple(shape)} "
                    f"outside the frames of {sig}"
                )


class FRMS6DatasetParams(DatasetParamsConverter):
    """Parameters of a FRMS6 dataset as a JSON message (``"type": "FRMS6"``)."""

    SCHEMA = dataset_schema(
        "FRMS6DatasetParams",
        "FRMS6",
        {
            **COMMON_PROPERTIES,
            "enable_offset_correction": {"type": "boolean"},
            "gain_map_path": {"type": ["string", "null"]},
            "dest_dtype": {"type": ["string", "null"]},
        },
    )


# --- the dataset ----------------------------------------------------------------------------


class FRMS6DataSet(FileSetDataSet):
    """A pnCCD acquisition in FRMS6 files.

    Parameters
    ----------
    path
        The ``.hdr`` file, or any ``.frms6`` file of the acquisition.
    enable_offset_correction
        Subtract the mean of the dark frames (file ``_000``) from every frame.
    gain_map_path
        A gain map (CSV, see :class:`GainMapCSVDialect`) of the decoded frame's shape;
        the dark-corrected data is multiplied by it.
    dest_dtype
        The dataset's dtype; by default ``float32`` with corrections, else ``uint16``.
    nav_shape
        Navigation shape; by default the scan size of the ``.hdr``, else the number of
        frames.
    sig_shape
        Reinterpret frames with this shape (same number of pixels).
    sync_offset
        Dataset frame ``i`` is signal frame ``i + sync_offset``.
    io_backend
        ``'mmap'`` (default), ``'buffered'`` or ``'direct'``, or an ``IOBackend``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    def __init__(
        self,
        path,
        enable_offset_correction=True,
        gain_map_path=None,
        dest_dtype=None,
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        io_backend=None,
        num_partitions=None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        self._path = os.fspath(path)
        self._enable_offset_correction = bool(enable_offset_correction)
        self._gain_map_path = None if gain_map_path is None else os.fspath(gain_map_path)
        corrected = self._enable_offset_correction or self._gain_map_path is not None
        if dest_dtype is None:
            dest_dtype = np.float32 if corrected else np.uint16
        self._dest_dtype = np.dtype(dest_dtype)
        if corrected and not np.issubdtype(self._dest_dtype, np.floating):
            raise DataSetException(
                f"{self._path}: dest_dtype {self._dest_dtype} cannot hold dark/gain corrected "
                "data; use a float dtype or disable the corrections"
            )
        self._nav_shape = None if nav_shape is None else tuple(nav_shape)
        self._sig_shape = None if sig_shape is None else tuple(sig_shape)
        self._dark_file = None
        self._header = None
        self._binning = None
        self._gain = None
        self._dark = None

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"frms6", "hdr"}

    @classmethod
    def get_supported_io_backends(cls) -> list[str]:
        return list(_IO_BACKENDS)

    @classmethod
    def get_msg_converter(cls):
        return FRMS6DatasetParams

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith((".hdr", ".frms6")):
            return False
        try:
            hdr_path, files = find_acquisition(path)
            read_hdr(hdr_path)
            read_file_header(files[0])
        except (DataSetException, OSError, ValueError):
            return False
        return {"parameters": {"path": path}, "info": {}}

    def initialize(self, executor) -> FRMS6DataSet:
        hdr_path, files = find_acquisition(self._path)
        hdr = read_hdr(hdr_path)
        binning = hdr_binning(hdr, hdr_path)
        headers = [read_file_header(f) for f in files]
        first = headers[0]
        for f, h in zip(files, headers):
            if (h.width, h.height) != (first.width, first.height):
                raise DataSetException(
                    f"{f}: frames of {h.width} x {h.height} differ from {files[0]}'s "
                    f"{first.width} x {first.height}"
                )
        if len(files) < 2:
            raise DataSetException(
                f"{self._path}: only the dark frame file {files[0]} found, no signal frames"
            )
        if self._enable_offset_correction and first.num_frames < 1:
            raise DataSetException(f"{files[0]}: no dark frames for the offset correction")
        native_sig = sig_shape_of(first, binning)
        data = []
        start = 0
        for f, h in zip(files[1:], headers[1:]):
            data.append(
                File(
                    f,
                    start,
                    start + h.num_frames,
                    "<u2",
                    (h.height, h.width),
                    frame_header=h.frame_header_size,
                    file_header=h.header_size,
                )
            )
            start += h.num_frames
        n_frames = start
        if n_frames < 1:
            raise DataSetException(f"{self._path}: the signal files hold no frames")
        scan = hdr_scan_shape(hdr, hdr_path)
        if self._nav_shape is None and scan is not None:
            check_scan_size(scan, n_frames, self._sync_offset, hdr_path)
        nav = self._nav_shape or scan or (n_frames,)
        shape = dataset_shape(
            nav,
            self._sig_shape,
            (n_frames, *native_sig),
            2,
            n_frames,
            self._sync_offset,
            self._path,
        )
        gain = None
        if self._gain_map_path is not None:
            gain = read_gain_map(self._gain_map_path, native_sig).reshape(tuple(shape.sig))
        self._binning = binning
        self._header = headers[1]
        self._dark_file = (files[0], first)
        self._gain = gain
        self._fileset = FRMS6FileSet(hdr, data)
        meta = self._set_meta(shape, np.uint16, n_frames, {"binning": binning, "hdr": hdr})
        meta.dtype = self._dest_dtype
        return self

    @property
    def dtype(self) -> np.dtype:
        return self._dest_dtype

    def check_valid(self) -> bool:
        """Re-read the file headers; raise ``DataSetException`` if they no longer fit."""
        for f in self._need_fileset():
            if read_file_header(f.path).num_frames < f.num_frames:
                raise DataSetException(f"{f.path}: fewer frames than when it was opened")
        return True

    def get_cache_key(self) -> str:
        return files_cache_key(
            self,
            [self._dark_file[0], *(f.path for f in self._need_fileset())],
            offset_correction=self._enable_offset_correction,
            gain_map=self._gain_map_path,
            dtype=str(self._dest_dtype),
        )

    def get_diagnostics(self) -> list[dict]:
        """Facts about the acquisition: binning, dark and signal frames."""
        self._need_fileset()
        return [
            {"name": "Binning", "value": str(self._binning)},
            {"name": "Dark frames", "value": str(self._dark_file[1].num_frames)},
            {"name": "Signal frames", "value": str(self._image_count)},
            {"name": "Offset correction", "value": str(self._enable_offset_correction)},
            {"name": "Gain map", "value": str(self._gain_map_path)},
        ]

    def get_decoder(self) -> FRMS6Decoder:
        return FRMS6Decoder(self._binning or 1)

    def dark_frame(self) -> np.ndarray:
        """The mean of the dark frames (file ``_000``), ``float32`` of the signal shape."""
        self._need_fileset()
        if self._dark is None:
            path, h = self._dark_file
            native = sig_shape_of(h, self._binning)
            span = FileSpan(path, h.header_size + h.frame_header_size, h.stride, h.num_frames)
            layout = FrameLayout(
                (span,),
                h.frame_bytes,
                native,
                "u1",
                _FRAMES_DECODER,
                (self._binning, h.height, h.width),
            )
            source = FileFrameSource(layout, np.uint16, 0, self.get_io_backend())
            block = max(1, _DARK_BLOCK_BYTES // (prod(native) * 4))
            buf = np.empty((min(block, h.num_frames), *native), dtype=np.float32)
            acc = np.zeros(native, dtype=np.float64)
            try:
                for a in range(0, h.num_frames, block):
                    b = min(a + block, h.num_frames)
                    source.read_into(a, b, buf[: b - a])
                    acc += buf[: b - a].sum(axis=0, dtype=np.float64)
            finally:
                source.close()
            self._dark = (acc / h.num_frames).astype(np.float32).reshape(tuple(self.shape.sig))
        return self._dark

    def get_correction_data(self) -> CorrectionSet:
        """The dark frame (with ``enable_offset_correction``) and the gain map, if given."""
        self._need_fileset()
        dark = self.dark_frame() if self._enable_offset_correction else None
        return CorrectionSet(dark=dark, gain=self._gain)

    def make_partition(self, start: int, stop: int) -> FRMS6Partition:
        return FRMS6Partition(self._binning, self._header, *self._partition_args(start, stop))
