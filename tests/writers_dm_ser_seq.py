"""Writers of small DM3/DM4, TIA SER and Norpix SEQ files, from the formats' published
descriptions, for tests. They are independent of the readers in ``libertem.io``; the tests
check them against ncempy / rsciio reading the files back.
"""

from __future__ import annotations

import struct

import numpy as np

# --- DM3 / DM4 ---------------------------------------------------------------------------------

# numpy dtype -> (ImageData.DataType, tag element type code)
DM_TYPES = {
    "int16": (1, 2),
    "float32": (2, 6),
    "uint8": (6, 10),
    "int32": (7, 3),
    "int8": (9, 9),
    "uint16": (10, 4),
    "uint32": (11, 5),
    "float64": (12, 7),
}
_SIMPLE = {2: "h", 3: "i", 4: "H", 5: "I", 6: "f", 7: "d", 8: "B", 9: "b", 10: "B"}


class Group(list):
    """A tag group for :func:`write_dm`: a list of ``(name, value)``."""


class Simple:
    def __init__(self, code, value):
        self.code, self.value = code, value


class Array:
    def __init__(self, code, values: bytes, count: int):
        self.code, self.values, self.count = code, values, count


def _text(s: str) -> Array:
    return Array(4, s.encode("utf-16-le"), len(s))


class DMWriter:
    def __init__(self, version, bo):
        self.version, self.bo = version, bo
        self.w = ">I" if version == 3 else ">Q"

    def word(self, v):
        return struct.pack(self.w, v)

    def data(self, value) -> bytes:
        if isinstance(value, Simple):
            info = [value.code]
            payload = struct.pack(self.bo + _SIMPLE[value.code], value.value)
        else:
            info = [20, value.code, value.count]
            payload = value.values
        out = b"%%%%" + self.word(len(info)) + b"".join(self.word(i) for i in info)
        return out + payload

    def group(self, g: Group) -> bytes:
        out = b"\x00\x01" + self.word(len(g))
        for name, value in g:
            body = self.group(value) if isinstance(value, Group) else self.data(value)
            kind = 20 if isinstance(value, Group) else 21
            head = bytes([kind]) + struct.pack(">H", len(name)) + name.encode("latin-1")
            if self.version == 4:
                head += struct.pack(">Q", len(body))
            out += head + body
        return out


def dm_image_group(stored: np.ndarray, dims, swapped=None) -> Group:
    """The ImageList entry of the array ``stored`` (already in file byte order), DM ``dims``."""
    image_type, elem = DM_TYPES[stored.dtype.name]
    calib = Group()
    for _ in dims:
        dim = Group(
            [("Origin", Simple(6, 0.0)), ("Scale", Simple(6, 1.0)), ("Units", _text("px"))]
        )
        calib.append(("", dim))
    brightness = Group([("Origin", Simple(6, 0.0)), ("Scale", Simple(6, 1.0))])
    calibrations = Group(
        [
            ("Brightness", brightness),
            ("Dimension", calib),
            ("DisplayCalibratedUnits", Simple(8, 1)),
        ]
    )
    image_data = Group(
        [
            ("Calibrations", calibrations),
            ("Data", Array(elem, stored.tobytes(), stored.size)),
            ("DataType", Simple(3, image_type)),
            ("Dimensions", Group([("", Simple(5, d)) for d in dims])),
            ("PixelDepth", Simple(3, stored.dtype.itemsize)),
        ]
    )
    meta = Group([("Format", _text("Diffraction image"))])
    if swapped is not None:
        meta.append(("Data Order Swapped", Simple(8, int(swapped))))
    return Group(
        [
            ("ImageData", image_data),
            ("ImageTags", Group([("Meta Data", meta)])),
            ("Name", _text("test")),
        ]
    )


