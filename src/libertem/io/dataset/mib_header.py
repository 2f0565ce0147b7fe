"""Merlin ``.mib`` frame headers and ``.hdr`` acquisition headers.

Every frame starts with an ASCII header
``MQ1,<seq>,<header size>,<chips>,<width>,<height>,<U08|U16|U32|R64>,<layout>,...``;
the ``.hdr`` file of an acquisition holds ``key:<TAB>value`` lines, among them the
counter depth and the number of frames (in all and per trigger).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from libertem.common.exceptions import DataSetException
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


def hdr_int(hdr: dict, key: str, path: str) -> int | None:
    """The integer value of ``key`` in a parsed ``.hdr`` (``None`` if it is missing).

    Raises
    ------
    DataSetException
        Naming ``path``, if the value is not an integer.
    """
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


def _check_frame_header(path: str, offset: int, header_size: int) -> None:
    """Check that a frame header starts at ``offset`` (catches wrong frame sizes)."""
    with open(path, "rb") as f:
        f.seek(offset)
        if f.read(4) != b"MQ1,":
            raise DataSetException(
                f"{path}: corrupt file or header contradicts the file size: no frame header "
                f"at byte {offset}"
            )


class HeaderDict(TypedDict, total=False):
    """What the first frame header of a ``.mib`` file says, in numbers.

    Keys: ``header_size_bytes``, ``dtype`` (numpy dtype string of the stored values;
    ``'u1'`` bytes for raw frames), ``mib_dtype`` (``'U08'``, ``'U16'``, ``'U32'`` or
    ``'R64'``), ``mib_kind`` (``'u'`` processed or ``'r'`` raw), ``bits_per_pixel``
    (stored bits per pixel), ``counter_depth``, ``image_size`` (``(height, width)``),
    ``image_size_bytes``, ``sequence_first_image``, ``filesize``, ``num_images``,
    ``num_chips``, ``sensor_layout`` (e.g. ``'2x2'``).
    """

    header_size_bytes: int
    dtype: str
    mib_dtype: str
    mib_kind: str
    bits_per_pixel: int
    counter_depth: int | None
    image_size: tuple[int, int]
    image_size_bytes: int
    sequence_first_image: int
    filesize: int
    num_images: int
    num_chips: int
    sensor_layout: str


_RAW_BITS = {1: 1, 6: 8, 12: 16, 24: 32}


class MIBHeaderReader:
    """Reads the first frame header of a ``.mib`` file (once, when first needed).

    Parameters
    ----------
    path
        The ``.mib`` file.
    fields
        Already known header fields (then the file is not read).
    sequence_start
        Sequence number of the acquisition's first frame: :attr:`start_idx` counts
        from it.
    counter_depth
        Counter depth from the ``.hdr`` file, for raw frames whose header lacks it.
    """

    def __init__(
        self,
        path: str,
        fields: HeaderDict | None = None,
        sequence_start: int = 0,
        counter_depth: int | None = None,
    ):
        self.path = os.fspath(path)
        self._fields = fields
        self._sequence_start = int(sequence_start)
        self._counter_depth = counter_depth

    @property
    def fields(self) -> HeaderDict:
        """The header fields."""
        if self._fields is None:
            self._fields = self.read_header()
        return self._fields

    @property
    def num_frames(self) -> int:
        """Frames in the file."""
        return self.fields["num_images"]

    @property
    def sequence_start(self) -> int:
        """Sequence number of the acquisition's first frame."""
        return self._sequence_start

    @sequence_start.setter
    def sequence_start(self, value: int) -> None:
        self._sequence_start = int(value)

    @property
    def start_idx(self) -> int:
        """Index of the file's first frame in the acquisition."""
        return self.fields["sequence_first_image"] - self._sequence_start

    def read_header(self) -> HeaderDict:
        """Read and check the first frame header and the file size.

        Raises
        ------
        DataSetException
            If the file is not a ``.mib`` file, its header is corrupt, or its size is
            not a whole number of frames.
        """
        h = read_mib_header(self.path)
        depth = h.counter_depth if h.counter_depth is not None else self._counter_depth
        if h.pixel_depth == "R64":
            if depth not in _RAW_BITS:
                raise DataSetException(
                    f"{self.path}: raw frames need a counter depth of 1, 6, 12 or 24, "
                    f"found {depth}"
                )
            if h.quad and (h.width, h.height) != (512, 512):
                raise DataSetException(f"{self.path}: raw 2x2 quad frames must be 512x512")
            bits = _RAW_BITS[depth]
            per_word = 64 // min(bits, 16)
            if (h.width * h.height) % per_word:
                raise DataSetException(
                    f"{self.path}: raw frames of {h.width}x{h.height} pixels do not fill "
                    "whole 64-bit words"
                )
            dtype, kind = "u1", "r"
        else:
            dtype, kind = _U_DTYPES[h.pixel_depth], "u"
            bits = np.dtype(dtype).itemsize * 8
        frame_bytes = h.frame_bytes(depth)
        stride = h.header_size + frame_bytes
        size = check_file(self.path)
        if size % stride:
            raise DataSetException(
                f"{self.path}: file truncated or header contradicts the file size: {size} "
                f"bytes is not a whole number of frames of {stride} bytes "
                f"({h.header_size} header + {frame_bytes} data)"
            )
        n = size // stride
        _check_frame_header(self.path, (n - 1) * stride, h.header_size)
        return HeaderDict(
            header_size_bytes=h.header_size,
            dtype=dtype,
            mib_dtype=h.pixel_depth,
            mib_kind=kind,
            bits_per_pixel=bits,
            counter_depth=depth,
            image_size=(h.height, h.width),
            image_size_bytes=frame_bytes,
            sequence_first_image=h.seq,
            filesize=size,
            num_images=n,
            num_chips=h.n_chips,
            sensor_layout=h.layout.strip() or "1x1",
        )


