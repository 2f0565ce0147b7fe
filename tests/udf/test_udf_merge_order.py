"""Partial results merge in partition order, so float results repeat bit for bit."""

from __future__ import annotations

import time

import numpy as np

from libertem.api import Context
from libertem.executor.concurrent import ConcurrentJobExecutor
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.sum import SumUDF


class SlowStartSumUDF(SumUDF):
    """A SumUDF whose early partitions take longest, so tasks finish out of order."""

    def __init__(self, dtype="float32", n_frames=1):
        super().__init__(dtype=dtype)
        self._n_frames = n_frames

    def get_tiling_preferences(self):
        return {"depth": 1, "total_size": self.TILE_SIZE_BEST_FIT}

    def preprocess(self):
        start = self.meta.slice.origin[0]
        if self.meta.partition_shape[0] < self.meta.dataset_shape.nav.size:
            time.sleep(0.02 * max(0, 6 - start // 4))


def _data():
    # values of mixed sign and magnitude make float32 sums depend on the order
    rng = np.random.default_rng(21)
    return (rng.standard_normal((6, 8, 16, 16)) * 10 ** rng.uniform(-3, 3, (6, 8, 1, 1))).astype(
        np.float32
    )


def test_threads_give_bitwise_the_inline_result_whatever_the_completion_order():
    data = _data()
    with Context(executor=InlineJobExecutor()) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=12)
        reference = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    with Context(executor=ConcurrentJobExecutor.make_local(4)) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=12)
        for _ in range(3):
            result = ctx.run_udf(dataset=ds, udf=SlowStartSumUDF())["intensity"].data
            assert np.array_equal(result, reference)


def test_partial_results_only_count_merged_frames():
    data = _data()
    with Context(executor=ConcurrentJobExecutor.make_local(4)) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=12)
        done_before = 0
        for part in ctx.run_udf_iter(dataset=ds, udf=SlowStartSumUDF()):
            damage = part.damage.data.reshape(-1)
            n_done = int(np.count_nonzero(damage))
            # merged frames form a prefix of the dataset: partitions merge in order
            assert damage[:n_done].all() and not damage[n_done:].any()
            assert n_done >= done_before
            done_before = n_done
            expected = data.reshape((-1, 16, 16))[:n_done].sum(axis=0)
            assert np.allclose(part.buffers[0]["intensity"].data, expected, rtol=1e-4, atol=1e-3)
        assert done_before == 48


def test_results_waiting_behind_a_straggler_are_merged_beyond_the_memory_limit(monkeypatch):
    import libertem.udf.runner as runner

    monkeypatch.setattr(runner, "MAX_WAITING_BYTES", 1)  # every held-back result is too much
    data = _data()
    with Context(executor=ConcurrentJobExecutor.make_local(4)) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=12)
        parts = list(ctx.run_udf_iter(dataset=ds, udf=SlowStartSumUDF()))
        final = parts[-1].buffers[0]["intensity"].data
        assert np.allclose(final, data.sum(axis=(0, 1)), rtol=1e-4, atol=1e-3)
        assert parts[-1].damage.data.all()
        # out-of-order merges show up as damage that is not a prefix
        prefixes = []
        for part in parts:
            damage = part.damage.data.reshape(-1)
            n = int(np.count_nonzero(damage))
            prefixes.append(bool(damage[:n].all()))
        assert not all(prefixes)
