"""The run plumbing on worker processes: backends, corrections, progress, parameter updates.

Few runs on the shared Dask cluster (it is slow to start on small machines).
"""

from __future__ import annotations

import numpy as np
import pytest
import sparse

from libertem.api import Context
from libertem.common.progress import ProgressReporter
from libertem.corrections import CorrectionSet
from libertem.udf import UDF

NAV, SIG = (4, 6), (8, 8)


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    yield Context(executor=acquire_cluster())
    release_cluster()


class Recorder(ProgressReporter):
    def __init__(self):
        super().__init__()
        self.states = []

    def start(self, state):
        self.states.append(state)

    def update(self, state):
        self.states.append(state)

    def end(self, state):
        self.states.append(state)


class SumsUDF(UDF):
    def __init__(self, factor=1.0):
        super().__init__(factor=factor)

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_SPARSE_COO)

    def get_result_buffers(self):
        return {
            "frames": self.buffer(kind="nav", dtype="float64"),
            "sparse_seen": self.buffer(kind="nav", dtype=bool),
            "tpw": self.buffer(kind="nav", dtype="int64"),
        }

    def process_tile(self, tile):
        self.results.sparse_seen[:] = isinstance(tile, sparse.COO)
        self.results.tpw[:] = self.meta.threads_per_worker
        sums = tile.sum(axis=(1, 2)) * self.params.factor
        self.results.frames[:] += self.forbuf(sums, self.results.frames)


def test_sparse_corrections_progress_on_workers(dask_ctx):
    rng = np.random.default_rng(1)
    dense = ((rng.random(NAV + SIG) < 0.3) * 5).astype(np.float32)
    dark = np.full(SIG, 0.5, dtype=np.float32)
    corrections = CorrectionSet(dark=dark)
    roi = np.ones(NAV, dtype=bool)
    roi[0, :3] = False
    ds = dask_ctx.load("memory", data=sparse.COO.from_numpy(dense), sig_dims=2, num_partitions=3)
    reporter = Recorder()
    res = dask_ctx.run_udf(
        dataset=ds, udf=SumsUDF(), roi=roi, corrections=corrections, progress=reporter
    )
    expected = (dense - dark).sum(axis=(2, 3))[roi]
    assert np.allclose(res["frames"].raw_data, expected, rtol=1e-5)
    plain = dask_ctx.run_udf(dataset=ds, udf=SumsUDF(), roi=roi)
    assert plain["sparse_seen"].raw_data.all()
    assert np.all(plain["tpw"].raw_data == 1)  # single-threaded worker processes
    assert reporter.states[0].num_frames_total == int(roi.sum())
    assert reporter.states[-1].num_frames_complete == int(roi.sum())
    assert reporter.states[-1].num_part_complete == 3


def test_parameter_update_reaches_workers(dask_ctx):
    data = np.ones(NAV + SIG, dtype=np.float32)
    ds = dask_ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    gen = dask_ctx.run_udf_iter(dataset=ds, udf=SumsUDF())
    first = next(gen)
    gen.update_parameters_experimental([{"factor": 3.0}])
    final = [first, *gen][-1]
    frames = final.buffers[0]["frames"].raw_data
    # the tasks that had not started saw the new factor, the others the old one
    assert set(np.unique(frames)) <= {64.0, 192.0}
    assert final.damage.data.all()
