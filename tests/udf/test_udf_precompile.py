"""Compiling the built-in kernels ahead of time (libertem.udf.precompile): the numba cache
it writes is what a fresh process then loads instead of compiling."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from libertem.udf import precompile

WARM = textwrap.dedent(
    """
    import sys
    from libertem.udf.precompile import kernel_calls
    for name, kernel, args in kernel_calls():
        if name == "SumUDF uint16 -> float32":
            assert kernel.compile_now(*args)
    print("warm")
    """
)

USE = textwrap.dedent(
    """
    import numpy as np
    from libertem.udf.sum_kernels import add_exact_frame_sums_f32, add_tile_frame_sums, frame_rows
    tile = np.ones((3, 4, 4), dtype=np.uint16)
    tile.flags.writeable = False
    out = np.zeros((4, 4), dtype=np.float32)
    assert add_exact_frame_sums_f32.compile_now(
        *frame_rows(tile), out.reshape(-1), np.zeros(16, np.int32), 256
    )
    add_tile_frame_sums(tile, out)
    assert (out == 3).all()
    stats = add_exact_frame_sums_f32.kernel.materialize().stats
    print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """
)


def _python(code, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_fresh_processes_load_the_precompiled_kernels(tmp_path):
    cache = tmp_path / "cache"
    assert _python(WARM, cache) == ["warm"]
    assert any(cache.rglob("*.nbi"))
    hits, misses = _python(USE, cache)
    assert (int(hits), int(misses)) == (1, 0)


def test_kernel_calls_cover_the_built_in_kernels():
    names = [name for name, _, _ in precompile.kernel_calls()]
    for prefix in ("SumUDF uint16", "SumSigUDF uint16", "StdDevUDF float64", "CoMUDF uint16"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert "StdDevUDF merge" in names
    for _, kernel, args in precompile.kernel_calls():
        assert callable(kernel.twin)
        assert all(isinstance(a, (np.ndarray, int)) for a in args)


def test_main_reports_failures(monkeypatch, capsys):
    class Kernel:
        def __init__(self, ok):
            self.ok = ok

        def compile_now(self, *args):
            return self.ok

    calls = [("good", Kernel(True), ()), ("bad", Kernel(False), ())]
    monkeypatch.setattr(precompile, "kernel_calls", lambda: calls)
    assert precompile.main([]) == 1
    out = capsys.readouterr().out
    assert "compiled good" in out and "FAILED   bad" in out
    monkeypatch.setattr(precompile, "kernel_calls", lambda: [("good", Kernel(True), ())])
    assert precompile.main(["-q"]) == 0
    assert capsys.readouterr().out == ""