def write_dm(path, data: np.ndarray, version=4, layout="c", thumbnail=True, byteorder="<"):
    """Write ``data`` as a DM3/DM4 file.

    ``layout``: ``'c'`` stores a 2D ``(y, x)``, 3D ``(z, y, x)`` or 4D ``(ny, nx, ky, kx)``
    array in C order (4D with ``Data Order Swapped = 1``); ``'sig_first'`` stores 4D
    ``(ny, nx, ky, kx)`` the older STEMx way: dimensions ``[nx, ny, kx, ky]``, the scan
    axes fastest. ``byteorder``: the byte order of the values ('<' or '>').
    """
    data = np.asarray(data)
    swapped = None
    if layout == "sig_first":
        stored = np.ascontiguousarray(data.transpose(2, 3, 0, 1))  # (ky, kx, ny, nx)
    else:
        stored = np.ascontiguousarray(data)
        if data.ndim == 4:
            swapped = True
    dims = stored.shape[::-1]
    stored = stored.astype(stored.dtype.newbyteorder(byteorder))
    image_list = Group()
    if thumbnail:
        thumb = np.arange(16, dtype=np.uint8).reshape(4, 4)
        image_list.append(("", dm_image_group(thumb, (4, 4))))
    image_list.append(("", dm_image_group(stored, dims, swapped)))
    root = Group(
        [
            ("ApplicationBounds", Array(3, struct.pack(byteorder + "4i", 0, 0, 10, 10), 4)),
            ("ImageList", image_list),
        ]
    )
    if thumbnail:
        root.append(("Thumbnails", Group([("", Group([("ImageIndex", Simple(5, 0))]))])))
    w = DMWriter(version, byteorder)
    body = w.group(root)
    order_flag = struct.pack(">I", 1 if byteorder == "<" else 0)
    if version == 3:
        head = struct.pack(">II", 3, len(body) + 4) + order_flag
    else:
        head = struct.pack(">IQ", 4, len(body) + 4) + order_flag
    with open(path, "wb") as f:
        f.write(head + body + b"\x00" * 8)
    return path


# --- TIA SER -----------------------------------------------------------------------------------

SER_TYPES = {
    "uint8": 1,
    "uint16": 2,
    "uint32": 3,
    "int8": 4,
    "int16": 5,
    "int32": 6,
    "float32": 7,
    "float64": 8,
}


def write_ser(
    path, data: np.ndarray, nav_dims, version=0x0210, gaps=None, valid=None, spectra=False
):
    """Write frames ``data`` (n, sy, sx) (or (n, len) with ``spectra``) as a TIA .ser file.

    ``nav_dims``: the dimension array sizes (C order, slowest first, as rsciio reads them);
    ``gaps``: extra bytes after each element (a list, uneven spacing); ``valid``: number of
    valid elements written (the rest have offset 0).
    """
    data = np.asarray(data)
    n = data.shape[0]
    valid = n if valid is None else valid
    gaps = [0] * n if gaps is None else gaps
    off_fmt = "<I" if version <= 0x0210 else "<Q"
    dtype_id = 0x4120 if spectra else 0x4122
    head = struct.pack("<HHHIII", 0x4949, 0x0197, version, dtype_id, 0x4152, n)
    head += struct.pack("<I", valid)
    dims_bytes = b""
    for size in nav_dims:
        desc, units = b"Position", b"meters"
        dims_bytes += struct.pack("<iddii", size, 0.0, 1.0, 0, len(desc)) + desc
        dims_bytes += struct.pack("<i", len(units)) + units
    head_len = len(head) + struct.calcsize(off_fmt) + 4 + len(dims_bytes)
    elements = []
    pos = head_len
    offsets = []
    for k in range(valid):
        frame = data[k]
        if spectra:
            eh = struct.pack("<ddihi", 0.0, 1.0, 0, SER_TYPES[data.dtype.name], frame.shape[0])
        else:
            sy, sx = frame.shape
            eh = struct.pack(
                "<ddiddihii", 0.0, 1.0, 0, 0.0, 1.0, 0, SER_TYPES[data.dtype.name], sx, sy
            )
        el = eh + frame.astype(frame.dtype.newbyteorder("<")).tobytes() + b"\xab" * gaps[k]
        offsets.append(pos)
        elements.append(el)
        pos += len(el)
    offset_array_offset = pos
    head += struct.pack(off_fmt, offset_array_offset) + struct.pack("<I", len(nav_dims))
    head += dims_bytes
    assert len(head) == head_len
    offsets += [0] * (n - valid)
    tag_start = offset_array_offset + 2 * n * struct.calcsize(off_fmt[1])
    tag_offsets = [tag_start + 8 * k for k in range(valid)] + [0] * (n - valid)
    with open(path, "wb") as f:
        f.write(head)
        f.write(b"".join(elements))
        f.write(struct.pack("<" + off_fmt[1] * n, *offsets))
        f.write(struct.pack("<" + off_fmt[1] * n, *tag_offsets))
        for k in range(valid):
            f.write(struct.pack("<HHI", 0x4152, 0, 1000 + k))
    return path


