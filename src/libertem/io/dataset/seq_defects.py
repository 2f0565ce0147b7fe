"""Corrections stored beside a Norpix ``.seq`` file: dark frame, gain map, defect maps.

Files (all optional), for ``data.seq``:

``data.seq.dark.mrc``, ``data.seq.gain.mrc``
    A dark frame and a gain map, one MRC frame each, of the recorded frame shape.
``data.xml``
    Maps of defective pixels of the sensor, one per binning::

        <Defects>
          <bad_pixel_map rows="H" columns="W">   <!-- the unbinned sensor -->
            <defect row="5"/>                    <!-- a whole row -->
            <defect column="7"/>                 <!-- a whole column -->
            <defect rows="10-12"/>               <!-- rows 10 to 12 -->
            <defect columns="20-21"/>
            <defect row="2" column="3"/>         <!-- one pixel -->
          </bad_pixel_map>
          <bad_pixel_map rows="H/2" columns="W/2"> ... </bad_pixel_map>  <!-- binned by 2 -->
        </Defects>
``data.seq.metadata``
    How the frames were taken from the sensor::

        <metadata><binning>2</binning><roi x="0" y="0" width="W" height="H"/></metadata>

    (ROI in unbinned sensor pixels; without this file: no binning, the whole sensor.)

The map for the recording's binning is used; without one, the unbinned map is binned
(a binned pixel is excluded if any of its sensor pixels is). The map is then cut to the
ROI and must match the frame shape.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import sparse

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.io.corrections.corrset import CorrectionSet

_MAX_XML_BYTES = 16 * 1024 * 1024
#: the largest defect map accepted (a sensor of 32768 x 32768 pixels)
MAX_MAP_PIXELS = 2**30


def bin_array2d(a: np.ndarray, binning: int) -> np.ndarray:
    """``a`` binned by ``binning`` in both axes: sums of blocks (``any`` for booleans).

    The shape must be divisible by ``binning``.
    """
    a = np.asarray(a)
    b = int(binning)
    if b < 1 or a.shape[0] % b or a.shape[1] % b:
        raise ValueError(f"cannot bin an array of shape {a.shape} by {binning}")
    blocks = a.reshape(a.shape[0] // b, b, a.shape[1] // b, b)
    return blocks.any(axis=(1, 3)) if a.dtype == bool else blocks.sum(axis=(1, 3))


def array_cropping(arr, start_size, req_size, offsets) -> np.ndarray:
    """The part of ``arr`` (of shape ``start_size``) of ``req_size`` at ``offsets`` (y, x)."""
    arr = np.asarray(arr)
    if tuple(arr.shape) != tuple(start_size):
        raise ValueError(f"array of shape {arr.shape} is not of the stated size {start_size}")
    (oy, ox), (h, w) = offsets, req_size
    if oy < 0 or ox < 0 or oy + h > arr.shape[0] or ox + w > arr.shape[1]:
        raise ValueError(f"a crop of {req_size} at {offsets} does not fit {tuple(arr.shape)}")
    return arr[oy : oy + h, ox : ox + w]


def xml_map_sizes(bad_pixel_maps) -> list[tuple[int, int]]:
    """``(rows, columns)`` of each ``<bad_pixel_map>`` element.

    Raises
    ------
    DataSetException
        If a size is not a positive integer, or larger than :data:`MAX_MAP_PIXELS`.
    """
    sizes = []
    for m in bad_pixel_maps:
        try:
            rows, cols = int(m.get("rows")), int(m.get("columns"))
        except (TypeError, ValueError):
            raise DataSetException(
                "defect map: <bad_pixel_map> needs integer 'rows' and 'columns' attributes"
            ) from None
        if rows < 1 or cols < 1 or rows * cols > MAX_MAP_PIXELS:
            raise DataSetException(
                f"defect map: a map of {rows} x {cols} pixels is impossible "
                f"(at most {MAX_MAP_PIXELS} pixels)"
            )
        sizes.append((rows, cols))
    return sizes


def xml_unbinned_map_maker(xy_map_sizes) -> int:
    """Index of the unbinned map: the largest one."""
    if not xy_map_sizes:
        raise DataSetException("defect map: no <bad_pixel_map>")
    areas = [r * c for r, c in xy_map_sizes]
    return areas.index(max(areas))


def xml_binned_map_maker(xy_map_sizes) -> dict[int, int]:
    """Binning factor -> index, for the maps that are the unbinned one binned by an integer."""
    full = xy_map_sizes[xml_unbinned_map_maker(xy_map_sizes)]
    result = {}
    for i, (r, c) in enumerate(xy_map_sizes):
        if (r, c) != full and r and full[0] % r == 0 and full[0] // r == full[1] // max(c, 1):
            if full[1] % c == 0:
                result[full[0] // r] = i
    return result


def xml_map_index_selector(used_y) -> int:
    """The index of the one map marked as used in ``used_y`` (a boolean per map)."""
    used = np.flatnonzero(np.asarray(used_y, dtype=bool))
    if used.size != 1:
        raise DataSetException(f"defect map: {used.size} maps fit the data, need exactly one")
    return int(used[0])


def _span(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    lo, hi = int(lo), int(hi or lo)
    if hi < lo:
        raise ValueError(text)
    return list(range(lo, hi + 1))


def xml_defect_coord_extractor(bad_pixel_map, map_index, map_sizes):
    """Excluded rows, columns and pixels ``(row, column)`` of a ``<bad_pixel_map>``.

    Coordinates must lie inside the map's size ``map_sizes[map_index]``.
    """
    rows_n, cols_n = map_sizes[map_index]
    rows, cols, pixels = [], [], []
    for d in bad_pixel_map.iter("defect"):
        try:
            r, c = d.get("row"), d.get("column")
            if r is not None and c is not None:
                pixels.append((int(r), int(c)))
            elif r is not None or d.get("rows") is not None:
                rows.extend(_span(r if r is not None else d.get("rows")))
            elif c is not None or d.get("columns") is not None:
                cols.extend(_span(c if c is not None else d.get("columns")))
        except ValueError:
            raise DataSetException(f"defect map: bad <defect {dict(d.attrib)}>") from None
    bad = [r for r in rows if not 0 <= r < rows_n] + [c for c in cols if not 0 <= c < cols_n]
    bad += [p for p in pixels if not (0 <= p[0] < rows_n and 0 <= p[1] < cols_n)]
    if bad:
        raise DataSetException(
            f"defect map: defects {bad[:5]} outside the map of {map_sizes[map_index]}"
        )
    return rows, cols, pixels


def xml_generate_map_size(exc_rows, exc_cols, exc_pix, size, metadata) -> np.ndarray:
    """The boolean map of ``size`` with the excluded rows, columns and pixels set, binned
    (``metadata['bin_map']``) and cut to the ROI of ``metadata`` (``'roi'``: y, x, height,
    width in the map's pixels)."""
    m = np.zeros(tuple(size), dtype=bool)
    m[list(exc_rows), :] = True
    m[:, list(exc_cols)] = True
    for r, c in exc_pix:
        m[r, c] = True
    binning = int(metadata.get("bin_map", 1))
    if binning > 1:
        m = bin_array2d(m, binning)
    y, x, h, w = metadata.get("roi") or (0, 0, *m.shape)
    return array_cropping(m, m.shape, (h, w), (y, x))


def xml_defect_data_extractor(root, metadata) -> np.ndarray:
    """The excluded pixels of the frames (a boolean map of ``metadata['frame_shape']``),
    from the map that fits ``metadata['binning']`` and ``metadata['roi']`` (unbinned)."""
    maps = root.findall(".//bad_pixel_map")
    sizes = xml_map_sizes(maps)
    binning = int(metadata.get("binning", 1))
    full = xml_unbinned_map_maker(sizes)
    binned = xml_binned_map_maker(sizes)
    chosen = binned.get(binning, full) if binning > 1 else full
    idx = xml_map_index_selector([i == chosen for i in range(len(sizes))])
    rows, cols, pixels = xml_defect_coord_extractor(maps[idx], idx, sizes)
    # either a map made for the binning, or the sensor map binned here
    bin_map = 1 if idx != full else binning
    roi = metadata.get("roi")
    roi = None if roi is None else tuple(int(v) // binning for v in roi)
    result = xml_generate_map_size(
        rows, cols, pixels, sizes[idx], {"bin_map": bin_map, "roi": roi}
    )
    shape = tuple(metadata.get("frame_shape", result.shape))
    if result.shape != shape:
        raise DataSetException(
            f"defect map: the map for binning {binning} gives {result.shape}, frames are {shape}"
        )
    return result


def xml_processing(tree, metadata_dict) -> sparse.COO:
    """The excluded pixels of a parsed defect XML (``ElementTree``) as a ``sparse.COO``."""
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    return sparse.COO.from_numpy(xml_defect_data_extractor(root, metadata_dict))


def _read_xml(path: str):
    if os.path.getsize(path) > _MAX_XML_BYTES:
        raise DataSetException(f"{path}: too large for a defect map")
    try:
        return ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise DataSetException(f"{path}: cannot read the XML: {e}") from e


def read_seq_metadata(path: str, frame_shape: tuple[int, int]) -> dict:
    """Binning and ROI from ``<path>.metadata`` (defaults without it)."""
    meta: dict = {"binning": 1, "roi": None, "frame_shape": tuple(frame_shape)}
    if not os.path.isfile(path):
        return meta
    root = _read_xml(path).getroot()
    try:
        if root.findtext("binning") is not None:
            meta["binning"] = int(root.findtext("binning"))
        roi = root.find("roi")
        if roi is not None:
            meta["roi"] = tuple(int(roi.get(k)) for k in ("y", "x", "height", "width"))
    except (TypeError, ValueError):
        raise DataSetException(f"{path}: binning and roi must be integers") from None
    return meta


def _read_mrc_frame(path: str, sig_shape) -> np.ndarray:
    from libertem.io.dataset.mrc import MRC_HEADER_BYTES, parse_mrc_header

    with open(path, "rb") as f:
        h = parse_mrc_header(f.read(MRC_HEADER_BYTES), path)
        if h.nx * h.ny != prod(sig_shape):
            raise DataSetException(
                f"{path}: a frame of {h.ny} x {h.nx} does not fit frames of {tuple(sig_shape)}"
            )
        f.seek(h.data_offset)
        nbytes = h.nx * h.ny * h.dtype.itemsize
        raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise DataSetException(f"{path}: file truncated: the frame needs {nbytes} bytes")
    return np.frombuffer(raw, dtype=h.dtype).astype(np.float32).reshape(sig_shape)


def load_seq_corrections(seq_path: str, sig_shape) -> CorrectionSet:
    """The corrections stored beside ``seq_path`` (see the module description), for frames
    of ``sig_shape``; an empty ``CorrectionSet`` if there are no such files."""
    sig_shape = tuple(int(s) for s in sig_shape)
    dark = gain = excluded = None
    if os.path.isfile(seq_path + ".dark.mrc"):
        dark = _read_mrc_frame(seq_path + ".dark.mrc", sig_shape)
    if os.path.isfile(seq_path + ".gain.mrc"):
        gain = _read_mrc_frame(seq_path + ".gain.mrc", sig_shape)
    xml_path = os.path.splitext(seq_path)[0] + ".xml"
    if os.path.isfile(xml_path):
        frame = sig_shape if len(sig_shape) == 2 else (1, prod(sig_shape))
        meta = read_seq_metadata(seq_path + ".metadata", frame)
        mask = xml_processing(_read_xml(xml_path), meta)
        excluded = mask.reshape(sig_shape)
    return CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