def read_hdr_file(path) -> dict[str, str]:
    """The ``key: value`` lines of a Merlin ``.hdr`` file (see :func:`read_hdr`)."""
    return read_hdr(os.fspath(path))


def is_valid_hdr(path) -> bool:
    """Whether ``path`` is a readable Merlin ``.hdr`` file."""
    try:
        read_hdr(os.fspath(path))
    except (DataSetException, OSError):
        return False
    return True


def nav_shape_from_hdr(hdr: dict) -> tuple[int, ...] | None:
    """The navigation shape an ``.hdr`` describes: ``(triggers, frames per trigger)`` or
    ``(frames,)``; ``None`` if it states no number of frames."""
    n_acq = hdr_int(hdr, "Frames in Acquisition (Number)", ".hdr") or 0
    fpt = hdr_int(hdr, "Frames per Trigger (Number)", ".hdr") or 1
    if n_acq <= 0:
        return None
    if 1 < fpt < n_acq and n_acq % fpt == 0:
        return (n_acq // fpt, fpt)
    return (n_acq,)


def get_filenames(path: str, disable_glob=False) -> list[str]:
    """The ``.mib`` files of the acquisition of ``path`` (a ``.hdr`` or ``.mib`` file).

    With ``disable_glob``, only ``path`` itself (or, for a ``.hdr``, the ``.mib`` file of
    the same name).
    """
    path = os.fspath(path)
    if disable_glob:
        if path.lower().endswith(".hdr"):
            path = path[:-4] + ".mib"
        check_file(path)
        return [path]
    return sorted(find_acquisition(path)[1])


def get_image_count_and_sig_shape(
    path: str, disable_glob: bool = False
) -> tuple[int, tuple[int, int]]:
    """Frames in all ``.mib`` files of the acquisition of ``path``, and the frame shape."""
    readers = [MIBHeaderReader(p) for p in get_filenames(path, disable_glob)]
    return sum(r.num_frames for r in readers), tuple(readers[0].fields["image_size"])
