"""The README's example and its two commands."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ["python3 dev.py demo", "python3 dev.py test"]


def test_readme_python_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip().endswith("(32, 32)")


def test_demo_runs_on_a_small_scan(tmp_path, monkeypatch, capsys):
    import libertem.demo as demo

    monkeypatch.setattr(demo, "NAV_SHAPE", (16, 20))
    monkeypatch.setattr(demo, "SIG_SHAPE", (64, 64))
    monkeypatch.setattr(demo, "DISK_RADIUS", 6)
    demo.main(str(tmp_path))
    names = ("bright_field", "annular_dark_field", "com_magnitude", "com_divergence")
    for name in (*names, "picked_frame"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "opened MIBDataSet of shape (16, 20, 64, 64)" in out
    mean_error = float(out.split("mean error ")[1].split(" px")[0])
    assert mean_error < 0.3


def test_demo_scan_has_the_known_shift():
    import libertem.demo as demo

    scan = demo.make_scan((6, 8), (64, 64)).astype(np.float64)
    shift_y, shift_x = demo.shift_field((6, 8))
    y, x = np.mgrid[:64, :64]
    inside = np.hypot(y - 32, x - 32) < 20
    weights = scan * inside
    com_y = (weights * (y - 32)).sum(axis=(2, 3)) / weights.sum(axis=(2, 3))
    com_x = (weights * (x - 32)).sum(axis=(2, 3)) / weights.sum(axis=(2, 3))
    assert np.abs(com_y - shift_y).max() < 0.5
    assert np.abs(com_x - shift_x).max() < 0.5
