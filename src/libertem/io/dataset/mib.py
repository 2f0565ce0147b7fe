"""Quantum Detectors Merlin ``.mib`` files: single files and many-file acquisitions.

Processed frames (``U08``, ``U16``, ``U32``) are big-endian; they are read in
place (strided memory maps skipping the per-frame headers) and byte-swapped or
converted straight into the tile buffers. Raw frames (``R64``, counter depth 1, 6,
12 or 24, single chip or 2x2 quad) are decoded by numba kernels in blocks of
frames (:mod:`libertem.io.dataset.base.decode`). Frames are handed out as stored,
not flipped. Header parsing: :mod:`libertem.io.dataset.mib_header`; per-range
decode functions and encoders: :mod:`libertem.io.dataset.mib_decode`.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import flat_nonzero, make_2D_square, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    BasePartition,
    DataSet,
    DataSetMeta,
    Decoder,
    DtypeConversionDecoder,
    File,
    FileSet,
    IOBackend,
    OffsetsSizes,
    TilingScheme,
    dataset_shape,
    default_get_read_ranges,
    make_get_read_ranges,
)
from libertem.io.dataset.base.checks import check_scan_size
from libertem.io.dataset.base.filebased import FileSetDataSet, ignored_tileshape, renamed_shape
from libertem.io.dataset.mib_decode import (
    QUAD_DECODERS,
    RAW_DECODERS,
    decode_r1_swap,
    decode_r1_swap_2x2,
    decode_r6_swap,
    decode_r6_swap_2x2,
    decode_r12_swap,
    decode_r12_swap_2x2,
    decode_r24_swap,
    encode_r1,
    encode_r6,
    encode_r12,
    encode_u1,
    encode_u2,
    mib_2x2_get_read_ranges,
    mib_r24_get_read_ranges,
)
from libertem.io.dataset.mib_header import (
    HeaderDict,
    MIBHeader,
    MIBHeaderReader,
    find_acquisition,
    get_filenames,
    get_image_count_and_sig_shape,
    hdr_int,
    is_valid_hdr,
    nav_shape_from_hdr,
    parse_mib_header,
    read_hdr,
    read_hdr_file,
    read_mib_header,
)

_R64_DTYPES = {1: "u1", 6: "u1", 12: "u2", 24: "u4"}


class MIBDatasetParams(DatasetParamsConverter):
    """JSON parameters of MIB acquisitions: ``path``, ``nav_shape``, ``sig_shape``, ..."""

    SCHEMA = dataset_schema(
        "MIBDatasetParams", "MIB", {**COMMON_PROPERTIES, "disable_glob": {"type": "boolean"}}
    )


def _is_quad(header: HeaderDict) -> bool:
    return header["mib_kind"] == "r" and str(header["sensor_layout"]).lower().startswith("2x2")


class MIBDecoder(Decoder):
    """Decoder of the frames of a MIB file, chosen by its header.

    Parameters
    ----------
    header
        The :class:`HeaderDict` of the files.
    """

    def __init__(self, header: HeaderDict):
        self.header = header

    @property
    def kind(self) -> str:
        """``'u'`` (processed values) or ``'r'`` (raw)."""
        return self.header["mib_kind"]

    def get_decode(self, native_dtype, read_dtype):
        """The per-range decode function (see :mod:`libertem.io.dataset.mib_decode`)."""
        if self.kind == "u":
            return DtypeConversionDecoder().get_decode(self.header["dtype"], read_dtype)
        depth = self.header["counter_depth"]
        table = QUAD_DECODERS if _is_quad(self.header) else RAW_DECODERS
        if depth not in table:
            raise ValueError(f"no decode function for raw frames of depth {depth} in this layout")
        return table[depth]

    def get_native_dtype(self, inp_native_dtype, read_dtype):
        """Bytes (``uint8``) for raw frames, the stored (big-endian) dtype otherwise."""
        return np.dtype("u1" if self.kind == "r" else self.header["dtype"])

    def do_clear(self) -> bool:
        """``False``: every pixel of a tile is written."""
        return False

    def layout_decoder(self, native_dtype):
        if self.kind == "u":
            return np.dtype(self.header["dtype"]).str, None, ()
        return "|u1", "r64", (int(self.header["counter_depth"]), _is_quad(self.header))


class MIBFile(File):
    """A ``.mib`` file: frames of ``header['image_size_bytes']`` after per-frame headers.

    Parameters
    ----------
    header
        The file's :class:`HeaderDict`.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.File`.
    """

    def __init__(self, header, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header = header

    @property
    def frame_bytes(self) -> int:
        return int(self.header["image_size_bytes"])

    def get_array_from_memview(self, mem: memoryview, slicing: OffsetsSizes) -> np.ndarray:
        """The frames as stored values (processed) or bytes ``(n, frame_bytes)`` (raw)."""
        if self.header["mib_kind"] == "u":
            return super().get_array_from_memview(mem, slicing)
        buf = np.frombuffer(mem, dtype=np.uint8)
        stride = slicing.frame_offset + slicing.frame_size + self.frame_footer_bytes
        return np.ndarray(
            (self.num_frames, slicing.frame_size),
            dtype=np.uint8,
            buffer=buf,
            offset=slicing.file_offset + slicing.frame_offset,
            strides=(stride, 1),
        )


class MIBFileSet(FileSet):
    """The ``.mib`` files of an acquisition.

    Parameters
    ----------
    header
        The :class:`HeaderDict` of the files (all must agree).
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.FileSet`.
    """

    def __init__(self, header: HeaderDict, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header = header

    def _bits_per_pixel(self, dtype) -> int:
        return int(self.header["bits_per_pixel"])

    def _get_read_ranges_fn(self):
        # whole frames for 2x2 quads and 24-bit raw data: their pixels are not stored in
        # frame order
        if _is_quad(self.header):
            return mib_2x2_get_read_ranges
        if self.header["mib_kind"] == "r" and self.header["counter_depth"] == 24:
            return mib_r24_get_read_ranges
        return default_get_read_ranges


class MIBPartition(BasePartition):
    """A partition of a MIB acquisition.

    Parameters
    ----------
    kind
        ``'u'`` (processed) or ``'r'`` (raw).
    bit_depth
        Counter depth of the data.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.BasePartition`.
    """

    def __init__(self, kind, bit_depth, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.bit_depth = bit_depth


class MIBDataSet(FileSetDataSet):
    """A Merlin acquisition: one ``.mib`` file or many, with their ``.hdr``.

    Parameters
    ----------
    path
        The ``.hdr`` file or any ``.mib`` file of the acquisition.
    tileshape
        Ignored (tiles are negotiated); a warning says so.
    scan_size
        Deprecated name of ``nav_shape``.
    disable_glob
        Read only ``path`` (or the ``.mib`` of the same name as the ``.hdr``), not the
        other files of the acquisition.
    nav_shape
        Navigation shape; by default from the ``.hdr`` (frames in acquisition and
        frames per trigger), else the number of frames.
    sig_shape
        Reinterpret frames with this shape (same number of pixels).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default memory maps.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    def __init__(
        self,
        path,
        tileshape=None,
        scan_size=None,
        disable_glob=False,
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
        ignored_tileshape(tileshape)
        self._nav_shape = renamed_shape(nav_shape, scan_size, "nav_shape", "scan_size", self._path)
        self._sig_shape = sig_shape
        self._disable_glob = bool(disable_glob)
        self._header: HeaderDict | None = None

    @classmethod
    def get_msg_converter(cls):
        return MIBDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"mib", "hdr"}

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith((".mib", ".hdr")):
            return False
        try:
            if path.lower().endswith(".hdr"):
                read_hdr(path)
                find_acquisition(path)
            else:
                read_mib_header(path)
        except (DataSetException, OSError):
            return False
        return {"parameters": {"path": path}}

    def _readers(self, counter_depth: int | None) -> list[MIBHeaderReader]:
        """Header readers of the files, in sequence order, all of one frame format."""
        if self._disable_glob:
            paths = get_filenames(self._path, disable_glob=True)
        else:
            paths = find_acquisition(self._path)[1]
        readers = [MIBHeaderReader(p, counter_depth=counter_depth) for p in paths]
        readers.sort(key=lambda r: r.fields["sequence_first_image"])
        first = readers[0].fields
        keys = ("header_size_bytes", "image_size", "mib_dtype", "counter_depth")
        for r in readers[1:]:
            if any(r.fields[k] != first[k] for k in keys):
                raise DataSetException(f"{r.path}: frame format differs from {readers[0].path}")
        for r in readers:
            r.sequence_start = first["sequence_first_image"]
        return readers

    def initialize(self, executor) -> MIBDataSet:
        hdr_path = None if self._disable_glob else find_acquisition(self._path)[0]
        if self._disable_glob and self._path.lower().endswith(".hdr"):
            hdr_path = self._path
        hdr = read_hdr(hdr_path) if hdr_path is not None else {}
        where = hdr_path or self._path
        readers = self._readers(hdr_int(hdr, "Counter Depth (number)", where))
        header = readers[0].fields
        files, start = [], 0
        for r in readers:
            n = r.num_frames
            files.append(
                MIBFile(
                    r.fields,
                    r.path,
                    start,
                    start + n,
                    header["dtype"],
                    header["image_size"],
                    frame_header=header["header_size_bytes"],
                )
            )
            start += n
        n_file = start
        nav = self._nav_shape
        if nav is None:
            for key in ("Frames in Acquisition (Number)", "Frames per Trigger (Number)"):
                hdr_int(hdr, key, where)  # names the file if a value is corrupt
            nav = nav_shape_from_hdr(hdr) if hdr else None
            n_acq = prod(nav) if nav is not None else 0
            if n_acq > n_file and self.sync_offset == 0:
                raise DataSetException(
                    f"{where}: header says {n_acq} frames, but the .mib files hold {n_file}"
                )
            if nav is None:
                nav = (n_file,)
            else:  # a scan from the header must fit the frames the files can give
                check_scan_size(nav, n_file, self.sync_offset, where)
        shape = dataset_shape(
            nav,
            self._sig_shape,
            (n_file, *header["image_size"]),
            2,
            n_file,
            self.sync_offset,
            where,
        )
        if _is_quad(header) and tuple(shape.sig) != tuple(header["image_size"]):
            raise DataSetException(
                f"{where}: raw 2x2 quad frames cannot be read with sig_shape {tuple(shape.sig)}"
            )
        self._header = header
        self._fileset = MIBFileSet(header, files)
        if header["mib_kind"] == "u":
            dtype = np.dtype(header["dtype"]).newbyteorder("=")
        else:
            dtype = np.dtype(_R64_DTYPES[header["counter_depth"]])
        self._set_meta(shape, dtype, n_file, metadata={"header": header})
        return self

    @property
    def stored_dtype(self) -> np.dtype:
        """Big-endian ``>u2``/``>u4`` for counter frames (``U`` pixel depths), as stored;
        the decoded dtype for raw ``R`` frames."""
        header = self._header
        if header is not None and header["mib_kind"] == "u":
            return np.dtype(header["dtype"])
        return np.dtype(self.dtype)

    @property
    def header(self) -> HeaderDict | None:
        """The header of the acquisition's first file."""
        return self._header

    @property
    def layout(self):
        """Where the frames are stored (a ``FrameLayout``)."""
        decoder = self.get_decoder()
        _, name, args = decoder.layout_decoder(None)
        return self._need_fileset().to_layout(
            tuple(self.shape.sig), None if name is None else (name, args)
        )

    def get_decoder(self) -> Decoder:
        """The :class:`MIBDecoder` of the files."""
        if self._header is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return MIBDecoder(self._header)

    def get_base_shape(self, roi: np.ndarray | None = None) -> tuple[int, ...]:
        """Whole rows; for raw single-chip data as many rows as fill whole 64-bit words."""
        sig = tuple(self.shape.sig)
        if self._header is None or self._header["mib_kind"] == "u" or _is_quad(self._header):
            return (1,) * (len(sig) - 1) + (sig[-1],)
        bits = min(int(self._header["bits_per_pixel"]), 16)
        rows = 64 // math.gcd(64, sig[-1] * bits)
        return (min(rows, sig[0]),) + (1,) * (len(sig) - 2) + (sig[-1],)

    def make_partition(self, start: int, stop: int) -> MIBPartition:
        header = self._header
        return MIBPartition(
            header["mib_kind"], header["counter_depth"], *self._partition_args(start, stop)
        )

    def get_diagnostics(self) -> list[dict]:
        h = self._header or {}
        return [
            {"name": "pixel depth", "value": str(h.get("mib_dtype"))},
            {"name": "counter depth", "value": str(h.get("counter_depth"))},
            {"name": "sensor layout", "value": str(h.get("sensor_layout"))},
            {"name": "files", "value": str(len(self._fileset or ()))},
            {"name": "frames in files", "value": str(self.image_count)},
        ]


