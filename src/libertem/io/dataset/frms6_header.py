"""PNDetector pnCCD ``.frms6`` acquisitions: the files, their headers, gain maps.

An acquisition is a text header ``<stem>.hdr`` and data files ``<stem>_000.frms6``,
``<stem>_001.frms6``, ...; ``_000`` holds the dark (offset) frames recorded without beam,
the following files the signal frames.

The ``.hdr`` file has ``[section]`` lines and ``key=value`` lines (``;`` or ``#`` start a
comment). Used here: ``stemimagesizey`` and ``stemimagesizex`` (the scan), and ``bin`` in
section ``readoutmode`` (the binning: 1, 2 or 4; 1 if absent).

A ``.frms6`` file starts with a little-endian file header of at least 1024 bytes: the
header size (2 bytes), the size of each frame's header (2), 3 bytes padding, a version
(1), 80 bytes comment, the stored frame width and height (2 each), 928 bytes comment
and the number of frames (4). Then, per frame, the frame header and
``height x width`` ``uint16`` little-endian values.

The pnCCD is read out from two opposite edges. A stored row holds one row of each half
side by side: the first ``width / 2`` values belong to the top half, the others to the
bottom half, which is stored rotated by 180 degrees. On-chip binning combines
``binning`` rows of each half into one stored row; the decoded frame keeps the
detector's geometry by repeating each binned row ``binning`` times. A decoded frame has
``(2 * height * binning, width / 2)`` pixels, 264 x 264 for the pnCCD (S)TEM camera
(decoded by :mod:`~libertem.io.dataset.frms6_decode`).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.files import check_file

FILE_HEADER_SIZE = 1024
BINNINGS = (1, 2, 4)
_MAX_HDR_BYTES = 1 << 20

FILE_HEADER_DTYPE = np.dtype(
    [
        ("header_size", "<u2"),
        ("frame_header_size", "<u2"),
        ("padding_1", "V3"),
        ("version", "u1"),
        ("comment_1", "V80"),
        ("width", "<u2"),
        ("height", "<u2"),
        ("comment_2", "V928"),
        ("num_frames", "<u4"),
    ]
)
assert FILE_HEADER_DTYPE.itemsize == FILE_HEADER_SIZE


# --- the .hdr file ---------------------------------------------------------------------------


def read_hdr(path) -> dict[str, dict[str, str]]:
    """The ``.hdr`` file as ``{section: {key: value}}`` (keys lower case; values text).

    Raises
    ------
    DataSetException
        If the file is missing, too large, or holds no ``key=value`` line.
    """
    path = os.fspath(path)
    size = check_file(path)
    if size > _MAX_HDR_BYTES:
        raise DataSetException(f"{path}: not a FRMS6 .hdr file (larger than 1 MiB)")
    with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    result: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            result.setdefault(section, {})[key.strip().lower()] = value.strip()
    if not result:
        raise DataSetException(f"{path}: not a FRMS6 .hdr file (no 'key=value' lines)")
    return result


def hdr_value(hdr: dict, key: str, section: str | None = None) -> str | None:
    """The value of ``key`` in ``section`` (any section if ``None``), or ``None``."""
    if section is not None:
        return hdr.get(section, {}).get(key)
    for values in hdr.values():
        if key in values:
            return values[key]
    return None


def hdr_int(hdr: dict, key: str, where: str, section: str | None = None) -> int | None:
    """An integer value of the ``.hdr`` (``None`` if absent)."""
    value = hdr_value(hdr, key, section)
    if value is None:
        return None
    try:
        return int(float(value)) if value.strip().lower() not in ("", "nan") else None
    except (ValueError, OverflowError):
        raise DataSetException(f"{where}: corrupt .hdr: {key} is {value!r}") from None


def hdr_binning(hdr: dict, where: str) -> int:
    """The binning of the acquisition (``bin`` in ``[readoutmode]``, default 1)."""
    binning = hdr_int(hdr, "bin", where, "readoutmode")
    binning = 1 if binning is None else binning
    if binning not in BINNINGS:
        raise DataSetException(
            f"{where}: unsupported binning {binning}; FRMS6 data is binned 1, 2 or 4 times"
        )
    return binning


def hdr_scan_shape(hdr: dict, where: str) -> tuple[int, int] | None:
    """The scan size ``(stemimagesizey, stemimagesizex)``, or ``None`` if not given."""
    ny = hdr_int(hdr, "stemimagesizey", where)
    nx = hdr_int(hdr, "stemimagesizex", where)
    if ny is None or nx is None or ny < 1 or nx < 1:
        return None
    return ny, nx


# --- the .frms6 files -------------------------------------------------------------------------


@dataclass(frozen=True)
class FRMS6FileHeader:
    """The fields of a ``.frms6`` file header that describe the data."""

    header_size: int
    frame_header_size: int
    version: int
    width: int
    height: int
    num_frames: int

    @property
    def frame_bytes(self) -> int:
        """Bytes of data per frame."""
        return self.width * self.height * 2

    @property
    def stride(self) -> int:
        """Bytes per frame, header included."""
        return self.frame_header_size + self.frame_bytes


def read_file_header(path) -> FRMS6FileHeader:
    """The header of a ``.frms6`` file, checked against the file's size.

    ``num_frames`` is the number of whole frames (from the header, or from the file size
    where the header says 0).

    Raises
    ------
    DataSetException
        If the header is corrupt, or the file is shorter than it says.
    """
    path = os.fspath(path)
    size = check_file(path)
    if size < FILE_HEADER_SIZE:
        raise DataSetException(f"{path}: not a FRMS6 file: {size} bytes, shorter than a header")
    with open(path, "rb") as f:
        raw = f.read(FILE_HEADER_SIZE)
    rec = np.frombuffer(raw, dtype=FILE_HEADER_DTYPE)[0]
    h = FRMS6FileHeader(
        header_size=int(rec["header_size"]),
        frame_header_size=int(rec["frame_header_size"]),
        version=int(rec["version"]),
        width=int(rec["width"]),
        height=int(rec["height"]),
        num_frames=int(rec["num_frames"]),
    )
    if h.header_size < FILE_HEADER_SIZE:
        raise DataSetException(f"{path}: corrupt FRMS6 header: header size {h.header_size}")
    if h.width < 2 or h.width % 2 or h.height < 1:
        raise DataSetException(
            f"{path}: corrupt FRMS6 header: frames of {h.width} x {h.height} values "
            "(the width must be even)"
        )
    available = (size - h.header_size) // h.stride if size > h.header_size else 0
    if h.num_frames == 0:
        return dataclasses.replace(h, num_frames=available)
    if h.num_frames > available:
        raise DataSetException(
            f"{path}: file truncated or header contradicts the file size: header says "
            f"{h.num_frames} frames of {h.stride} bytes, the file holds {available}"
        )
    return h


def sig_shape_of(header: FRMS6FileHeader, binning: int) -> tuple[int, int]:
    """Shape of a decoded frame."""
    return 2 * header.height * binning, header.width // 2


_NUMBERED = re.compile(r"(.*)_(\d+)\.frms6", re.IGNORECASE)


def _stem(path: str) -> str:
    name = os.path.basename(path)
    if name.lower().endswith(".hdr"):
        return name[:-4]
    m = _NUMBERED.fullmatch(name)
    if m is None:
        raise DataSetException(
            f"{path}: not a FRMS6 file: expected '<stem>.hdr' or '<stem>_NNN.frms6'"
        )
    return m.group(1)


def get_filenames(path, disable_glob=False) -> list[str]:
    """The ``.frms6`` files of the acquisition of ``path`` (its ``.hdr`` or any of them),
    in file number order; with ``disable_glob``, just ``[path]``."""
    path = os.fspath(path)
    if disable_glob:
        return [path]
    folder = os.path.dirname(os.path.abspath(path))
    stem = _stem(path)
    pattern = re.compile(re.escape(stem) + r"_(\d+)\.frms6", re.IGNORECASE)
    found = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        m = pattern.fullmatch(name)
        if m is not None:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return [p for _, p in sorted(found)]


def find_acquisition(path) -> tuple[str, list[str]]:
    """The ``.hdr`` file and the ``.frms6`` files (dark frames first) of ``path``.

    Raises
    ------
    DataSetException
        If the ``.hdr`` or the ``.frms6`` files are missing.
    """
    path = os.fspath(path)
    check_file(path)
    folder = os.path.dirname(os.path.abspath(path))
    hdr = path if path.lower().endswith(".hdr") else os.path.join(folder, _stem(path) + ".hdr")
    check_file(hdr)
    files = get_filenames(path)
    if not files:
        raise DataSetException(f"{path}: no '{_stem(path)}_NNN.frms6' files found")
    return hdr, files


# --- gain maps -----------------------------------------------------------------------------


class GainMapCSVDialect(csv.Dialect):
    """The CSV dialect of gain maps: one frame row per line, values separated by ``;``."""

    delimiter = ";"
    doublequote = False
    escapechar = None
    lineterminator = "\n"
    quotechar = '"'
    quoting = csv.QUOTE_NONNUMERIC
    skipinitialspace = True


def read_gain_map(path, sig_shape) -> np.ndarray:
    """The gain map in the CSV file ``path`` (:class:`GainMapCSVDialect`), as ``float32`` of
    ``sig_shape``.

    Raises
    ------
    DataSetException
        If the file is missing, not numeric, ragged, or of another shape.
    """
    path = os.fspath(path)
    size = check_file(path)
    if size > 64 * 1024 * 1024:
        raise DataSetException(f"{path}: gain map file too large ({size} bytes)")
    rows = []
    try:
        with open(path, newline="") as f:
            for row in csv.reader(f, dialect=GainMapCSVDialect):
                values = [v for v in row if v != ""]
                if values:
                    rows.append([float(v) for v in values])
    except (ValueError, csv.Error, UnicodeDecodeError) as e:
        raise DataSetException(f"{path}: not a numeric ';'-separated gain map: {e}") from e
    if not rows or len({len(r) for r in rows}) != 1:
        raise DataSetException(f"{path}: gain map rows are empty or of different lengths")
    gain = np.array(rows, dtype=np.float32)
    if gain.shape != tuple(sig_shape):
        raise DataSetException(
            f"{path}: gain map of shape {gain.shape} does not fit frames of {tuple(sig_shape)}"
        )
    return gain