# --- Norpix SEQ --------------------------------------------------------------------------------


def write_seq(
    path, data: np.ndarray, version=5, pad=32, compression=0, allocated=None, image_format=100
):
    """Write frames ``data`` (n, h, w) of uint8/uint16 as an uncompressed Norpix .seq file.

    Frame ``k`` is at ``image_offset + k * true_image_size``, followed by an 8-byte
    timestamp and ``pad`` bytes; ``image_offset`` is 8192 for version >= 5, else 1024.
    """
    data = np.asarray(data)
    n, h, w = data.shape
    bits = data.dtype.itemsize * 8
    image_bytes = h * w * data.dtype.itemsize
    true_size = image_bytes + 8 + pad
    header = bytearray(1024)
    struct.pack_into("<I", header, 0, 0xFEED)
    header[4:28] = "Norpix seq\n".encode("utf-16-le").ljust(24, b"\x00")
    struct.pack_into("<ii", header, 28, version, 1024)
    struct.pack_into(
        "<IIIIIIIIIdiIIIiiiIiHH",
        header,
        548,
        w,
        h,
        bits,
        bits if bits == 8 else 12,
        image_bytes,
        image_format,
        n if allocated is None else allocated,
        0,
        true_size,
        100.0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        compression,
        0,
        0,
        0,
    )
    image_offset = 8192 if version >= 5 else 1024
    with open(path, "wb") as f:
        f.write(bytes(header).ljust(image_offset, b"\x00"))
        for k in range(n):
            f.write(data[k].astype(data.dtype.newbyteorder("<")).tobytes())
            f.write(struct.pack("<IHH", 1_600_000_000 + k, k % 1000, 0))
            f.write(b"\xcd" * pad)
    return path


# --- checking a dataset against a reference array -----------------------------------------------


def shifted(frames: np.ndarray, sync_offset: int, n: int) -> np.ndarray:
    """Dataset frames ``[0, n)`` of file ``frames`` shifted by ``sync_offset`` (zeros outside)."""
    out = np.zeros((n, *frames.shape[1:]), dtype=frames.dtype)
    for i in range(n):
        j = i + sync_offset
        if 0 <= j < frames.shape[0]:
            out[i] = frames[j]
    return out


def check_dataset(ctx, ds, ref: np.ndarray, roi=None):
    """Check every frame of ``ds`` (PickUDF, with/without ``roi``), SumUDF and SumSigUDF
    against ``ref`` of the dataset's shape."""
    from libertem.udf.raw import PickUDF
    from libertem.udf.sum import SumUDF
    from libertem.udf.sumsigudf import SumSigUDF

    nav = tuple(ds.shape.nav)
    assert tuple(ds.shape) == ref.shape
    full = np.ones(nav, dtype=bool)
    picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=full)["intensity"].raw_data
    assert picked.dtype.newbyteorder("=") == np.dtype(ds.dtype).newbyteorder("=")
    np.testing.assert_array_equal(picked, ref.reshape((-1, *ds.shape.sig)))
    if roi is not None:
        picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
        np.testing.assert_array_equal(picked, ref[roi])
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    sel = ref if roi is None else ref[roi]
    sel = sel.reshape((-1, *ds.shape.sig)).astype(np.float64)
    np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0), rtol=1e-5, atol=1e-4)
    sig_axes = tuple(range(len(nav), ref.ndim))
    sums = ref.astype(np.float64).sum(axis=sig_axes)
    got = res[1]["intensity"].data
    if roi is None:
        np.testing.assert_allclose(got, sums, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_allclose(got[roi], sums[roi], rtol=1e-5, atol=1e-4)
