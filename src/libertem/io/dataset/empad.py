"""EMPAD detector data: an XML description plus a raw file of 130 x 128 float32 records.

Each record is a 128 x 128 little-endian float32 frame followed by 2 rows of metadata;
the dataset's frames are the 128 x 128 part, read in place through a strided view.

The XML (root element ``<root>``) names the raw file in ``<raw_file filename="..."/>``
(relative to the XML's folder) and gives the scan by one of, in this order:
``<scan_parameters><series_count>N</series_count></scan_parameters>`` (a 1D series),
``<pix_x>``/``<pix_y>``, ``<scan_parameters>`` with ``<scan_resolution_x>``/``_y``, or a
raw file name ``scan_x{X}_y{Y}.raw``. Without any of these the frames form a 1D stack.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
)
from libertem.common.shape import Shape
from libertem.io.dataset.base import BasePartition, DataSet, DataSetMeta, IOBackend
from libertem.io.dataset.base.filebased import renamed_shape
from libertem.io.dataset.base.files import check_file
from libertem.io.dataset.base.records import (
    RecordFile,
    RecordLayout,
    RecordStackDataSet,
    read_head,
)
from libertem.io.dataset.raw import RawFile, RawFileSet

EMPAD_DETECTOR_SIZE = (128, 128)
EMPAD_DETECTOR_SIZE_RAW = (130, 128)
EMPAD_FRAME = EMPAD_DETECTOR_SIZE
EMPAD_RAW_ROWS = 130
EMPAD_DTYPE = np.dtype("<f4")
EMPAD_RECORD_BYTES = EMPAD_RAW_ROWS * EMPAD_FRAME[1] * EMPAD_DTYPE.itemsize
_MAX_XML_BYTES = 16 * 1024 * 1024
_NAME_RE = re.compile(r"scan_x(\d+)_y(\d+)\.raw$", re.IGNORECASE)


@dataclass(frozen=True)
class EMPADInfo:
    """What the XML says: the raw file (as written there) and the scan shape, if any."""

    raw_filename: str
    nav_shape: tuple[int, ...] | None


def _int(text: str | None, name: str, where: str) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        raise DataSetException(f"{where}: <{name}> is not an integer: {text!r}") from None
    if value < 1:
        raise DataSetException(f"{where}: <{name}> must be positive, got {value}")
    return value


def scan_from_name(name: str) -> tuple[int, int] | None:
    """``(y, x)`` from a raw file name ``scan_x{X}_y{Y}.raw``, else ``None``."""
    match = _NAME_RE.search(name)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        return None
    return int(match[2]), int(match[1])


def _scan_parameters(root, mode: str):
    """The ``<scan_parameters>`` element of ``mode`` (its ``mode`` attribute), else the
    first one without a different mode, else ``None``."""
    candidates = root.findall("scan_parameters")
    for p in candidates:
        if p.get("mode") == mode:
            return p
    for p in candidates:
        if p.get("mode") is None:
            return p
    return candidates[0] if candidates else None


def parse_empad_xml(
    buf: bytes, where: str = "EMPAD XML", scan_parameters_mode: str = "acquire"
) -> EMPADInfo:
    """Parse an EMPAD XML description (the scan of ``scan_parameters_mode``).

    Raises
    ------
    DataSetException
        If ``buf`` is no XML, has no ``<root>`` with ``<raw_file filename=...>``, or a scan
        size is not a positive integer.
    """
    try:
        root = ET.fromstring(buf)
    except (ET.ParseError, ValueError, UnicodeError, TypeError) as e:
        raise DataSetException(f"{where}: not a valid XML file: {e}") from e
    if root.tag != "root":
        raise DataSetException(f"{where}: not an EMPAD XML: root element is <{root.tag}>")
    raw = root.find("raw_file")
    name = None if raw is None else raw.get("filename")
    if not name or "\x00" in name:
        raise DataSetException(f'{where}: not an EMPAD XML: no <raw_file filename="...">')
    params = _scan_parameters(root, scan_parameters_mode)
    nav = None
    if params is not None and params.find("series_count") is not None:
        nav = (_int(params.findtext("series_count"), "series_count", where),)
    elif root.find("pix_x") is not None or root.find("pix_y") is not None:
        nav = (
            _int(root.findtext("pix_y"), "pix_y", where),
            _int(root.findtext("pix_x"), "pix_x", where),
        )
    elif params is not None and params.find("scan_resolution_x") is not None:
        nav = (
            _int(params.findtext("scan_resolution_y"), "scan_resolution_y", where),
            _int(params.findtext("scan_resolution_x"), "scan_resolution_x", where),
        )
    else:
        nav = scan_from_name(name)
    return EMPADInfo(raw_filename=name, nav_shape=nav)


def _read_xml(path: str, scan_parameters_mode: str = "acquire") -> EMPADInfo:
    size = check_file(path)
    if size > _MAX_XML_BYTES:
        raise DataSetException(f"{path}: {size} bytes is too large for an EMPAD XML file")
    return parse_empad_xml(read_head(path, size), path, scan_parameters_mode)


def get_params_from_xml(
    path, scan_parameters_mode="acquire"
) -> tuple[str, tuple[int, ...] | None]:
    """The raw file (next to the XML) and the scan shape (or ``None``) an EMPAD XML names.

    Parameters
    ----------
    path
        The XML file.
    scan_parameters_mode
        Which ``<scan_parameters mode="...">`` element gives the scan.
    """
    path = os.fspath(path)
    info = _read_xml(path, scan_parameters_mode)
    return os.path.join(os.path.dirname(path), info.raw_filename), info.nav_shape


class EMPADDatasetParams(DatasetParamsConverter):
    """JSON parameters of EMPAD data: ``path`` (the XML), ``nav_shape``, ..."""

    SCHEMA = dataset_schema("EMPADDatasetParams", "EMPAD", dict(COMMON_PROPERTIES))


class EMPADFileSet(RawFileSet):
    """The raw file of an EMPAD dataset: 130-row records of which 128 rows are the frame."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


