"""ROI handling, UDFMeta attributes and auxiliary data, compared with numpy."""

import numpy as np
import pytest

from libertem.common.slice import Slice
from libertem.udf import UDF
from utils import (
    SHAPES,
    SUM_UDFS,
    as_list,
    assert_close,
    check_sums,
    load_mem,
    make_data,
    make_roi,
    shape_id,
)

# --- ROI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(SUM_UDFS))
@pytest.mark.parametrize("kind", ["all", "one", "first_last", "checker"])
def test_roi_patterns(ctx, method, kind):
    data = make_data((4, 6, 5, 4), "float32", seed=41)
    roi = np.zeros((4, 6), bool)
    if kind == "all":
        roi[:] = True
    elif kind == "one":
        roi[2, 3] = True
    elif kind == "first_last":
        roi[0, 0] = roi[-1, -1] = True
    else:
        roi[::2, ::2] = True
        roi[1::2, 1::2] = True
    ds = load_mem(ctx, data, num_partitions=4)
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
    check_sums(res, data, 2, roi)


@pytest.mark.parametrize("method", sorted(SUM_UDFS))
def test_roi_empty(ctx, method):
    data = make_data((4, 6, 5, 4), "float32", seed=42)
    roi = np.zeros((4, 6), bool)
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS[method](), roi=roi)
    assert res["navsum"].data.shape == (4, 6)
    assert np.isnan(res["navsum"].data).all()
    assert res["navsum"].raw_data.shape == (0,)
    assert (res["sigsum"].data == 0).all()
    assert res["pixels"].data[0] == 0


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("seed", [0, 1])
def test_roi_nav_dims(ctx, shape, seed):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    data = make_data(full_shape, "uint16", seed=seed)
    roi = make_roi(nav_shape, seed=seed + 10, p=0.3)
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SUM_UDFS["smalltile"](), roi=roi)
    check_sums(res, data, sig_dims, roi)


class PixelsumUDF(UDF):
    """The meta.slice example of the docs: a custom ROI-compressed flat nav buffer."""

    def get_result_buffers(self):
        if self.meta.roi is not None:
            navsize = np.count_nonzero(self.meta.roi)
        else:
            navsize = np.prod(self.meta.dataset_shape.nav)
        return {
            "pixelsum_nav_raw": self.buffer(
                kind="single", dtype=self.meta.dataset_dtype, extra_shape=(navsize,)
            )
        }

    def merge(self, dest, src):
        dest["pixelsum_nav_raw"][:] += src["pixelsum_nav_raw"]

    def process_frame(self, frame):
        np_slice = self.meta.slice.get(nav_only=True)
        self.results.pixelsum_nav_raw[np_slice] = np.sum(frame)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_spec_pixelsum_example(ctx, use_roi):
    data = np.random.default_rng(43).random((16, 16, 32, 32)).astype(np.float32)
    ds = load_mem(ctx, data, num_partitions=4)
    roi = np.random.default_rng(44).choice([True, False], (16, 16)) if use_roi else None
    res = ctx.run_udf(dataset=ds, udf=PixelsumUDF(), roi=roi)
    sel = np.ones((16, 16), bool) if roi is None else roi
    assert np.allclose(res["pixelsum_nav_raw"].data, data[sel].sum(axis=(1, 2)))


# --- meta --------------------------------------------------------------------------------------


