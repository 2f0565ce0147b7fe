"""Helpers shared by the engine tests: data generators, numpy references, test UDFs."""

from __future__ import annotations

import numpy as np

from libertem.udf import UDF

# dtypes a dataset may have, and the names used in test ids
DTYPES = ["uint8", "uint16", "uint32", "int32", "int64", "float32", "float64", "complex64"]

# (full shape, sig_dims): 1, 2 and 3 nav dims, 1 and 2 sig dims
SHAPES = [
    ((24, 6, 5), 2),
    ((4, 6, 6, 5), 2),
    ((2, 3, 4, 6, 5), 2),
    ((4, 6, 30), 1),
    ((24, 30), 1),
]


def shape_id(param):
    shape, sig_dims = param
    return "x".join(str(s) for s in shape) + f"-sig{sig_dims}"


def make_data(shape, dtype="float32", seed=0) -> np.ndarray:
    """Random data of ``shape`` and ``dtype``; integer values stay small enough for
    exact float32 sums over a few hundred pixels."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        hi = 256 if dtype.itemsize == 1 else 1000
        return rng.integers(0, hi, size=shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-500, 500, size=shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def make_roi(nav_shape, seed=1, p=0.5) -> np.ndarray:
    """A random boolean ROI with at least one selected and (if possible) one unselected frame."""
    rng = np.random.default_rng(seed)
    roi = rng.random(nav_shape) < p
    flat = roi.reshape(-1)
    flat[0] = True
    if flat.size > 1:
        flat[-1] = False
    return roi


def input_dtype(native, preferred=np.float32) -> np.dtype:
    """The dtype a UDF gets: ``np.result_type(preferred, native)``."""
    return np.result_type(preferred, np.dtype(native))


def ref_input(data, preferred=np.float32) -> np.ndarray:
    """``data`` converted as the engine converts it for the UDF."""
    return data.astype(input_dtype(data.dtype, preferred))


def sig_axes(ndim, sig_dims):
    return tuple(range(ndim - sig_dims, ndim))


def nav_axes(ndim, sig_dims):
    return tuple(range(ndim - sig_dims))


def tolerances(dtype):
    """(rtol, atol) for comparing sums computed in ``dtype`` against numpy."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.complex64):
        return 1e-4, 1e-3
    return 1e-10, 1e-8


def assert_close(actual, expected, dtype=np.float32):
    rtol, atol = tolerances(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def load_mem(ctx, data, sig_dims=2, num_partitions=2, tileshape=None):
    kwargs = dict(data=data, sig_dims=sig_dims, num_partitions=num_partitions)
    if tileshape is not None:
        kwargs["tileshape"] = tileshape
    return ctx.load("memory", **kwargs)


def assert_ctx_works(ctx):
    """The context still runs a UDF correctly (after an error, for example)."""
    from libertem.udf.sum import SumUDF

    data = make_data((3, 4, 5, 6), "float32", seed=42)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert_close(res["intensity"].data, data.sum(axis=(0, 1)))


def sig_view(udf, buf, tile):
    """The part of a ``sig`` buffer that matches ``tile`` (works whether the engine
    hands out the tile's part or the whole buffer)."""
    sig_shape = tile.shape[1:]
    if buf.shape[: len(sig_shape)] == sig_shape:
        return buf
    return buf[udf.meta.slice.get(sig_only=True)]


def as_list(value):
    return list(value) if isinstance(value, list) else []


# --- test UDFs ---------------------------------------------------------------------------------


class _SumsBase(UDF):
    """nav: sum over each frame; sig: sum over all frames; single: number of pixels seen."""

    def get_result_buffers(self):
        dt = self.meta.input_dtype
        return {
            "navsum": self.buffer(kind="nav", dtype=dt),
            "sigsum": self.buffer(kind="sig", dtype=dt),
            "pixels": self.buffer(kind="single", dtype="int64"),
        }

    def merge(self, dest, src):
        dest.navsum[:] = src.navsum
        dest.sigsum[:] += src.sigsum
        dest.pixels[:] += src.pixels


class SumsFrameUDF(_SumsBase):
    def process_frame(self, frame):
        self.results.navsum[:] = np.sum(frame)
        self.results.sigsum[:] += frame
        self.results.pixels[:] += frame.size


class SumsTileUDF(_SumsBase):
    def process_tile(self, tile):
        axes = tuple(range(1, tile.ndim))
        self.results.navsum[:] += np.sum(tile, axis=axes)
        sig_view(self, self.results.sigsum, tile)[:] += np.sum(tile, axis=0)
        self.results.pixels[:] += tile.size


class SumsPartitionUDF(_SumsBase):
    def process_partition(self, partition):
        axes = tuple(range(1, partition.ndim))
        self.results.navsum[:] = np.sum(partition, axis=axes)
        self.results.sigsum[:] += np.sum(partition, axis=0)
        self.results.pixels[:] += partition.size


class SumsSmallTileUDF(SumsTileUDF):
    """Asks for tiles of at most 128 bytes: frames are split into several signal regions."""

    def get_tiling_preferences(self):
        return {"depth": 2, "total_size": 128}


SUM_UDFS = {
    "frame": SumsFrameUDF,
    "tile": SumsTileUDF,
    "smalltile": SumsSmallTileUDF,
    "partition": SumsPartitionUDF,
}


def check_sums(res, data, sig_dims, roi=None, preferred=np.float32):
    """Compare the results of one of the ``Sums*UDF`` with numpy."""
    ref = ref_input(data, preferred)
    nav_shape = data.shape[: data.ndim - sig_dims]
    sig_shape = data.shape[data.ndim - sig_dims :]
    navsum = ref.sum(axis=sig_axes(data.ndim, sig_dims))
    dt = ref.dtype
    if roi is None:
        assert_close(res["navsum"].data, navsum, dt)
        assert_close(res["navsum"].raw_data, navsum.reshape(-1), dt)
        assert_close(res["sigsum"].data, ref.reshape((-1, *sig_shape)).sum(axis=0), dt)
        n_sel = int(np.prod(nav_shape))
    else:
        assert res["navsum"].data.shape == nav_shape
        assert_close(res["navsum"].data[roi], navsum[roi], dt)
        assert np.isnan(res["navsum"].data[~roi]).all()
        assert_close(res["navsum"].raw_data, navsum[roi], dt)
        assert_close(res["sigsum"].data, ref[roi].sum(axis=0), dt)
        n_sel = int(np.count_nonzero(roi))
    assert res["navsum"].data.dtype == dt
    assert res["sigsum"].data.shape == sig_shape
    assert int(np.asarray(res["pixels"].data).reshape(-1)[0]) == n_sel * int(np.prod(sig_shape))


class EchoUDF(UDF):
    """Copies every tile, in the dataset's native dtype, into a nav buffer of frames."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        return {"echo": self.buffer(kind="nav", extra_shape=sig, dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        index = (slice(None), *self.meta.slice.get(sig_only=True))
        self.results.echo[index] = tile


def run_echo(ctx, ds, roi=None):
    """All frames of ``ds`` (selected by ``roi``) as read by the engine: ``(.data, .raw_data)``."""
    res = ctx.run_udf(dataset=ds, udf=EchoUDF(), roi=roi)
    return res["echo"].data, res["echo"].raw_data