class EMPADDataSet(RecordStackDataSet):
    """EMPAD data: 128 x 128 float32 frames, read in place skipping 2 metadata rows each.

    Parameters
    ----------
    path
        The XML description (preferred) or the ``.raw`` file itself.
    scan_size
        Deprecated name of ``nav_shape``.
    nav_shape
        Navigation shape; by default from the XML (or the raw name ``scan_x{X}_y{Y}.raw``),
        else a 1D stack of all frames.
    sig_shape
        Frame shape; by default ``(128, 128)``.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; default memory maps.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    """

    file_cls = RawFile
    fileset_cls = EMPADFileSet

    def __init__(
        self,
        path,
        scan_size=None,
        nav_shape=None,
        sig_shape=None,
        sync_offset=0,
        io_backend=None,
        num_partitions=None,
    ):
        where = os.fspath(path)
        super().__init__(
            path,
            nav_shape=renamed_shape(nav_shape, scan_size, "nav_shape", "scan_size", where),
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
            io_backend=io_backend,
        )

    @classmethod
    def get_msg_converter(cls):
        return EMPADDatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"xml", "raw"}

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not path.lower().endswith(".xml"):
            return False
        try:
            _read_xml(path)
        except DataSetException:
            return False
        return {"parameters": {"path": path}}

    def read_layout(self) -> RecordLayout:
        if self._path.lower().endswith(".xml"):
            info = _read_xml(self._path)
            raw_path = os.path.join(os.path.dirname(self._path), info.raw_filename)
            nav = info.nav_shape
            where = f"{self._path} (raw file {raw_path})"
        else:
            raw_path = self._path
            nav = scan_from_name(os.path.basename(raw_path))
            where = raw_path
        try:
            size = check_file(raw_path)
        except DataSetException as e:
            raise DataSetException(f"{where}: EMPAD raw file missing or unreadable: {e}") from e
        n_records, rest = divmod(size, EMPAD_RECORD_BYTES)
        if rest or n_records == 0:
            raise DataSetException(
                f"{where}: truncated or not EMPAD data: {size} bytes is not a whole number "
                f"of 130 x 128 float32 records ({EMPAD_RECORD_BYTES} bytes each)"
            )
        if nav is not None and prod(nav) != n_records:
            if self._nav_shape is None or self._path.lower().endswith(".xml"):
                raise DataSetException(
                    f"{where}: the scan {nav} needs {prod(nav)} frames, the raw file "
                    f"holds {n_records} ({'truncated' if n_records < prod(nav) else 'extra'})"
                )
            nav = None  # a .raw with an explicit nav_shape: the name is only a hint
        return RecordLayout(
            files=(RecordFile(raw_path, 0, n_records),),
            record_bytes=EMPAD_RECORD_BYTES,
            skip_bytes=0,
            frame_shape=EMPAD_FRAME,
            dtype=EMPAD_DTYPE,
            nav_shape=nav,
        )


__all__ = [
    "EMPAD_DETECTOR_SIZE",
    "EMPAD_DETECTOR_SIZE_RAW",
    "BasePartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "EMPADDataSet",
    "EMPADDatasetParams",
    "EMPADFileSet",
    "IOBackend",
    "MessageConverter",
    "RawFile",
    "RawFileSet",
    "Shape",
    "get_params_from_xml",
    "parse_empad_xml",
    "prod",
]
