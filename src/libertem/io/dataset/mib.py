"""Quantum Detectors Merlin ``.mib`` files: single files and many-file acquisitions.

Every frame starts with an ASCII header
``MQ1,<seq>,<header size>,<chips>,<width>,<height>,<U08|U16|U32|R64>,<layout>,...``.
Processed frames (``U08``, ``U16``, ``U32``) are big-endian; they are read in
place (strided memory maps skipping the headers) and byte-swapped/converted
straight into the tile buffers. Raw frames (``R64``, counter depth 1, 6, 12 or
24, single chip or 2x2 quad) are decoded by numba kernels, see
:mod:`libertem.io.dataset.base.decode`. Frames are handed out as stored, not
flipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    DataSet,
    FileSpan,
    FrameLayout,
    LayoutPartition,
    check_io_backend,
    dataset_shape,
)
from libertem.io.dataset.base.files import check_file

_U_DTYPES = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}
_R64_DTYPES = {1: "u1", 6: "u1", 12: "u2", 24: "u4"}
_MAX_HEADER = 1 << 16


@dataclass(frozen=True)
class MIBHeader:
    """The fields of a frame header that describe the data."""

    seq: int
    header_size: int
    n_chips: int
    width: int
    height: int
    pixel_depth: str
    layout: str
    counter_depth: int | None

    @property
    def quad(self) -> bool:
        """Whether raw frames are in 2x2 quad order."""
        return self.pixel_depth == "R64" and self.layout.lower().startswith("2x2")

    def frame_bytes(self, counter_depth: int | None) -> int:
        """Bytes of data per frame."""
        npix = self.width * self.height
        if self.pixel_depth in _U_DTYPES:
            return npix * np.dtype(_U_DTYPES[self.pixel_depth]).itemsize
        return {1: npix // 8, 6: npix, 12: 2 * npix, 24: 4 * npix}[counter_depth]


def _int(fields, i, name, where, lo=0, hi=1 << 31) -> int:
    try:
        value = int(fields[i])
    except (IndexError, ValueError):
        raise DataSetException(f"{where}: corrupt MIB header: bad {name}") from None
    if not lo <= value <= hi:
        raise DataSetException(f"{where}: corrupt MIB header: {name} {value} out of range")
    return value


def parse_mib_header(data: bytes, where: str) -> MIBHeader:
    """Parse the ASCII header at the start of ``data`` (at least the whole header).

    Raises
    ------
    DataSetException
        If ``data`` does not start with a valid Merlin frame header.
    """
    if not data.startswith(b"MQ1,"):
        raise DataSetException(f"{where}: not a MIB file (no 'MQ1' frame header)")
    fields = data[:64].split(b",")
    header_size = _int(fields, 2, "header size", where, 16, _MAX_HEADER)
    if len(data) < header_size:
        raise DataSetException(f"{where}: file truncated inside the first frame header")
    try:
        text = data[:header_size].decode("ascii")
    except UnicodeDecodeError:
        raise DataSetException(f"{where}: corrupt MIB header: not ASCII") from None
    fields = [f.strip() for f in text.split(",")]
    pixel_depth = fields[6] if len(fields) > 6 else ""
    if pixel_depth not in _U_DTYPES and pixel_depth != "R64":
        raise DataSetException(f"{where}: corrupt MIB header: unknown pixel depth {pixel_depth!r}")
    counter_depth = None
    if "MQ1A" in fields:
        i = fields.index("MQ1A") + 3
        if i < len(fields) and fields[i].isdigit():
            counter_depth = int(fields[i])
    return MIBHeader(
        seq=_int(fields, 1, "sequence number", where),
        header_size=header_size,
        n_chips=_int(fields, 3, "number of chips", where, 1, 64),
        width=_int(fields, 4, "width", where, 1, 1 << 16),
        height=_int(fields, 5, "height", where, 1, 1 << 16),
        pixel_depth=pixel_depth,
        layout=fields[7] if len(fields) > 7 else "",
        counter_depth=counter_depth,
    )


def read_mib_header(path: str) -> MIBHeader:
    """The first frame header of a ``.mib`` file."""
    check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head.startswith(b"MQ1,"):
                size = _int(head.split(b","), 2, "header size", path, 16, _MAX_HEADER)
                head += f.read(size - len(head)) if size > len(head) else b""
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e
    return parse_mib_header(head, path)


def read_hdr(path: str) -> dict[str, str]:
    """The ``key: value`` lines of a Merlin ``.hdr`` file."""
    size = check_file(path)
    if size > 1 << 20:
        raise DataSetException(f"{path}: not a Merlin .hdr file (too large)")
    with open(path, "rb") as f:
        text = f.read()
    if not text.startswith(b"HDR"):
        raise DataSetException(f"{path}: not a Merlin .hdr file (no 'HDR' line)")
    result = {}
    for line in text.decode("ascii", errors="replace").splitlines()[1:]:
        if "\t" in line:
            key, value = line.split("\t", 1)
            result[key.strip().rstrip(":").strip()] = value.strip()
    return result


def _hdr_int(hdr: dict, key: str, path: str) -> int | None:
    if key not in hdr:
        return None
    try:
        return int(hdr[key])
    except ValueError:
        raise DataSetException(f"{path}: corrupt .hdr: {key} is {hdr[key]!r}") from None


def find_acquisition(path: str) -> tuple[str | None, list[str]]:
    """The ``.hdr`` file (or ``None``) and the ``.mib`` files of the acquisition of ``path``."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    names = os.listdir(folder) if os.path.isdir(folder) else []

    def members(prefix):
        pattern = re.compile(re.escape(prefix) + r"\d*\.mib$", re.IGNORECASE)
        return [os.path.join(folder, n) for n in names if pattern.match(n)]

    if ext.lower() == ".hdr":
        check_file(path)
        mibs = members(stem)
        if not mibs:
            raise DataSetException(f"{path}: no .mib files of this acquisition found")
        return path, mibs
    check_file(path)
    hdrs = [n for n in names if n.lower().endswith(".hdr") and stem.startswith(n[:-4])]
    hdrs = [n for n in hdrs if stem[len(n) - 4 :].isdigit() or len(n) - 4 == len(stem)]
    if not hdrs:
        return None, [path]
    hdr = max(hdrs, key=len)
    if len(hdr) - 4 == len(stem):
        return os.path.join(folder, hdr), [path]
    return os.path.join(folder, hdr), members(hdr[:-4])


