"""The binary WebSocket messages that carry images to the browser.

One message::

    4 bytes   b"LTIM"
    4 bytes   length N of the header, unsigned little-endian
    N bytes   header: UTF-8 JSON, padded with spaces so that 8 + N is a multiple of 4
    ...       the images, float32 little-endian, row-major, one after the other

The header holds the run's fields (``run``, ``channel``, ``final``, ``progress``, ...)
and ``images``: a list of ``{"name": ..., "shape": [height, width]}`` in payload order.
Missing values (frames not yet processed, outside the ROI) are NaN.
"""

from __future__ import annotations

import json
import struct

import numpy as np

MAGIC = b"LTIM"


def encode_images(header: dict, images: dict[str, np.ndarray]) -> bytes:
    """A binary message with ``header`` and the 2D ``images`` (name -> array)."""
    arrays = [np.ascontiguousarray(a, dtype="<f4") for a in images.values()]
    meta = dict(header)
    meta["images"] = [
        {"name": name, "shape": list(a.shape)} for name, a in zip(images, arrays, strict=True)
    ]
    text = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 4)
    return b"".join([MAGIC, struct.pack("<I", len(text)), text, *(a.tobytes() for a in arrays)])


def decode_images(message: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and images of a message made by :func:`encode_images`.

    Raises
    ------
    ValueError
        If the message is not one.
    """
    if message[:4] != MAGIC:
        raise ValueError("not an image message")
    (n,) = struct.unpack("<I", message[4:8])
    header = json.loads(message[8 : 8 + n].decode("utf-8"))
    offset = 8 + n
    images = {}
    for item in header["images"]:
        shape = tuple(item["shape"])
        count = int(np.prod(shape))
        images[item["name"]] = np.frombuffer(message, "<f4", count, offset).reshape(shape)
        offset += 4 * count
    return header, images
