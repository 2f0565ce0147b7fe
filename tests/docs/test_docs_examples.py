"""The examples under ``examples/`` run: the live-plot notebook (with nbclient, in a
kernel running this interpreter) and the live-plot script (headless)."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_live_plots_notebook():
    nb = nbformat.read(EXAMPLES / "live_plots.ipynb", as_version=4)
    # the kernel "python3" runs sys.executable (jupyter_client maps "python" to it);
    # without MPLBACKEND the kernel uses the inline backend, as in Jupyter
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute(env=env)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 4
    widgets = [
        out for out in outputs if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert widgets, "the bqplot figure was not displayed"


def test_live_plots_script(tmp_path):
    import matplotlib.pyplot as plt

    module = runpy.run_path(str(EXAMPLES / "live_plots.py"))
    try:
        res = module["main"](save_dir=str(tmp_path))
        assert res[0]["intensity"].data.shape == (64, 64)
        assert len(list(tmp_path.glob("live_plots_*.png"))) == 2
    finally:
        plt.close("all")


def test_basic_example_script(tmp_path):
    """examples/basic.py runs as a script, on its own sample and on a given file."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    script = Path(__file__).resolve().parents[2] / "examples" / "basic.py"
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "bright-field image: shape (32, 32)" in run.stdout
    assert (tmp_path / "basic-bright-field.png").stat().st_size > 0

    data = np.zeros((3, 4, 16, 16), dtype=np.uint16)
    data[:, :, 6:10, 6:10] = np.arange(12, dtype=np.uint16).reshape((3, 4, 1, 1))
    path = tmp_path / "given.npy"
    np.save(path, data)
    run = subprocess.run(
        [sys.executable, str(script), str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "NPYDataSet, shape (3, 4, 16, 16)" in run.stdout
    assert "min 0, max 176" in run.stdout
