"""The built-in UDFs' compiled kernels and their NumPy twins agree bit for bit.

Runs use the twin until the kernel is compiled (libertem.common.lazyjit): results must
not depend on which of the two ran.
"""

import numpy as np
import pytest

from libertem.udf import com_kernels, stddev, sum_kernels


def _kernel(k):
    return k.kernel.materialize()


def _values(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        scale = 10.0 ** rng.integers(-4, 5, size=shape)
        return (rng.standard_normal(shape) * scale).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


SHAPES = [(1, 7), (3, sum_kernels.SUM_BLOCK + 5), (17, 300), (5, 1)]


def _frame_sum_cases():
    for out_dtype in sorted(sum_kernels.FRAME_SUM_OUT_DTYPES, key=str):
        for dtype in sorted(sum_kernels.FRAME_SUM_TILE_DTYPES, key=str):
            if out_dtype == np.float32 and dtype not in sum_kernels.FLOAT32_EXACT_DTYPES:
                continue
            yield dtype, out_dtype


@pytest.mark.parametrize("dtype, out_dtype", list(_frame_sum_cases()))
def test_frame_sums(dtype, out_dtype):
    rng = np.random.default_rng(1)
    kernel = (
        sum_kernels.add_frame_sums_f32
        if out_dtype == np.float32
        else (sum_kernels.add_frame_sums_f64)
    )
    for shape in SHAPES:
        flat = _values(rng, dtype, shape)
        flat.flags.writeable = False  # tiles of memory maps are read-only
        start = (rng.standard_normal(shape[1]) * 1000).astype(out_dtype)
        acc = np.empty(sum_kernels.SUM_BLOCK, dtype=out_dtype)
        compiled, twin = start.copy(), start.copy()
        _kernel(kernel)(flat, compiled, acc)
        kernel.twin(flat, twin, acc)
        np.testing.assert_array_equal(compiled, twin)
        expected = start.astype(np.float64) + flat.astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(twin, expected, rtol=1e-4 if out_dtype == np.float32 else 1e-9)


def _exact_cases():
    for out_dtype in ("float32", "float64"):
        for dtype in sorted(sum_kernels.EXACT_SUM_TILE_DTYPES, key=str):
            if out_dtype == "float32" and dtype not in sum_kernels.FLOAT32_EXACT_DTYPES:
                continue
            yield dtype, out_dtype


@pytest.mark.parametrize("dtype, out_dtype", list(_exact_cases()))
def test_exact_frame_sums(dtype, out_dtype):
    """Integer frames added up exactly per group: compiled and twin give the same bits;
    a tile of no more frames than a group gives what adding the frames one after the
    other in the output dtype gives (what NumPy and LiberTEM compute)."""
    rng = np.random.default_rng(4)
    kernel = (
        sum_kernels.add_exact_frame_sums_f32
        if out_dtype == "float32"
        else sum_kernels.add_exact_frame_sums_f64
    )
    acc_dtype = sum_kernels.exact_accumulator_dtype(out_dtype)
    group = sum_kernels.exact_group(dtype, out_dtype)
    shapes = [(1, 7), (6, sum_kernels.EXACT_SUM_BLOCK + 5), (600, 33), (5, 1)]
    for shape in shapes:
        flat = _values(rng, dtype, shape)
        flat.flags.writeable = False
        start = (rng.standard_normal(shape[1]) * 1000).astype(out_dtype)
        acc = np.empty(min(shape[1], sum_kernels.EXACT_SUM_BLOCK), dtype=acc_dtype)
        compiled, twin, through = start.copy(), start.copy(), start.copy()
        rows = sum_kernels.frame_rows(flat)
        _kernel(kernel)(*rows, compiled, acc, group)
        kernel.twin(*rows, twin, acc, group)
        sum_kernels.add_tile_frame_sums(flat, through)
        np.testing.assert_array_equal(compiled, twin)
        np.testing.assert_array_equal(through, twin)
        if shape[0] <= group:
            total = flat[0].astype(out_dtype)
            for frame in flat[1:]:
                np.add(total, frame, out=total, casting="unsafe")
            np.testing.assert_array_equal(twin, start + total)
        expected = start.astype(np.float64) + flat.astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(twin, expected, rtol=1e-4 if out_dtype == "float32" else 1e-9)


@pytest.mark.parametrize("out_dtype", ["float32", "float64"])
def test_byte_swapped_uint16_frame_sums(out_dtype):
    """Big-endian uint16 tiles (Merlin's frames) are summed from their bytes with the
    swap in the kernel: the same bits as the twin and as summing the values."""
    rng = np.random.default_rng(5)
    swapped = sum_kernels.SWAPPED_UINT16
    kernel = (
        sum_kernels.add_swapped_frame_sums_f32
        if out_dtype == "float32"
        else sum_kernels.add_swapped_frame_sums_f64
    )
    group = sum_kernels.exact_group("uint16", out_dtype)
    for shape in [(1, 7), (6, sum_kernels.EXACT_SUM_BLOCK + 5), (600, 33), (3, 1)]:
        tile = _values(rng, "uint16", shape).astype(swapped)
        tile.flags.writeable = False
        start = (rng.standard_normal(shape[1]) * 1000).astype(out_dtype)
        acc = np.empty(
            min(shape[1], sum_kernels.EXACT_SUM_BLOCK),
            dtype=sum_kernels.exact_accumulator_dtype(out_dtype),
        )
        compiled, twin, through = start.copy(), start.copy(), start.copy()
        data, n, stride = sum_kernels.frame_rows(tile)
        native_bytes = data.view(np.uint16)
        _kernel(kernel)(native_bytes, n, stride, compiled, acc, group)
        kernel.twin(native_bytes, n, stride, twin, acc, group)
        assert sum_kernels.frame_sums_apply(tile, through)
        sum_kernels.add_tile_frame_sums(tile, through)
        np.testing.assert_array_equal(compiled, twin)
        np.testing.assert_array_equal(through, twin)
        expected = start.copy()
        native = tile.astype(np.uint16)
        for g in range(0, shape[0], group):
            expected += native[g : g + group].sum(axis=0, dtype=np.int64).astype(out_dtype)
        np.testing.assert_array_equal(twin, expected)


@pytest.mark.parametrize("dtype", ["uint16", "int32", sum_kernels.SWAPPED_UINT16.str])
def test_frame_sums_of_frames_apart_in_memory(dtype):
    """Frames with headers between them (Merlin): one view from the first pixel to the
    last (``frame_rows``), the same sums as of the frames themselves."""
    rng = np.random.default_rng(6)
    n, sy, sx, header = 9, 5, 7, 3
    values = _values(rng, "uint16", (n, sy * sx + header)).astype(dtype)
    tile = values[:, header:].reshape((n, sy, sx))
    tile.flags.writeable = False
    data, frames, stride = sum_kernels.frame_rows(tile)
    assert (frames, stride) == (n, sy * sx + header)
    assert data.flags.c_contiguous and data.shape == ((n - 1) * stride + sy * sx,)
    out = np.zeros((sy, sx), dtype=np.float32)
    sum_kernels.add_tile_frame_sums(tile, out)
    expected = tile.astype(np.int64).sum(axis=0).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    f32 = sum_kernels.add_exact_frame_sums_f32
    if dtype == sum_kernels.SWAPPED_UINT16.str:
        f32 = sum_kernels.add_swapped_frame_sums_f32
        data = data.view(np.uint16)
    acc = np.empty(sy * sx, dtype=np.int32)
    group = sum_kernels.exact_group(np.uint16 if dtype != "int32" else np.int32, np.float32)
    compiled = np.zeros(sy * sx, dtype=np.float32)
    twin = np.zeros(sy * sx, dtype=np.float32)
    _kernel(f32)(data, frames, stride, compiled, acc, group)
    f32.twin(data, frames, stride, twin, acc, group)
    np.testing.assert_array_equal(compiled, twin)
    np.testing.assert_array_equal(compiled, expected.reshape(-1))


def test_frame_rows_refuses_uneven_spacing():
    """Frames whose spacing is not a whole number of elements take the other path."""
    raw = np.zeros(3 * 17 + 1, dtype=np.uint8)
    tile = np.lib.stride_tricks.as_strided(raw[1:].view(np.uint8), (3, 8), (17, 1))
    assert sum_kernels.frame_rows(tile.view(np.uint8)) is not None
    odd = np.ndarray((3, 4), dtype=np.uint16, buffer=raw.data, offset=1, strides=(17, 2))
    assert sum_kernels.frame_rows(odd) is None
    out = np.zeros(4, dtype=np.float32)
    sum_kernels.add_tile_frame_sums(odd, out)
    np.testing.assert_array_equal(out, odd.astype(np.float64).sum(axis=0))


def test_exact_group_bounds():
    """No group sum leaves the accumulator's range or what the output holds exactly."""
    for dtype, out_dtype in _exact_cases():
        info = np.iinfo(dtype)
        largest = max(-int(info.min), int(info.max))
        group = sum_kernels.exact_group(dtype, out_dtype)
        limit = 2**24 if out_dtype == "float32" else 2**53
        acc_max = np.iinfo(sum_kernels.exact_accumulator_dtype(out_dtype)).max
        assert group * largest <= min(limit, acc_max) < (group + 1) * largest or group == 1
    assert sum_kernels.exact_group("uint16", "float32") == 256


@pytest.mark.parametrize("dtype", sorted(sum_kernels.ROW_SUM_TILE_DTYPES, key=str))
@pytest.mark.parametrize("out_dtype", ["float32", "float64"])
def test_row_sums(dtype, out_dtype):
    rng = np.random.default_rng(2)
    for shape in SHAPES:
        flat = _values(rng, dtype, shape)
        start = (rng.standard_normal(shape[0]) * 1000).astype(out_dtype)
        compiled, twin = start.copy(), start.copy()
        _kernel(sum_kernels.add_row_sums)(flat, compiled)
        sum_kernels.add_row_sums.twin(flat, twin)
        np.testing.assert_array_equal(compiled, twin)
        exact = flat.astype(np.int64).sum(axis=1)
        np.testing.assert_array_equal(twin, (start.astype(np.float64) + exact).astype(out_dtype))


@pytest.mark.parametrize("tile_dtype", ["float64", "float32"])
@pytest.mark.parametrize("acc_dtype", ["float64", "float32"])
def test_stddev_tile_and_merge(tile_dtype, acc_dtype):
    rng = np.random.default_rng(3)
    for n_0 in (0, 1, 9):
        for n_frames, n_pixels in ((1, 5), (7, 300)):
            tile = (_values(rng, "float64", (n_frames, n_pixels)) + 3).astype(tile_dtype)
            sums = (rng.standard_normal(n_pixels) * 5).astype(acc_dtype)
            varsums = rng.random(n_pixels).astype(acc_dtype)
            a = [sums.copy(), varsums.copy()]
            b = [sums.copy(), varsums.copy()]
            n_a = _kernel(stddev.process_tile)(tile, n_0, *a)
            n_b = stddev.process_tile.twin(tile, n_0, *b)
            assert n_a == n_b == n_0 + n_frames
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            src_mean = (sums / max(n_frames, 1)).astype(acc_dtype)
            for src_n in (0, n_frames):
                a = [sums.copy(), varsums.copy()]
                b = [sums.copy(), varsums.copy()]
                args = (src_n, sums * 2, varsums * 3, src_mean)
                n_a = _kernel(stddev.merge)(n_0, *a, *args)
                n_b = stddev.merge.twin(n_0, *b, *args)
                assert n_a == n_b
                np.testing.assert_array_equal(a[0], b[0])
                np.testing.assert_array_equal(a[1], b[1])


def test_stddev_twin_matches_numpy():
    rng = np.random.default_rng(4)
    data = rng.standard_normal((20, 50)) * 3 + 1
    sums, varsums = np.zeros(50), np.zeros(50)
    n = 0
    for start in range(0, 20, 6):
        n = stddev.process_tile.twin(data[start : start + 6], n, sums, varsums)
    assert n == 20
    np.testing.assert_allclose(sums, data.sum(axis=0))
    np.testing.assert_allclose(varsums / n, data.var(axis=0))


@pytest.mark.parametrize("dtype", sorted(com_kernels.INTEGER_TILE_DTYPES, key=str))
def test_com_moments(dtype):
    rng = np.random.default_rng(5)
    for n_frames, n_pixels in ((1, 9), (4, 100), (7, 513)):
        flat = _values(rng, dtype, (n_frames, n_pixels))
        masks = rng.integers(-60, 60, size=(3, n_pixels)).astype(np.float64)
        compiled = np.empty((n_frames, 3))
        twin = np.empty((n_frames, 3))
        _kernel(com_kernels.moments3)(flat, masks, compiled)
        com_kernels.moments3.twin(flat, masks, twin)
        np.testing.assert_array_equal(compiled, twin)
        exact = flat.astype(object) @ masks.astype(np.int64).T.astype(object)
        np.testing.assert_array_equal(twin, exact.astype(np.float64))


def test_exact_moments_only_where_exact():
    from libertem.common.container import MaskContainer
    from libertem.common.shape import Shape
    from libertem.common.slice import Slice

    yy, xx = np.mgrid[0:8, 0:8]
    key = Slice((0, 0, 0), Shape((2, 8, 8), sig_dims=2))
    tile = np.arange(128, dtype=np.uint16).reshape((2, 8, 8))
    integer = MaskContainer([lambda: np.ones((8, 8)), lambda: yy, lambda: xx], dtype=np.float32)
    moments = com_kernels.ExactMoments(integer).moments(tile, key)
    flat = tile.reshape((2, -1)).astype(np.float64)
    np.testing.assert_array_equal(moments[:, 1], flat @ yy.reshape(-1))
    # float tiles, non-integer masks: the BLAS path
    assert com_kernels.ExactMoments(integer).moments(tile.astype(np.float32), key) is None
    halves = MaskContainer([lambda: np.ones((8, 8)), lambda: yy + 0.5, lambda: xx])
    assert com_kernels.ExactMoments(halves).moments(tile, key) is None
    # values whose sums could reach 2**53 in float64
    huge = MaskContainer([lambda: np.full((8, 8), 2.0**40), lambda: yy, lambda: xx])
    assert com_kernels.ExactMoments(huge).moments(tile.astype(np.uint32), key) is None
