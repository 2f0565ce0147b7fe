#!/usr/bin/env python3
"""Set up the project's virtual environment and run its main jobs.

Usage::

    python3 dev.py demo     # set up .venv, then run the demo on a generated dataset
    python3 dev.py test     # set up .venv, then lint and run the whole test suite
    python3 dev.py bench    # set up .venv, then run the throughput benchmarks

Only the Python standard library is used here, so this works on a fresh
machine with nothing but ``python3``. The environment lives in ``.venv`` in
the checkout; setup is skipped when ``pyproject.toml`` has not changed since
the last install.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed-hash"
KERNEL_STAMP = VENV / ".kernels-warm"

# Packages built on LiberTEM 0.16 that the test suite runs unchanged. They are
# installed without their dependencies: those would pull the original LiberTEM.
NO_DEPS_TEST_PACKAGES = [
    "libertem-blobfinder==0.6.1",
    "ptychography40==0.1.0",
    "libertem-live==0.3.0",
]


def _requirements_hash() -> str:
    wanted = (ROOT / "pyproject.toml").read_bytes() + repr(NO_DEPS_TEST_PACKAGES).encode()
    return hashlib.sha256(wanted).hexdigest()


def ensure_apt_package(command: str, package: str, why: str) -> None:
    """Install ``package`` from Debian if ``command`` is missing (as root or with sudo -n).

    Quiet; skipped where apt-get is missing or nobody may install, with a note.
    """
    if shutil.which(command) or not shutil.which("apt-get"):
        if not shutil.which(command):
            print(f"note: '{command}' is missing; install {package} {why}")
        return
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        print(f"note: '{command}' is missing; install the {package} package {why}")
        return
    print(f"installing {package} with apt-get", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    install = [*sudo, "apt-get", "install", "-y", "-q", package]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(install, env=env, **quiet).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, **quiet)
        subprocess.run(install, env=env, **quiet)


def ensure_graphviz() -> None:
    """Install Graphviz's ``dot`` (used to draw Dask graphs) from Debian if it is missing."""
    ensure_apt_package("dot", "graphviz", "to draw graphs")


def ensure_chromium() -> None:
    """Install Debian's Chromium (the browser tests of libertem-server drive it)."""
    ensure_apt_package("chromium", "chromium", "to run the browser tests")


def setup() -> None:
    """Create ``.venv`` and install the project with its test extras, if needed."""
    ensure_graphviz()
    ensure_chromium()
    if not PYTHON.exists():
        print("creating virtual environment in .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = _requirements_hash()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing the project and its dependencies into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    subprocess.run([*pip, "--no-deps", *NO_DEPS_TEST_PACKAGES], check=True)
    STAMP.write_text(wanted)


def warm_caches() -> None:
    """Compile ahead of time what a first run would otherwise compile.

    - Bytecode of the sources (``python -m compileall``): the editable install reads
      ``src/`` directly, and where ``PYTHONDONTWRITEBYTECODE`` is set, every process
      (each Dask worker too) would compile the modules it imports anew.
    - numba's on-disk cache of the built-in UDFs' kernels
      (``python -m libertem.udf.precompile``; see docs/performance.md): a few seconds
      once, a fraction of a second when the cache is warm.

    Both stay valid until the sources or the installed packages change, so they are
    skipped while neither did since the last warm-up (loading the warm cache alone
    takes about a second); a failure here only costs speed.
    """
    sources = ROOT / "src"
    installed = STAMP.read_text() if STAMP.exists() else ""  # new numba: a new cache
    newest = f"{max(p.stat().st_mtime_ns for p in sources.rglob('*.py'))} {installed}"
    if KERNEL_STAMP.exists() and KERNEL_STAMP.read_text() == newest:
        return
    quiet = {"stdout": subprocess.DEVNULL}
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(sources)], **quiet)
    done = subprocess.run([str(PYTHON), "-m", "libertem.udf.precompile", "-q"], cwd=ROOT)
    if done.returncode == 0:
        KERNEL_STAMP.write_text(newest)


def run(*args: str) -> int:
    """Run a command with the environment's Python, returning its exit status."""
    env = dict(os.environ, PYTHONHASHSEED=os.environ.get("PYTHONHASHSEED", "0"))
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__)
        return 2
    setup()
    warm_caches()
    job, rest = argv[0], argv[1:]
    if job == "demo":
        return run("-m", "libertem.demo", *rest)
    if job == "bench":
        return run("bench/run_all.py", *rest)
    # --no-cache: a stale cache must not pass what a clean checkout fails
    lint_paths = ("src", "tests", "bench", "docs", "examples", "dev.py")
    lint = run("-m", "ruff", "check", "--no-cache", *lint_paths)
    if lint != 0:
        return lint
    return run("-m", "pytest", "-n", "2", "--dist", "loadfile", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
