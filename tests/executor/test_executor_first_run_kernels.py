"""A first run compiles nothing, and its results are those of the compiled kernels.

In a fresh interpreter with a fresh default ``Context()`` (and an empty numba cache),
every built-in UDF runs once on a ``.npy`` file. The workers and the main process must
not have imported numba, pydata.sparse or scipy.sparse by then (the kernels run as
their NumPy twins; a dense run needs none of these modules). Then the kernels are
compiled (``wait_for_compilations``) and every UDF runs again: the results must be
the same, bit for bit. The time the compiler waits for an idle process is set high
(``LIBERTEM_KERNEL_IDLE_S``), so that nothing compiles between the runs.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from libertem.api import Context
    from libertem.common.lazyjit import wait_for_compilations
    from libertem.udf.auto import AutoUDF
    from libertem.udf.com import CoMUDF
    from libertem.udf.crystallinity import CrystallinityUDF
    from libertem.udf.FEM import FEMUDF
    from libertem.udf.logsum import LogsumUDF
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.noop import NoOpUDF
    from libertem.udf.raw import PickUDF
    from libertem.udf.stddev import StdDevUDF
    from libertem.udf.sum import SumUDF
    from libertem.udf.sumsigudf import SumSigUDF
    import libertem.masks as masks

    HEAVY = ("numba", "sparse", "scipy.sparse", "sparseconverter")

    def heavy_imports():
        return sorted(m for m in HEAVY if m in sys.modules)

    def compiled_kernels():
        from libertem.udf import com_kernels, stddev, sum_kernels
        kernels = {
            "sum": sum_kernels.add_exact_frame_sums_f32, "sumsig": sum_kernels.add_row_sums,
            "stddev": stddev.process_tile, "com": com_kernels.moments3,
        }
        return {
            name for name, k in kernels.items() if any(f is not k.twin for f in k._ready.values())
        }

    def udfs():
        return [
            SumUDF(), SumSigUDF(), StdDevUDF(), LogsumUDF(), CoMUDF.with_params(),
            ApplyMasksUDF([lambda: masks.circular(8, 8, 16, 16, 4)]), PickUDF(), NoOpUDF(),
            FEMUDF(center=(8, 8), rad_in=2, rad_out=6),
            CrystallinityUDF(rad_in=1, rad_out=6, real_center=(4, 4), real_rad=2),
            AutoUDF(f=lambda frame: frame.max()),
        ]

    def run_all(ctx, ds):
        roi = np.zeros(ds.shape.nav, dtype=bool)
        roi[1, 2] = True
        out = []
        for udf in udfs():
            res = ctx.run_udf(dataset=ds, udf=udf, roi=roi if isinstance(udf, PickUDF) else None)
            out.append({k: np.array(v.data) for k, v in res.items()})
        return out

    if __name__ == "__main__":
        rng = np.random.default_rng(3)
        np.save("data.npy", rng.integers(0, 3000, size=(6, 5, 16, 16)).astype(np.uint16))
        with Context() as ctx:
            ds = ctx.load("npy", path="data.npy")
            first = run_all(ctx, ds)
            workers = ctx.executor.run_each_worker(heavy_imports)
            assert all(v == [] for v in workers.values()), workers
            assert heavy_imports() == [], heavy_imports()
            assert set().union(*ctx.executor.run_each_worker(compiled_kernels).values()) == set()
            ctx.executor.run_each_worker(wait_for_compilations)
            wait_for_compilations()
            assert "numba" in sys.modules
            compiled = set().union(*ctx.executor.run_each_worker(compiled_kernels).values())
            assert compiled == {"sum", "sumsig", "stddev", "com"}, compiled
            second = run_all(ctx, ds)
        for a, b in zip(first, second):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        print("ok")
    """
)


def test_first_run_compiles_nothing_and_matches_the_kernels(tmp_path):
    script = tmp_path / "first_run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    env["LIBERTEM_KERNEL_IDLE_S"] = "1000"
    env.pop("LIBERTEM_KERNELS", None)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split()[-1:] == ["ok"]
