"""LiberTEM 0.16's io.dataset.base module paths: faces give our objects, and the pieces
implemented for them (decode helpers, ROI helper, partition shapes, backend impls) work."""

import importlib

import numpy as np
import pytest

from libertem.common import Shape
from libertem.common.exceptions import DataSetException
from libertem.io.corrections.corrset import CorrectionSet
from libertem.io.dataset.base import decoders
from libertem.io.dataset.base.backend_impl import (
    BufferedBackendImpl,
    DirectBackendImpl,
    IOBackendImpl,
    MMapBackendImpl,
)
from libertem.io.dataset.base.file import File
from libertem.io.dataset.base.fileset import FileSet
from libertem.io.dataset.base.roi import RoiHelper
from libertem.io.dataset.base.tiling import TilingScheme
from libertem.io.dataset.memory import MemoryDataSet
from libertem.io.utils import get_partition_shape
from libertem.udf.sum import SumUDF

B = "libertem.io.dataset.base"


@pytest.mark.parametrize(
    "module, name, home",
    [
        ("tiling_scheme", "TilingScheme", "tiling"),
        ("tiling_scheme", "Negotiator", "libertem.udf.negotiation"),
        ("backend_mmap", "MMapFile", "backend_impl"),
        ("backend_buffered", "BufferPool", None),
        ("backend_direct", "DirectBackend", "backend"),
        ("partition", "BasePartition", "basepartition"),
        ("partition", "WritablePartition", "structure"),
        ("meta", "PartitionStructure", "structure"),
        ("tiling", "DataTile", "tiles"),
        ("tiling", "make_get_read_ranges", "readranges"),
        ("fileset", "default_get_read_ranges", "readranges"),
        ("utils", "FileTree", "fileset"),
        ("decode", "DtypeConversionDecoder", "decoders"),
        ("exceptions", "DataSetException", None),
        ("dataset", "RoiHelper", "roi"),
    ],
)
def test_faces_hand_out_the_same_objects(module, name, home):
    face = importlib.import_module(f"{B}.{module}")
    obj = getattr(face, name)
    if home is not None:
        home = home if home.startswith("libertem.") else f"{B}.{home}"
        assert obj is getattr(importlib.import_module(home), name)
    assert name in dir(face)
    with pytest.raises(AttributeError):
        face.no_such_name  # noqa: B018
    assert importlib.import_module(f"{B}.exceptions").DataSetException is DataSetException


# --- decode helpers ------------------------------------------------------------------


@pytest.mark.parametrize("itemsize", [2, 4, 8])
def test_byteswap_kernels_match_numpy(itemsize):
    values = np.array([0, 1, 258, 2 ** (8 * itemsize) - 1], dtype=f">u{itemsize}")
    raw = np.frombuffer(values.tobytes(), dtype=np.uint8)
    decode = getattr(decoders, f"byteswap_{itemsize}_decode")
    straight = getattr(decoders, f"byteswap_{itemsize}_straight")
    out = np.zeros(4, dtype=f"u{itemsize}")
    decode(raw, out)
    np.testing.assert_array_equal(out, values.astype(f"=u{itemsize}"))
    swapped = np.zeros_like(raw)
    straight(raw, swapped)
    np.testing.assert_array_equal(swapped.view(f"=u{itemsize}"), values)


@pytest.mark.parametrize("dtype", [">u2", ">f4", ">f8"])
def test_decode_functions_write_the_frame_row(dtype):
    values = np.array([1, -2, 3, 4, 5], dtype=np.float64).astype(dtype)
    if values.dtype.kind == "u":
        values = np.array([1, 2, 3, 4, 65000], dtype=dtype)
    raw = np.frombuffer(values.tobytes(), dtype=np.uint8)
    native = values.dtype.newbyteorder("=")
    size = values.dtype.itemsize
    only = getattr(decoders, f"decode_swap_only_{size}")
    out = np.zeros((2, 5), dtype=native)
    only(raw, out, 1, native, None, None, None, None)
    np.testing.assert_array_equal(out[1], values)
    assert (out[0] == 0).all()
    swap = getattr(decoders, f"decode_swap_{size}")
    out = np.zeros((1, 5), dtype=np.float64)
    swap(raw, out, 0, native, None, None, None, None)
    np.testing.assert_array_equal(out[0], values.astype(np.float64))
    native_raw = np.frombuffer(values.astype(native).tobytes(), dtype=np.uint8)
    decoders.default_decode(native_raw, out, 0, native, None, None, None, None)
    np.testing.assert_array_equal(out[0], values.astype(np.float64))


class _SwapOnly(decoders.Decoder):
    """Reads big-endian values into native ones of the same type, byte swap only."""

    def get_decode(self, native_dtype, read_dtype):
        return decoders.decode_swap_only_2