class MIBDataSet(DataSet):
    """A Merlin acquisition: one ``.mib`` file or many, with their ``.hdr``.

    Parameters
    ----------
    path
        The ``.hdr`` file or any ``.mib`` file of the acquisition.
    nav_shape
        Navigation shape; by default from the ``.hdr`` (frames in acquisition and
        frames per trigger), else the number of frames.
    sig_shape
        Reinterpret frames with this shape (same number of pixels).
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default) or ``'buffered'``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend: str | None = None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        self._path = os.fspath(path)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._io_backend = check_io_backend(io_backend, self._path)
        self._shape = None
        self._dtype = None
        self._layout = None

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

    def _scan(self, mibs: list[str], counter_depth: int | None):
        """Layout of the frames in ``mibs`` (sorted by sequence number)."""
        headers = [(read_mib_header(p), p) for p in mibs]
        headers.sort(key=lambda hp: hp[0].seq)
        first = headers[0][0]
        depth = first.counter_depth if first.counter_depth is not None else counter_depth
        if first.pixel_depth == "R64":
            if depth not in _R64_DTYPES:
                raise DataSetException(
                    f"{headers[0][1]}: raw frames need a counter depth of 1, 6, 12 or 24, "
                    f"found {depth}"
                )
            if first.quad and (first.width, first.height) != (512, 512):
                raise DataSetException(f"{headers[0][1]}: raw 2x2 quad frames must be 512x512")
            per_word = 64 // {1: 1, 6: 8, 12: 16, 24: 16}[depth]
            if (first.width * first.height) % per_word:
                raise DataSetException(
                    f"{headers[0][1]}: raw frames of {first.width}x{first.height} pixels do not "
                    "fill whole 64-bit words"
                )
        frame_bytes = first.frame_bytes(depth)
        stride = first.header_size + frame_bytes
        spans = []
        for h, p in headers:
            if (h.header_size, h.width, h.height, h.pixel_depth) != (
                first.header_size,
                first.width,
                first.height,
                first.pixel_depth,
            ):
                raise DataSetException(f"{p}: frame format differs from {headers[0][1]}")
            size = check_file(p)
            if size % stride:
                raise DataSetException(
                    f"{p}: file truncated or header contradicts the file size: {size} bytes "
                    f"is not a whole number of frames of {stride} bytes "
                    f"({first.header_size} header + {frame_bytes} data)"
                )
            n = size // stride
            _check_frame_header(p, (n - 1) * stride, first.header_size)
            spans.append(FileSpan(p, first.header_size, stride, n))
        if first.pixel_depth in _U_DTYPES:
            stored = _U_DTYPES[first.pixel_depth]
            # big-endian values, viewed in place; iter_tiles byte-swaps + converts
            # into the tile buffer with one np.copyto
            layout = FrameLayout(tuple(spans), frame_bytes, (first.height, first.width), stored)
            dtype = np.dtype(stored).newbyteorder("=")
        else:
            layout = FrameLayout(
                tuple(spans),
                frame_bytes,
                (first.height, first.width),
                "u1",
                decoder="r64",
                decoder_args=(depth, first.quad),
            )
            dtype = np.dtype(_R64_DTYPES[depth])
        return layout, dtype

    def initialize(self, executor) -> MIBDataSet:
        hdr_path, mibs = find_acquisition(self._path)
        hdr = read_hdr(hdr_path) if hdr_path is not None else {}
        where = hdr_path or self._path
        counter_depth = _hdr_int(hdr, "Counter Depth (number)", where)
        layout, dtype = self._scan(mibs, counter_depth)
        n_file = layout.n_frames
        nav = self._nav_shape
        if nav is None:
            n_acq = _hdr_int(hdr, "Frames in Acquisition (Number)", where) or 0
            fpt = _hdr_int(hdr, "Frames per Trigger (Number)", where) or 1
            if n_acq > 0 and self.sync_offset == 0 and n_acq > n_file:
                raise DataSetException(
                    f"{where}: header says {n_acq} frames, but the .mib files hold {n_file}"
                )
            if n_acq <= 0:
                nav = (n_file,)
            elif 1 < fpt < n_acq and n_acq % fpt == 0:
                nav = (n_acq // fpt, fpt)
            else:
                nav = (n_acq,)
        shape = dataset_shape(
            nav, self._sig_shape, (n_file, *layout.sig_shape), 2, n_file, self.sync_offset, where
        )
        nav, sig = tuple(shape.nav), tuple(shape.sig)
        if sig != tuple(layout.sig_shape):
            layout = FrameLayout(
                layout.files,
                layout.frame_bytes,
                sig,
                layout.stored_dtype,
                layout.decoder,
                layout.decoder_args,
            )
            if layout.decoder_args[1:] == (True,):
                raise DataSetException(
                    f"{where}: raw 2x2 quad frames cannot be read with sig_shape {sig}"
                )
        self._layout = layout
        self._shape = Shape(nav + sig, sig_dims=len(sig))
        self._dtype = dtype
        return self

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def layout(self) -> FrameLayout:
        """Where the frames are stored."""
        return self._layout

    def make_partition(self, start: int, stop: int) -> LayoutPartition:
        if self._layout is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        return LayoutPartition(
            self._layout,
            start,
            stop,
            self._shape,
            self._dtype,
            sync_offset=self.sync_offset,
            io_backend=self._io_backend,
        )


def _check_frame_header(path: str, offset: int, header_size: int) -> None:
    """Check that a frame header starts at ``offset`` (catches wrong frame sizes)."""
    with open(path, "rb") as f:
        f.seek(offset)
        if f.read(4) != b"MQ1,":
            raise DataSetException(
                f"{path}: corrupt file or header contradicts the file size: no frame header "
                f"at byte {offset}"
            )