class MetaCheckBase(UDF):
    """Checks meta attributes from inside the processing methods; collects violations in an
    object buffer ``errors`` and the coordinates of every frame in ``coords``."""

    def get_result_buffers(self):
        nav_dims = len(tuple(self.meta.dataset_shape.nav))
        return {
            "coords": self.buffer(kind="nav", extra_shape=(nav_dims,), dtype="int64"),
            "gvisits": self.buffer(kind="nav", dtype="int64"),
            "errors": self.buffer(kind="single", dtype=object),
            "info": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.errors[0] = []

    def _check(self, arr, nav_is_frame=False):
        m = self.meta
        errors = self.results.errors[0]
        p = self.params
        sig_shape = tuple(p.sig_shape)

        def check(cond, msg):
            if not cond:
                errors.append(msg)

        check(tuple(m.dataset_shape) == tuple(p.shape), f"dataset_shape {m.dataset_shape}")
        check(tuple(m.dataset_shape.sig) == sig_shape, f"dataset_shape.sig {m.dataset_shape}")
        check(np.dtype(m.dataset_dtype) == np.dtype(p.dtype), f"dataset_dtype {m.dataset_dtype}")
        check(np.dtype(m.input_dtype) == np.float32, f"input_dtype {m.input_dtype}")
        check(arr.dtype == np.float32, f"data dtype {arr.dtype}")
        check(m.device_class == "cpu", f"device_class {m.device_class}")
        check(m.tiling_scheme is not None, "tiling_scheme is None")
        if p.roi is None:
            check(m.roi is None, "roi should be None")
        else:
            check(
                m.roi is not None
                and np.array_equal(np.asarray(m.roi).reshape(p.roi.shape), p.roi),
                "roi differs",
            )
        check(tuple(m.partition_shape)[1:] == sig_shape, f"partition_shape {m.partition_shape}")
        check(isinstance(m.slice, Slice), f"slice {m.slice!r}")
        # the slice describes exactly the data handed to the method
        sl_shape = tuple(m.slice.shape)
        if nav_is_frame:
            check(sl_shape == (1, *arr.shape), f"frame slice {sl_shape} vs {arr.shape}")
        else:
            check(sl_shape == tuple(arr.shape), f"slice {sl_shape} vs {arr.shape}")
        n_frames = sl_shape[0]
        check(n_frames <= m.partition_shape[0], "slice longer than partition")
        # sig_slice: a Slice of the signal part, or the numpy index of it
        sig = m.sig_slice
        sig_index = sig.get() if isinstance(sig, Slice) else tuple(sig)
        check(sig_index == m.slice.get(sig_only=True), f"sig_slice {sig!r} vs {m.slice!r}")
        coords = np.asarray(m.coordinates)
        check(coords.shape == (n_frames, len(p.shape) - len(sig_shape)), f"coords {coords.shape}")
        self.results.coords[:] = coords
        self.results.info[0] = (
            tuple(m.dataset_shape),
            str(m.input_dtype),
            m.device_class,
        )

    def merge(self, dest, src):
        dest.coords[:] = src.coords
        dest.gvisits[:] = src.gvisits
        dest.errors[0] = as_list(dest.errors[0]) + as_list(src.errors[0])
        dest.info[:] = src.info


class MetaCheckFrame(MetaCheckBase):
    def process_frame(self, frame):
        self._check(frame, nav_is_frame=True)
        self.results.gvisits[:] += 1


class MetaCheckTile(MetaCheckBase):
    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 48}

    def process_tile(self, tile):
        self._check(tile)
        if self.meta.slice.origin[1:] == (0,) * (tile.ndim - 1):
            self.results.gvisits[:] += 1


class MetaCheckPartition(MetaCheckBase):
    def process_partition(self, partition):
        self._check(partition)
        self.results.gvisits[:] += 1


META_UDFS = {"frame": MetaCheckFrame, "tile": MetaCheckTile, "partition": MetaCheckPartition}


@pytest.mark.parametrize("method", sorted(META_UDFS))
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_meta(ctx, method, shape, use_roi):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    sig_shape = full_shape[len(full_shape) - sig_dims :]
    data = make_data(full_shape, "uint16", seed=45)
    roi = make_roi(nav_shape, seed=46) if use_roi else None
    # LiberTEM refuses a forced tileshape without whole frames for frame/partition UDFs
    tileshape = (5, *sig_shape[:-1], 2) if method == "tile" else (5, *sig_shape)
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3, tileshape=tileshape)
    udf = META_UDFS[method](shape=full_shape, sig_shape=sig_shape, dtype="uint16", roi=roi)
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert res["errors"].data[0] == []
    assert res["info"].data[0] == (full_shape, "float32", "cpu")
    sel = np.ones(nav_shape, bool) if roi is None else roi
    expected_coords = np.argwhere(sel)
    np.testing.assert_array_equal(res["coords"].raw_data, expected_coords)
    np.testing.assert_array_equal(res["coords"].data[sel], expected_coords)
    assert (res["gvisits"].raw_data == 1).all()