@pytest.mark.parametrize(
    "impl", [MMapBackendImpl(), BufferedBackendImpl(1 << 16), DirectBackendImpl(1 << 16)]
)
def test_swap_only_decoder_through_backend_impls(tmp_path, impl):
    frames = np.arange(5 * 4 * 6, dtype=">u2").reshape((5, 4, 6))
    path = tmp_path / "frames.raw"
    frames.tofile(path)
    fs = FileSet([File(str(path), 0, 5, np.dtype(">u2"), (4, 6))])
    shape = Shape((5, 4, 6), sig_dims=2)
    scheme = TilingScheme.make_for_shape(Shape((2, 2, 6), sig_dims=2), shape)
    rr = fs.get_read_ranges(0, 5, np.dtype(">u2"), scheme)
    out = np.zeros((5, 4, 6), dtype=np.uint16)
    try:
        for t in impl.get_tiles(scheme, fs, rr, None, ">u2", "u2", _SwapOnly(), 0, None):
            assert t.dtype == np.uint16
            out[t.tile_slice.get()] = t.data
    except DataSetException as e:
        assert "O_DIRECT" in str(e)
        pytest.skip(str(e))
    np.testing.assert_array_equal(out, frames)


# --- backend impls -------------------------------------------------------------------


def test_backend_impl_limits_and_copy_decision():
    assert MMapBackendImpl().get_max_io_size() is None
    assert BufferedBackendImpl(4096).get_max_io_size() == 4096
    assert (
        not BufferedBackendImpl(4096).direct and BufferedBackendImpl(4096, direct_io=True).direct
    )
    assert DirectBackendImpl(4096).direct
    impl = IOBackendImpl()
    assert not impl.need_copy(None, None, "u2", "u2", None, None, 0, None)
    assert impl.need_copy(None, None, "u2", "f4")
    corr = CorrectionSet(dark=np.ones((4, 6)))
    assert impl.need_copy(None, None, "f4", "f4", corrections=corr)


def test_preprocess_applies_corrections_in_place():
    from libertem.common import Slice

    data = np.full((2, 4, 6), 5.0, dtype=np.float32)
    sl = Slice((0, 0, 0), Shape((2, 4, 6), sig_dims=2))
    IOBackendImpl().preprocess(data, sl, None)
    assert (data == 5).all()
    IOBackendImpl().preprocess(data, sl, CorrectionSet(dark=np.ones((4, 6))))
    assert (data == 4).all()


# --- ROI helper and partition shapes ------------------------------------------------------


def test_roi_helper_masks():
    ds = MemoryDataSet(data=np.zeros((3, 4, 2, 2), dtype=np.float32))
    helper = RoiHelper(ds)
    for key in [np.s_[0], np.s_[1, 2], np.s_[0:2, 1:3], np.s_[..., -1], np.s_[:, ::2]]:
        want = np.zeros((3, 4), dtype=bool)
        want[key] = True
        got = helper[key]
        assert got.dtype == bool and got.shape == (3, 4)
        np.testing.assert_array_equal(got, want)
    assert helper[0] is not helper[0]


@pytest.mark.parametrize("use_roi", [False, True])
def test_roi_helper_roi_in_a_run(ctx, use_roi):
    data = np.random.default_rng(3).normal(size=(3, 4, 5, 5)).astype(np.float32)
    ds = ctx.load("memory", data=data, num_partitions=2)
    roi = RoiHelper(ds)[1:, ::2] if use_roi else None
    result = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
    want = data[roi].sum(axis=0) if use_roi else data.reshape((-1, 5, 5)).sum(axis=0)
    np.testing.assert_allclose(result, want, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, target, min_num, cores",
    [
        ((16, 16, 8, 8), 64 * 32, 1, 1),
        ((16, 16, 8, 8), 64 * 512, 4, 1),
        ((16, 16, 8, 8), 64 * 512, 1, 8),
        ((7, 5, 3), 15 * 1000, 2, 1),
        ((2, 3, 4, 5, 6), 20, 1, 1),
        ((10, 4, 4), 1, 1, 1),
    ],
)
def test_get_partition_shape(shape, target, min_num, cores):
    ds_shape = Shape(shape, sig_dims=2)
    part = get_partition_shape(ds_shape, target, min_num, cores)
    nav_dims = len(shape) - 2
    assert part[nav_dims:] == shape[nav_dims:]
    nav, full = part[:nav_dims], shape[:nav_dims]
    frames = int(np.prod(nav))
    frame_items = int(np.prod(shape[nav_dims:]))
    # at least one frame, not more than the target (unless one frame is more)
    assert 1 <= frames and (frames * frame_items <= target or frames == 1)
    # at least the asked number of partitions, if there are enough frames
    n_frames = int(np.prod(full))
    if n_frames >= max(min_num, cores):
        assert -(-n_frames // frames) >= max(min_num, cores)
    # contiguous: after the first axis that is cut, all axes are whole
    cut = [i for i, (p, s) in enumerate(zip(nav, full)) if p != s]
    if cut:
        assert nav[cut[-1] + 1 :] == full[cut[-1] + 1 :]
        assert all(p == 1 for p in nav[: cut[-1]])


def test_dataset_partition_shape_uses_get_partition_shape():
    ds = MemoryDataSet(data=np.zeros((8, 8, 4, 4), dtype=np.float32))
    target = 3 * 16 * 4 * 8
    want = get_partition_shape(ds.shape, target // 4, 2, 1)
    assert ds.partition_shape(np.float32, target, min_num_partitions=2) == want
