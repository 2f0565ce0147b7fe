"""The README's example and its two commands."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


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


def test_demo_runs_on_a_small_scan(tmp_path, monkeypatch):
    import libertem.demo as demo

    monkeypatch.setattr(demo, "NAV_SHAPE", (8, 12))
    monkeypatch.setattr(demo, "SIG_SHAPE", (32, 32))
    demo.main(str(tmp_path))
    for name in ("sum_of_frames", "sum_per_frame", "bright_field", "annular_dark_field"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    data = np.fromfile(tmp_path / "sample_scan.raw", dtype=np.uint16)
    assert data.size == 8 * 12 * 32 * 32
