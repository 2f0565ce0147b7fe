"""One first run on fresh default-Context workers, as a new user's script makes it.

Run as a script: ``python first_run_case.py CASE [EXECUTOR]`` (default: ``Context()``,
else ``Context.make_with(EXECUTOR)``), in an empty folder, with
``NUMBA_CACHE_DIR`` pointing at an empty folder so that every numba kernel compiles.
Like a user's script, it imports the built-in UDFs and the numba-based decoders at the
top: the worker processes re-import this file when they are spawned, so numba is
imported there before the worker sets its environment. The case's UDF is the first
work of the workers; the result is compared with numpy (or, for the decoders, with the
same run on the inline executor, which the per-format tests check against numpy).
Prints ``ok CASE`` on success.
"""

import sys

import numpy as np

from libertem.api import Context
from libertem.corrections import CorrectionSet
from libertem.udf.com import CoMUDF
from libertem.udf.logsum import LogsumUDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.utils.sample_data import write_mib_acquisition
from writers_csr import sparse_frames, write_csr
from writers_frms6 import random_stored, write_frms6
from writers_k2is import random_frames, write_k2is

NAV, SIG = (4, 6), (16, 16)


def _frames(dtype="float32"):
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=(*NAV, *SIG)).astype(dtype)


def _npy(ctx, data):
    np.save("data.npy", data)
    return ctx.load("npy", path="data.npy")


def _close(got, want, rtol=1e-5):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6 * float(np.abs(want).max() or 1))


def _same_as_inline(ctx, ds_args, udf_factory, name):
    got = ctx.run_udf(dataset=ctx.load(*ds_args[0], **ds_args[1]), udf=udf_factory())[name].data
    inline = Context.make_with("inline")
    want = inline.run_udf(dataset=inline.load(*ds_args[0], **ds_args[1]), udf=udf_factory())
    np.testing.assert_array_equal(got, want[name].data)


def case_sum(ctx):
    data = _frames()
    _close(ctx.run_udf(dataset=_npy(ctx, data), udf=SumUDF())["intensity"].data, data.sum((0, 1)))


def case_sumsig(ctx):
    data = _frames("uint16")
    got = ctx.run_udf(dataset=_npy(ctx, data), udf=SumSigUDF())["intensity"].data
    _close(got, data.sum((2, 3), dtype=np.float64))


def case_stddev(ctx):
    data = _frames()
    res = ctx.run_udf(dataset=_npy(ctx, data), udf=StdDevUDF())
    flat = data.reshape((-1, *SIG)).astype(np.float64)
    _close(res["std"].data, flat.std(axis=0))
    _close(res["mean"].data, flat.mean(axis=0))


def case_logsum(ctx):
    data = _frames()
    got = ctx.run_udf(dataset=_npy(ctx, data), udf=LogsumUDF())["logsum"].data
    flat = data.reshape((-1, *SIG)).astype(np.float64)
    _close(got, np.log(flat - flat.min(axis=(1, 2), keepdims=True) + 1).sum(axis=0))


def case_masks(ctx):
    data = _frames()
    masks = np.random.default_rng(1).random((3, *SIG))
    got = ctx.run_udf(dataset=_npy(ctx, data), udf=ApplyMasksUDF(mask_factories=lambda: masks))
    _close(got["intensity"].data, np.einsum("yxij,mij->yxm", data, masks))


def case_com(ctx):
    data = _frames()
    got = ctx.run_udf(dataset=_npy(ctx, data), udf=CoMUDF.with_params(cy=7.5, cx=7.5))
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    total = data.sum((2, 3))
    _close(got["raw_shifts"].data[..., 0], (data * y).sum((2, 3)) / total - 7.5, rtol=1e-4)
    _close(got["raw_shifts"].data[..., 1], (data * x).sum((2, 3)) / total - 7.5, rtol=1e-4)


def case_corrections(ctx):
    data = _frames()
    rng = np.random.default_rng(2)
    dark, gain = rng.random(SIG).astype(np.float32), rng.random(SIG).astype(np.float32) + 0.5
    corrections = CorrectionSet(dark=dark, gain=gain)
    got = ctx.run_udf(dataset=_npy(ctx, data), udf=SumUDF(), corrections=corrections)
    _close(got["intensity"].data, ((data - dark) * gain).sum((0, 1)))


def case_mib_u16(ctx):
    data = _frames("uint16")
    _close(
        ctx.run_udf(dataset=ctx.load("mib", path=write_mib_acquisition("m", data)), udf=SumUDF())[
            "intensity"
        ].data,
        data.sum((0, 1), dtype=np.float64),
    )


def case_mib_r64(ctx):
    data = (_frames("uint16") % 64).astype("uint16")
    path = write_mib_acquisition("r", data, pixel_depth="R64", counter_depth=6)
    got = ctx.run_udf(dataset=ctx.load("mib", path=path), udf=SumUDF())["intensity"].data
    _close(got, data.sum((0, 1), dtype=np.float64))


def case_k2is(ctx):
    paths = write_k2is(".", random_frames(2, seed=3))
    _same_as_inline(ctx, (("k2is",), {"path": paths[0]}), SumUDF, "intensity")


def case_frms6(ctx):
    dark = random_stored(2, 6, 20, seed=1, hi=50)
    hdr = write_frms6(".", dark, [random_stored(4, 6, 20, seed=2)], scan=(2, 2))
    _same_as_inline(ctx, (("frms6",), {"path": hdr}), SumUDF, "intensity")


def case_raw_csr(ctx):
    data = sparse_frames((*NAV, *SIG), seed=4)
    path = write_csr("csr", data)
    got = ctx.run_udf(dataset=ctx.load("raw_csr", path=path), udf=SumUDF())["intensity"].data
    _close(got, data.sum((0, 1), dtype=np.float64))


CASES = {
    name[len("case_") :]: fn for name, fn in list(globals().items()) if name.startswith("case_")
}

if __name__ == "__main__":
    name = sys.argv[1]
    with Context.make_with(*sys.argv[2:3]) if sys.argv[2:] else Context() as ctx:
        CASES[name](ctx)
    print("ok", name)
