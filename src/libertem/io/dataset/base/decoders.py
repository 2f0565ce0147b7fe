"""Decoders: turn the stored bytes of a frame (part) into values of the tile buffer.

A :class:`Decoder` hands out a *decode function*, compiled with numba, that is
called once per read range (see :mod:`~libertem.io.dataset.base.readranges`)::

    decode(inp, out, idx, native_dtype, rr, origin, shape, ds_shape)

``inp``
    The range's bytes (``uint8``).
``out``
    The tile buffer as ``(frames, pixels of the tile's signal slice)``.
``idx``
    The frame of the tile that ``inp`` belongs to: write ``out[idx]``.
``native_dtype``
    Dtype of the stored values, in native byte order.
``rr``
    The read range ``(file index, start, stop)``.
``origin``, ``shape``, ``ds_shape``
    The tile's origin and shape (frame axis first) and the dataset's shape, as arrays.

Decoders that match a kernel of :mod:`~libertem.io.dataset.base.decode` also tell
(:meth:`Decoder.layout_decoder`) how our frame sources can read the data directly,
in blocks of frames, which is what datasets use for their tiles.
"""

from __future__ import annotations

import numpy as np

from libertem.common.lazyjit import lazy_njit


@lazy_njit(nogil=True, cache=True)
def _swapped(inp, itemsize, n, native_dtype):
    tmp = np.empty(n * itemsize, dtype=np.uint8)
    for i in range(n):
        for b in range(itemsize):
            tmp[i * itemsize + b] = inp[i * itemsize + itemsize - 1 - b]
    return tmp.view(native_dtype)


@lazy_njit(nogil=True, cache=True)
def decode_swap(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Decode byte-swapped values (e.g. big-endian ``uint16``, ``float32``) into
    ``out[idx]``; the value size is that of the range's bytes per pixel."""
    n = out.shape[1]
    vals = _swapped(inp, inp.shape[0] // n, n, native_dtype)
    for i in range(n):
        out[idx, i] = vals[i]


#: byte-swapped 2-, 4- and 8-byte values (LiberTEM's names; all :func:`decode_swap`)
decode_swap_2 = decode_swap_4 = decode_swap_8 = decode_swap


def _make_byteswap(itemsize: int):
    """The ``byteswap_<n>_decode`` and ``byteswap_<n>_straight`` kernels for ``n`` bytes."""

    @lazy_njit(nogil=True, cache=True)
    def decode(inp, out):
        for i in range(inp.shape[0] // itemsize):
            v = np.uint64(0)
            for b in range(itemsize):
                v = (v << np.uint64(8)) | np.uint64(inp[i * itemsize + b])
            out[i] = v

    @lazy_njit(nogil=True, cache=True)
    def straight(inp, out):
        for i in range(inp.shape[0] // itemsize):
            for b in range(itemsize):
                out[i * itemsize + b] = inp[i * itemsize + itemsize - 1 - b]

    decode.__doc__ = f"""Big-endian unsigned {itemsize}-byte integers: ``out[i]`` is the value
    of bytes ``inp[{itemsize} * i : {itemsize} * (i + 1)]`` (``uint8``), most significant first,
    converted to the dtype of ``out``."""
    straight.__doc__ = f"""Reverse the byte order of each {itemsize}-byte group of ``inp``
    (``uint8``) into ``out`` (``uint8``, as long as ``inp``): any {itemsize}-byte values of the
    other byte order, ready to be viewed in native order."""
    return decode, straight


byteswap_2_decode, byteswap_2_straight = _make_byteswap(2)
byteswap_4_decode, byteswap_4_straight = _make_byteswap(4)
byteswap_8_decode, byteswap_8_straight = _make_byteswap(8)


def _make_swap_only(straight):
    @lazy_njit(nogil=True, cache=True)
    def decode_swap_only(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
        straight(inp, out[idx].view(np.uint8))

    decode_swap_only.__doc__ = """Decode function that only reverses the byte order: ``out[idx]``
    has the dtype of the stored values in native order (no conversion)."""
    return decode_swap_only


decode_swap_only_2 = _make_swap_only(byteswap_2_straight)
decode_swap_only_4 = _make_swap_only(byteswap_4_straight)
decode_swap_only_8 = _make_swap_only(byteswap_8_straight)


@lazy_njit(nogil=True, cache=True)
def decode_convert(inp, out, idx, native_dtype, rr, origin, shape, ds_shape):
    """Convert native-order values into ``out[idx]`` (a plain dtype conversion)."""
    n = out.shape[1]
    vals = inp.view(native_dtype)
    for i in range(n):
        out[idx, i] = vals[i]


#: LiberTEM's name of :func:`decode_convert`: values in native byte order, converted
default_decode = decode_convert


class Decoder:
    """Base class of decoders; a subclass returns its decode function from :meth:`get_decode`."""

    def get_decode(self, native_dtype, read_dtype):
        """The decode function for stored ``native_dtype`` into ``read_dtype`` buffers."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_decode")

    def get_native_dtype(self, inp_native_dtype, read_dtype):
        """Dtype in which the stored bytes are read (before decoding)."""
        return np.dtype(inp_native_dtype)

    def do_clear(self) -> bool:
        """Whether tile buffers must be zeroed before decoding into them."""
        return False

    def layout_decoder(self, native_dtype) -> tuple[str, str | None, tuple] | None:
        """How frame sources read this data in blocks: ``(stored dtype, kernel name,
        kernel args)``, or ``None`` if only the decode function can."""
        return None


class DtypeConversionDecoder(Decoder):
    """Plain values, possibly of foreign byte order, converted to the read dtype."""

    def get_decode(self, native_dtype, read_dtype):
        native_dtype = np.dtype(native_dtype)
        if native_dtype.isnative or native_dtype.itemsize == 1:
            return decode_convert
        if native_dtype.itemsize not in (2, 4, 8):
            raise ValueError(f"cannot byte-swap values of {native_dtype}")
        return decode_swap

    def get_native_dtype(self, inp_native_dtype, read_dtype):
        return np.dtype(inp_native_dtype)

    def layout_decoder(self, native_dtype):
        return np.dtype(native_dtype).str, None, ()


def native_order(dtype) -> np.dtype:
    """``dtype`` in native byte order (what decode functions receive)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")
