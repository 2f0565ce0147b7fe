"""The first run on fresh default-Context workers, with nothing compiled yet.

A new user's script imports the built-in UDFs at the top; spawned Dask workers
re-import it, so numba is imported there before the worker sets ``NUMBA_NUM_THREADS``.
Each built-in UDF that uses numba, and each numba-based decoder, runs here as the
first work of the workers of a fresh ``Context()`` in a fresh interpreter, with an
empty numba cache of its own (``NUMBA_CACHE_DIR``), so every kernel compiles in the
workers. Results are checked against numpy inside the script (first_run_case.py).

The built-in UDFs' kernels run as NumPy twins until they are compiled in the
background (see test_executor_first_run_kernels.py); here ``LIBERTEM_KERNELS=wait``
makes them compile within the first run, as plain numba functions do.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(HERE))

from first_run_case import CASES  # noqa: E402


def _run_case(tmp_path, *args):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    env["LIBERTEM_KERNELS"] = "wait"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS), *filter(None, [env.get("PYTHONPATH")]), *sys.path]
    )
    proc = subprocess.run(
        [sys.executable, str(HERE / "first_run_case.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split()[-2:] == ["ok", args[0]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_run_on_fresh_workers(tmp_path, case):
    _run_case(tmp_path, case)


def test_first_run_on_fresh_pipelined_workers(tmp_path):
    _run_case(tmp_path, "stddev", "pipelined")


def test_worker_numba_follows_its_thread_setting(tmp_path):
    """Cache-independent check of the cause: a kernel defined in the worker (never cached)
    compiles, and numba there runs with the worker's one thread."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import numba\n"
        "from libertem.api import Context\n"
        "from libertem.udf.stddev import StdDevUDF  # noqa: F401\n"
        "def probe():\n"
        "    import os\n"
        "    import numba\n"
        "    @numba.njit\n"
        "    def add(a, b):\n"
        "        return a + b\n"
        "    numba.set_num_threads(1)\n"
        "    return add(1, 2), numba.config.NUMBA_NUM_THREADS, os.environ['NUMBA_NUM_THREADS']\n"
        "if __name__ == '__main__':\n"
        "    with Context() as ctx:\n"
        "        print(sorted(set(ctx.executor.client.run(probe).values())))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().splitlines()[-1] == "[(3, 1, '1')]"
