"""raw CSR, stacked DM and the transposed-DM conversion on Dask worker processes
(one shared cluster, few runs)."""

import numpy as np
import pytest
import scipy.sparse

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.contrib.convert_transposed import convert_dm4_transposed
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from utils import make_roi
from writers_csr import sparse_frames, write_csr
from writers_dm_ser_seq import check_dataset, write_dm


@pytest.fixture(scope="module")
def dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


class CSRRowSums(UDF):
    def get_backends(self):
        return (self.BACKEND_SCIPY_CSR,)

    def get_result_buffers(self):
        return {"sums": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        assert isinstance(tile, scipy.sparse.csr_matrix)
        self.results.sums[:] = np.asarray(tile.sum(axis=1)).reshape(-1)


def test_raw_csr_on_dask(dask_ctx, tmp_path):
    data = sparse_frames((4, 6, 8, 8), 0.1, "uint16", seed=21)
    ds = dask_ctx.load("raw_csr", path=write_csr(tmp_path, data), num_partitions=3)
    roi = make_roi((4, 6), seed=2)
    sparse_res, dense_res = dask_ctx.run_udf(dataset=ds, udf=[CSRRowSums(), SumUDF()], roi=roi)
    sums = data.sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(sparse_res["sums"].data[roi], sums[roi])
    np.testing.assert_allclose(dense_res["intensity"].data, data[roi].sum(axis=0))


def test_dm_on_dask(dask_ctx, tmp_path):
    frames = np.random.default_rng(3).integers(0, 100, (6, 8, 8)).astype(np.float32)
    files = [str(write_dm(tmp_path / f"f{i}.dm4", f)) for i, f in enumerate(frames)]
    ds = dask_ctx.load("dm", files=files, nav_shape=(2, 3), num_partitions=2)
    check_dataset(dask_ctx, ds, frames.reshape(2, 3, 8, 8), roi=make_roi((2, 3), seed=4))
    data = np.random.default_rng(5).integers(0, 100, (3, 4, 8, 6)).astype(np.uint16)
    path = write_dm(tmp_path / "t.dm4", data, layout="sig_first")
    convert_dm4_transposed(path, tmp_path / "t.npy", ctx=dask_ctx)
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), data)