class PartitionShapeUDF(UDF):
    def get_result_buffers(self):
        return {
            "pshape": self.buffer(kind="nav", dtype="int64"),
            "main": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        # on the main node: the whole selection; on workers: the partition
        self.results.pshape[:] = self.meta.partition_shape[0]
        self.results.main[0] = (
            tuple(self.meta.partition_shape)
            if self.results.main[0] in (None, 0)
            else self.results.main[0]
        )

    def process_partition(self, partition):
        assert partition.shape[0] == self.meta.partition_shape[0]

    def merge(self, dest, src):
        dest.pshape[:] = src.pshape


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_partition_shape(ctx, use_roi):
    data = make_data((4, 6, 5, 4), "float32", seed=47)
    roi = make_roi((4, 6), seed=48) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=PartitionShapeUDF(), roi=roi)
    pshape = res["pshape"].raw_data
    n_sel = 24 if roi is None else np.count_nonzero(roi)
    assert pshape.shape == (n_sel,)
    # without ROI: 3 partitions of 8 frames; with ROI each frame holds its partition's count
    if roi is None:
        assert (pshape == 8).all()
    else:
        # contiguous runs of equal values, made of whole partitions of that many frames
        values, starts = np.unique(pshape, return_index=True)
        for v, start in zip(values, starts):
            assert (pshape[start : start + v] == v).all()
        assert np.isclose(np.sum(1.0 / pshape), np.round(np.sum(1.0 / pshape)))
    assert res["main"].data[0] == (n_sel, 5, 4)


# --- aux data ----------------------------------------------------------------------------------


class AuxBase(UDF):
    def get_result_buffers(self):
        return {
            "nav_echo": self.buffer(kind="nav", extra_shape=(2,), dtype="float64"),
            "nav_scalar": self.buffer(kind="nav", dtype="float64"),
            "weighted": self.buffer(kind="nav", dtype="float64"),
        }


class AuxFrame(AuxBase):
    def process_frame(self, frame):
        self.results.nav_echo[:] = self.params.navaux
        self.results.nav_scalar[:] = self.params.navscalar
        self.results.weighted[:] = np.sum(frame * self.params.sigaux)


class AuxTile(AuxBase):
    def get_tiling_preferences(self):
        return {"depth": 2, "total_size": 128}

    def process_tile(self, tile):
        assert self.params.sigaux.shape == tile.shape[1:]
        assert self.params.navaux.shape == (tile.shape[0], 2)
        self.results.nav_echo[:] = self.params.navaux
        self.results.nav_scalar[:] = self.params.navscalar
        axes = tuple(range(1, tile.ndim))
        self.results.weighted[:] += np.sum(tile * self.params.sigaux, axis=axes)


class AuxPartition(AuxBase):
    def process_partition(self, partition):
        self.results.nav_echo[:] = self.params.navaux
        self.results.nav_scalar[:] = self.params.navscalar
        axes = tuple(range(1, partition.ndim))
        self.results.weighted[:] = np.sum(partition * self.params.sigaux, axis=axes)


AUX_UDFS = {"frame": AuxFrame, "tile": AuxTile, "partition": AuxPartition}


@pytest.mark.parametrize("method", sorted(AUX_UDFS))
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("shape", [((4, 6, 8, 10), 2), ((24, 8, 10), 2), ((4, 6, 80), 1)])
def test_aux_data(ctx, method, use_roi, shape):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    sig_shape = full_shape[len(full_shape) - sig_dims :]
    rng = np.random.default_rng(49)
    data = make_data(full_shape, "float32", seed=50)
    navaux = rng.random((*nav_shape, 2))
    navscalar = rng.random(nav_shape)
    sigaux = rng.random(sig_shape).astype(np.float32)
    roi = make_roi(nav_shape, seed=51) if use_roi else None
    # LiberTEM refuses a forced tileshape without whole frames for frame/partition UDFs
    tileshape = (3, *sig_shape[:-1], sig_shape[-1] // 2) if method == "tile" else (3, *sig_shape)
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3, tileshape=tileshape)
    cls = AUX_UDFS[method]
    udf = cls(
        navaux=cls.aux_data(data=navaux, kind="nav", extra_shape=(2,), dtype="float64"),
        navscalar=cls.aux_data(data=navscalar, kind="nav", dtype="float64"),
        sigaux=cls.aux_data(data=sigaux, kind="sig", dtype="float32"),
    )
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    sel = np.ones(nav_shape, bool) if roi is None else roi
    np.testing.assert_allclose(res["nav_echo"].raw_data, navaux[sel])
    np.testing.assert_allclose(res["nav_echo"].data[sel], navaux[sel])
    np.testing.assert_allclose(res["nav_scalar"].raw_data, navscalar[sel])
    axes = tuple(range(len(nav_shape), data.ndim))
    expected = (data.astype(np.float64) * sigaux).sum(axis=axes)
    assert_close(res["weighted"].data[sel], expected[sel], np.float32)
    # running again with the same aux data gives the same results
    res2 = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    np.testing.assert_allclose(res2["nav_echo"].raw_data, navaux[sel])