__all__ = [
    "TYPE_CHECKING",
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "Decoder",
    "DtypeConversionDecoder",
    "File",
    "FileSet",
    "HeaderDict",
    "IOBackend",
    "MIBDataSet",
    "MIBDatasetParams",
    "MIBDecoder",
    "MIBFile",
    "MIBFileSet",
    "MIBHeader",
    "MIBHeaderReader",
    "MIBPartition",
    "MessageConverter",
    "OffsetsSizes",
    "Shape",
    "TilingScheme",
    "decode_r1_swap",
    "decode_r1_swap_2x2",
    "decode_r6_swap",
    "decode_r6_swap_2x2",
    "decode_r12_swap",
    "decode_r12_swap_2x2",
    "decode_r24_swap",
    "default_get_read_ranges",
    "encode_r1",
    "encode_r6",
    "encode_r12",
    "encode_u1",
    "encode_u2",
    "flat_nonzero",
    "get_filenames",
    "get_image_count_and_sig_shape",
    "is_valid_hdr",
    "make_2D_square",
    "make_get_read_ranges",
    "mib_2x2_get_read_ranges",
    "mib_r24_get_read_ranges",
    "nav_shape_from_hdr",
    "parse_mib_header",
    "prod",
    "read_hdr",
    "read_hdr_file",
    "read_mib_header",
]
