"""A strict, bounded parser for the tag tree of Gatan DigitalMicrograph DM3/DM4 files.

Layout (all header integers big-endian; tag *values* in the byte order the file
header names):

- file header: version (4 bytes, 3 or 4), file size (4 bytes in DM3, 8 in DM4),
  byte order of the values (4 bytes, 1 = little-endian);
- a tag group: ``sorted`` (1 byte), ``open`` (1 byte), number of tags (4/8 bytes);
- a tag: kind (1 byte, 20 = group, 21 = data), name length (2 bytes), name,
  in DM4 the tag's size in bytes (8 bytes); then a group, or for data: the
  delimiter ``%%%%``, the length of the type description (4/8 bytes) and the
  description (that many 4/8-byte integers), then the value.

Type descriptions: one simple type code; ``[18, length]`` (string);
``[20, code, count]`` (array of a simple type); ``[15, 0, n, (0, code) * n]``
(struct); ``[20, 15, 0, n, (0, code) * n, count]`` (array of structs).

Large arrays (the image data) are not read, only located: they appear as
:class:`ArrayRef`. Every read is checked against the file size, so arbitrary
bytes raise :class:`DataSetException` and never loop for long.

The images of a file are the entries of its ``ImageList``: :func:`read_dm_images`
describes each (:class:`DMImage`: data offset, dtype, dimensions, data order) and
:func:`read_dm_image` picks one.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod

# simple type codes -> numpy type char (byte order added later)
SIMPLE_TYPES = {
    2: "i2",
    3: "i4",
    4: "u2",
    5: "u4",
    6: "f4",
    7: "f8",
    8: "u1",  # bool
    9: "i1",
    10: "u1",
    11: "i8",
    12: "u8",
}
MAX_DEPTH = 64
SMALL_ARRAY_BYTES = 4096


@dataclass(frozen=True)
class ArrayRef:
    """An array value located in the file but not read.

    Attributes
    ----------
    offset : int
        Byte offset of the first element.
    count : int
        Number of elements.
    dtype : numpy.dtype
        Dtype of one element (byte order included).
    """

    offset: int
    count: int
    dtype: np.dtype


class TagGroup(list):
    """A tag group: a list of ``(name, value)`` pairs (names may be empty or repeated)."""

    def get(self, name: str, default=None):
        """The value of the first tag called ``name``."""
        for key, value in self:
            if key == name:
                return value
        return default

    def find(self, *names: str):
        """Follow a path of tag names; ``None`` if any step is missing."""
        node = self
        for name in names:
            if not isinstance(node, TagGroup):
                return None
            node = node.get(name)
        return node


@dataclass
class DMTags:
    """The parsed tag tree of a DM file."""

    path: str
    version: int
    byteorder: str
    size: int
    root: TagGroup

    def images(self) -> list[TagGroup]:
        """The tag groups of ``ImageList``, in file order."""
        image_list = self.root.get("ImageList")
        if not isinstance(image_list, TagGroup):
            return []
        return [value for _, value in image_list if isinstance(value, TagGroup)]


class _Reader:
    def __init__(self, f, path: str, size: int):
        self.f = f
        self.path = path
        self.size = size
        self.version = 3
        self.byteorder = "<"

    def fail(self, what: str):
        raise DataSetException(f"{self.path}: not a valid DM file: {what}")

    def read(self, n: int) -> bytes:
        pos = self.f.tell()
        if n < 0 or pos + n > self.size:
            self.fail(f"needs {n} bytes at offset {pos}, the file has {self.size}")
        data = self.f.read(n)
        if len(data) != n:
            self.fail(f"short read at offset {pos}")
        return data

    def skip(self, n: int):
        pos = self.f.tell()
        if n < 0 or pos + n > self.size:
            self.fail(f"a value of {n} bytes at offset {pos} runs past the end ({self.size})")
        self.f.seek(pos + n)

    def u8(self) -> int:
        return self.read(1)[0]

    def be(self, n: int) -> int:
        return int.from_bytes(self.read(n), "big")

    def word(self) -> int:
        """A header integer: 4 bytes in DM3, 8 in DM4."""
        return self.be(4 if self.version == 3 else 8)

    def dtype(self, code: int) -> np.dtype:
        if code not in SIMPLE_TYPES:
            self.fail(f"unknown type code {code} at offset {self.f.tell()}")
        return np.dtype(self.byteorder + SIMPLE_TYPES[code])

    def value(self, dtype: np.dtype):
        raw = self.read(dtype.itemsize)
        return np.frombuffer(raw, dtype=dtype)[0].item()

    def group(self, depth: int) -> TagGroup:
        if depth > MAX_DEPTH:
            self.fail(f"tag groups nested deeper than {MAX_DEPTH}")
        self.read(2)  # sorted, open
        ntags = self.word()
        # every tag takes at least 3 bytes: bound the count by the bytes left
        if ntags * 3 > self.size - self.f.tell():
            self.fail(f"group at offset {self.f.tell()} claims {ntags} tags")
        out = TagGroup()
        for _ in range(ntags):
            kind = self.u8()
            name = self.read(self.be(2)).decode("latin-1")
            if self.version == 4:
                self.be(8)  # size of the tag in bytes; not needed
            if kind == 20:
                out.append((name, self.group(depth + 1)))
            elif kind == 21:
                out.append((name, self.data(read_small=name != "Data")))
            else:
                self.fail(f"unknown tag kind {kind} at offset {self.f.tell() - 1}")
        return out

    def struct_fields(self, info: list[int], start: int) -> tuple[list[np.dtype], int]:
        if start + 1 >= len(info):
            self.fail("struct description too short")
        nfields = info[start + 1]
        end = start + 2 + 2 * nfields
        if end > len(info):
            self.fail("struct description too short")
        return [self.dtype(info[start + 3 + 2 * i]) for i in range(nfields)], end

    def data(self, read_small: bool = True):
        if self.read(4) != b"%%%%":
            self.fail(f"missing '%%%%' delimiter before offset {self.f.tell()}")
        ninfo = self.word()
        step = 4 if self.version == 3 else 8
        if ninfo < 1 or ninfo * step > self.size - self.f.tell():
            self.fail(f"invalid type description length {ninfo}")
        info = [self.word() for _ in range(ninfo)]
        code = info[0]
        if ninfo == 1:
            return self.value(self.dtype(code))
        if code == 18 and ninfo == 2:  # string of bytes
            return self.read(info[1]).decode("latin-1")
        if code == 15:
            dtypes, _ = self.struct_fields(info, 1)
            return tuple(self.value(dt) for dt in dtypes)
        if code == 20 and ninfo == 3:
            return self.array(self.dtype(info[1]), info[2], read_small)
        if code == 20 and ninfo >= 3 and info[1] == 15:
            dtypes, end = self.struct_fields(info, 2)
            if end != ninfo - 1:
                self.fail("array of structs description has the wrong length")
            dtype = np.dtype([(f"f{i}", dt) for i, dt in enumerate(dtypes)])
            return self.array(dtype, info[-1], read_small=False)
        self.fail(f"unsupported type description {info[:8]}")

    def array(self, dtype: np.dtype, count: int, read_small: bool = True):
        offset = self.f.tell()
        nbytes = count * dtype.itemsize
        self.skip(nbytes)
        if read_small and nbytes <= SMALL_ARRAY_BYTES:
            self.f.seek(offset)
            values = np.frombuffer(self.read(nbytes), dtype=dtype)
            if dtype.kind == "u" and dtype.itemsize == 2 and count > 0:  # UTF-16 text
                return values.astype(np.uint16).tobytes().decode("utf-16-le", "replace")
            return values.copy()
        return ArrayRef(offset=offset, count=count, dtype=dtype)


def read_dm_header(f, path: str) -> tuple[int, str, int]:
    """Version, value byte order and end of the file header of an open DM file."""
    head = f.read(16)
    if len(head) < 12:
        raise DataSetException(f"{path}: not a DM file: only {len(head)} bytes")
    version = int.from_bytes(head[:4], "big")
    if version not in (3, 4):
        raise DataSetException(f"{path}: not a DM3/DM4 file (version field {version})")
    if version == 3:
        order_flag = int.from_bytes(head[8:12], "big")
        end = 12
    else:
        if len(head) < 16:
            raise DataSetException(f"{path}: not a DM file: only {len(head)} bytes")
        order_flag = int.from_bytes(head[12:16], "big")
        end = 16
    if order_flag not in (0, 1):
        raise DataSetException(f"{path}: not a DM file: byte order flag {order_flag}")
    return version, "<" if order_flag == 1 else ">", end


def parse_dm(path: str | os.PathLike) -> DMTags:
    """Parse the tag tree of the DM3/DM4 file ``path`` (opened read-only).

    Raises
    ------
    DataSetException
        If the file is missing, not a DM3/DM4 file, or its tag tree is corrupt.
    """
    from libertem.io.dataset.base.files import check_file

    path = os.fspath(path)
    size = check_file(path)
    try:
        with open(path, "rb") as f:
            version, byteorder, end = read_dm_header(f, path)
            reader = _Reader(f, path, size)
            reader.version = version
            reader.byteorder = byteorder
            f.seek(end)
            root = reader.group(0)
    except OSError as e:
        raise DataSetException(f"{path}: cannot read: {e}") from e
    except (ValueError, OverflowError, UnicodeDecodeError, struct.error) as e:
        raise DataSetException(f"{path}: not a valid DM file: {e}") from e
    return DMTags(path=path, version=version, byteorder=byteorder, size=size, root=root)


# --- the images of a DM file --------------------------------------------------------------------

# ImageData.DataType -> numpy type (byte order from the file header)
DM_IMAGE_TYPES = {
    1: "i2",
    2: "f4",
    3: "c8",
    6: "u1",
    7: "i4",
    9: "i1",
    10: "u2",
    11: "u4",
    12: "f8",
    13: "c16",
    14: "?",
}


@dataclass(frozen=True)
class DMImage:
    """Where and how one image of a DM file is stored.

    Attributes
    ----------
    index : int
        Position of the image in the file's ``ImageList`` (thumbnails included).
    offset : int
        Byte offset of the data.
    dtype : numpy.dtype
        Dtype of the values, byte order included.
    dims : tuple of int
        ``ImageData.Dimensions`` in DM order (fastest axis first).
    order_swapped : bool
        ``ImageTags.Meta Data.Data Order Swapped``.
    """

    index: int
    offset: int
    dtype: np.dtype
    dims: tuple[int, ...]
    order_swapped: bool

    @property
    def size(self) -> int:
        """Number of values."""
        return prod(self.dims)


def _image_info(tags: DMTags, index: int, image: TagGroup) -> DMImage | None:
    """The image stored in ``image`` (an entry of ``ImageList``), ``None`` if it has no data."""
    path = tags.path
    data = image.find("ImageData", "Data")
    if not isinstance(data, ArrayRef):
        return None
    dims_group = image.find("ImageData", "Dimensions")
    if not isinstance(dims_group, TagGroup) or not dims_group:
        raise DataSetException(f"{path}: image {index} without ImageData.Dimensions")
    dims = tuple(int(v) if isinstance(v, (int, np.integer)) else -1 for _, v in dims_group)
    if any(d < 1 for d in dims) or len(dims) > 4:
        raise DataSetException(f"{path}: unsupported image dimensions {dims}")
    code = image.find("ImageData", "DataType")
    if code not in DM_IMAGE_TYPES:
        raise DataSetException(f"{path}: unsupported DM image data type {code!r}")
    dtype = np.dtype(tags.byteorder + DM_IMAGE_TYPES[code])
    nbytes = prod(dims) * dtype.itemsize
    if nbytes != data.count * data.dtype.itemsize:
        raise DataSetException(
            f"{path}: image of dimensions {dims} x {dtype} needs {nbytes} bytes, "
            f"its data tag holds {data.count * data.dtype.itemsize}"
        )
    swapped = image.find("ImageTags", "Meta Data", "Data Order Swapped")
    try:
        swapped = bool(int(swapped)) if swapped is not None else False
    except (TypeError, ValueError):
        swapped = str(swapped).strip().lower() == "true"
    return DMImage(index=index, offset=data.offset, dtype=dtype, dims=dims, order_swapped=swapped)


def read_dm_images(path: str | os.PathLike) -> list[DMImage | None]:
    """Every entry of the file's ``ImageList``: its :class:`DMImage`, or ``None`` without data."""
    tags = parse_dm(path)
    return [_image_info(tags, i, image) for i, image in enumerate(tags.images())]


def read_dm_image(path: str | os.PathLike, dataset_index: int | None = None) -> DMImage:
    """One image of a DM3/DM4 file.

    Parameters
    ----------
    path
        The file.
    dataset_index
        Position in the file's ``ImageList`` (a thumbnail, if any, is usually 0);
        ``None``: the image with the most values (the first of those), which skips
        thumbnails.

    Raises
    ------
    DataSetException
        If the file holds no image data, or ``dataset_index`` names no image.
    """
    images = read_dm_images(path)
    path = os.fspath(path)
    if dataset_index is not None:
        try:
            index = int(dataset_index)
        except (TypeError, ValueError):
            raise DataSetException(
                f"{path}: dataset_index {dataset_index!r} is not an integer"
            ) from None
        if not 0 <= index < len(images) or images[index] is None:
            valid = [im.index for im in images if im is not None]
            raise DataSetException(
                f"{path}: dataset_index {dataset_index} names no image; images are at {valid}"
            )
        return images[index]
    found = [im for im in images if im is not None]
    if not found:
        raise DataSetException(f"{path}: no image data found in the DM file")
    return max(found, key=lambda im: (im.size, -im.index))