class AuxPreprocess(UDF):
    """Aux views are set in preprocess too: the whole partition on workers."""

    def get_result_buffers(self):
        return {"pre": self.buffer(kind="nav", dtype="float64")}

    def preprocess(self):
        self.results.pre[:] = self.params.aux * 10

    def process_frame(self, frame):
        pass


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_aux_in_preprocess(ctx, use_roi):
    data = make_data((4, 6, 5, 4), "float32", seed=52)
    aux = np.arange(24, dtype=np.float64).reshape(4, 6)
    roi = make_roi((4, 6), seed=53) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    udf = AuxPreprocess(aux=AuxPreprocess.aux_data(data=aux, kind="nav", dtype="float64"))
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    sel = np.ones((4, 6), bool) if roi is None else roi
    np.testing.assert_allclose(res["pre"].raw_data, aux[sel] * 10)


def test_flat_roi_same_as_nav_shaped(ctx):
    data = make_data((4, 6, 5, 4), "float32", seed=54)
    roi = make_roi((4, 6), seed=55)
    ds = load_mem(ctx, data, num_partitions=3)
    a = ctx.run_udf(dataset=ds, udf=SUM_UDFS["tile"](), roi=roi)
    b = ctx.run_udf(dataset=ds, udf=SUM_UDFS["tile"](), roi=roi.reshape(-1))
    check_sums(b, data, 2, roi)
    np.testing.assert_array_equal(a["navsum"].data, b["navsum"].data)


def test_roi_all_true_same_as_none(ctx):
    data = make_data((4, 6, 5, 4), "float32", seed=56)
    ds = load_mem(ctx, data, num_partitions=3)
    a = ctx.run_udf(dataset=ds, udf=SUM_UDFS["tile"](), roi=np.ones((4, 6), bool))
    b = ctx.run_udf(dataset=ds, udf=SUM_UDFS["tile"]())
    for k in ("navsum", "sigsum", "pixels"):
        np.testing.assert_array_equal(a[k].data, b[k].data)


class SigViewUDF(UDF):
    """In process_tile, ``sig`` buffers and ``sig`` aux data are views of the tile's part."""

    def get_tiling_preferences(self):
        return {"depth": 2, "total_size": 96}

    def get_result_buffers(self):
        return {
            "sig": self.buffer(kind="sig", extra_shape=(2,), dtype="float64"),
            "bad": self.buffer(kind="single", dtype="int64"),
            "partial": self.buffer(kind="single", dtype="int64"),
        }

    def process_tile(self, tile):
        if tile.shape[1:] != tuple(self.meta.dataset_shape.sig):
            self.results.partial[:] += 1
        sig = self.results.sig
        if sig.shape != (*tile.shape[1:], 2) or self.params.w.shape != (*tile.shape[1:], 2):
            self.results.bad[:] += 1
            return
        sig[..., 0] += tile.sum(axis=0)
        sig[..., 1] += np.einsum("n...,...->...", tile, self.params.w[..., 1])

    def merge(self, dest, src):
        dest.sig[:] += src.sig
        dest.bad[:] += src.bad
        dest.partial[:] += src.partial


@pytest.mark.parametrize("tileshape", [(2, 3, 4), (5, 1, 10), (1, 2, 5)])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_sig_views_in_process_tile(ctx, tileshape, use_roi):
    data = make_data((4, 6, 6, 10), "float32", seed=57)
    roi = make_roi((4, 6), seed=58) if use_roi else None
    sel = np.ones((4, 6), bool) if roi is None else roi
    w = np.random.default_rng(59).random((6, 10, 2))
    ds = load_mem(ctx, data, num_partitions=3, tileshape=tileshape)
    udf = SigViewUDF(w=SigViewUDF.aux_data(data=w, kind="sig", extra_shape=(2,), dtype="float64"))
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert res["bad"].data[0] == 0
    assert res["partial"].data[0] > 0  # the frames were split into several tiles
    frames = data[sel].astype(np.float64)
    assert_close(res["sig"].data[..., 0], frames.sum(axis=0), np.float32)
    assert_close(res["sig"].data[..., 1], frames.sum(axis=0) * w[..., 1], np.float32)
