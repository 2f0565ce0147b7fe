"""K2 IS and FRMS6 through LiberTEM's interfaces: parameter messages, the range-by-range
reading of BasePartition with the formats' read ranges and decoders, and Dask workers."""

import jsonschema
import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.io.dataset.base import BasePartition
from libertem.io.dataset.base.tiling import TilingScheme
from libertem.io.dataset.frms6 import FRMS6DataSet, FRMS6DatasetParams, FRMS6Partition
from libertem.io.dataset.k2is import K2ISDataSet, K2ISDatasetParams, K2ISPartition
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from utils import make_roi
from writers_frms6 import random_stored, unfold, write_frms6
from writers_k2is import random_frames, write_k2is


@pytest.fixture(scope="module")
def k2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("k2compat")
    frames = random_frames(4, seed=11)
    paths = write_k2is(folder, frames, nav_shape=(2, 2), skew={0: 1})
    return frames, paths


@pytest.fixture(scope="module")
def pn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pncompat")
    dark = random_stored(3, 4, 16, seed=1, hi=40)
    signal = [random_stored(5, 4, 16, seed=2), random_stored(3, 4, 16, seed=3)]
    hdr = write_frms6(folder, dark, signal, binning=2, scan=(2, 4))
    frames = unfold(np.concatenate(signal), 2)
    dark_mean = unfold(dark, 2).astype(np.float64).mean(axis=0).astype(np.float32)
    return hdr, frames, dark_mean


def test_params_messages(k2, pn):
    frames, paths = k2
    hdr = pn[0]
    conv = K2ISDataSet.get_msg_converter()()
    assert isinstance(conv, K2ISDatasetParams)
    msg = {"type": "K2IS", "path": paths[0], "nav_shape": [2, 2], "sync_offset": 1}
    assert conv.to_python(msg) == {"path": paths[0], "nav_shape": (2, 2), "sync_offset": 1}
    with pytest.raises(jsonschema.ValidationError):
        conv.to_python({"type": "K2IS", "path": paths[0], "io_backend": "direct"})
    conv = FRMS6DataSet.get_msg_converter()()
    assert isinstance(conv, FRMS6DatasetParams)
    msg = {"type": "FRMS6", "path": hdr, "enable_offset_correction": False, "sig_shape": [128]}
    kwargs = conv.to_python(msg)
    assert kwargs == {"path": hdr, "enable_offset_correction": False, "sig_shape": (128,)}
    ds = FRMS6DataSet(**kwargs).initialize(None)
    assert tuple(ds.shape) == (2, 4, 128)
    with pytest.raises(jsonschema.ValidationError):
        conv.to_python({"type": "FRMS6", "path": hdr, "enable_offset_correction": "yes"})


def test_k2is_range_by_range(inline_ctx, k2):
    """BasePartition's reading by read ranges + decode function gives the same tiles."""
    frames, paths = k2
    ds = inline_ctx.load("k2is", path=paths[0], sync_offset=1)
    (p,) = [p for p in ds.get_partitions() if p.start == 0]
    assert isinstance(p, K2ISPartition) and isinstance(p, BasePartition)
    assert p.start_frame == 1 and p.num_frames == p.stop - p.start
    scheme = TilingScheme.make_for_shape((2, 930, 16), ds.shape)
    roi = np.array([True, False, True, True][: p.stop - p.start])
    ref = np.concatenate([frames[1:], np.zeros_like(frames[:1])])[p.start : p.stop][roi]
    seen = 0
    for tile in p._decoded_tiles(scheme, np.dtype(np.float32), roi):
        sl = tile.slice
        want = ref[sl.origin[0] : sl.origin[0] + sl.shape[0]][
            (slice(None), *sl.get(sig_only=True))
        ]
        np.testing.assert_array_equal(tile.data, want)
        seen += 1
    # the last frame has no stored data (sync_offset=1): it is never delivered
    with_data = int(roi[: len(frames) - 1].sum())
    assert seen == len(scheme) * -(-with_data // 2)


def test_frms6_range_by_range(inline_ctx, pn):
    hdr, frames, dark = pn
    ds = inline_ctx.load("frms6", path=hdr, enable_offset_correction=False)
    p = list(ds.get_partitions())[0]
    assert isinstance(p, FRMS6Partition) and isinstance(p, BasePartition)
    p.layout = None  # force LiberTEM's range-by-range reading
    scheme = TilingScheme.make_for_shape((3, 5, 3), ds.shape)
    for tile in p.get_tiles(scheme, dest_dtype="float32"):
        sl = tile.tile_slice
        want = frames[sl.origin[0] : sl.origin[0] + sl.shape[0]]
        np.testing.assert_array_equal(tile.data, want[(slice(None), *sl.get(sig_only=True))])


@pytest.fixture(scope="module")
def dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_dask_workers(dask_ctx, k2, pn):
    frames, paths = k2
    ds = dask_ctx.load("k2is", path=paths[3], num_partitions=2)
    roi = make_roi((2, 2), seed=3)
    res = dask_ctx.run_udf(dataset=ds, udf=[SumUDF(), PickUDF()], roi=roi)
    flat = frames.reshape(2, 2, 1860, 2048)[roi]
    np.testing.assert_allclose(res[0]["intensity"].data, flat.sum(axis=0))
    np.testing.assert_array_equal(res[1]["intensity"].raw_data, flat)
    hdr, pframes, dark = pn
    ds = dask_ctx.load("frms6", path=hdr, num_partitions=3)
    res = dask_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(
        res["intensity"].data, (pframes.astype(np.float32) - dark).sum(axis=0), rtol=1e-5
    )
