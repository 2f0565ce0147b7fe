"""Run every ``python`` code block of the Markdown documentation under ``docs/``.

The blocks of one file are executed in order in one shared namespace, so a
later block can use names defined by an earlier one. Each file starts from a
fresh namespace. A failing block is reported with its file and number; the
traceback points at ``docs/<file>.md:block<n>``.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"

# A fenced block that opens with exactly ```python at the start of a line and
# ends with ``` at the start of a line. Blocks fenced as ```text (or anything
# else) are documentation only and are not run.
_BLOCK_RE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _doc_files() -> list[Path]:
    return sorted(DOCS_DIR.glob("*.md"))


def extract_python_blocks(text: str) -> list[str]:
    """The source of every ```python block in ``text``, in document order."""
    return [m.group(1) for m in _BLOCK_RE.finditer(text)]


@pytest.fixture(autouse=True)
def _agg_backend():
    """Make sure no block can open a window, should one ever plot."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        yield
        return
    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_docs_exist():
    assert _doc_files(), f"no Markdown files found in {DOCS_DIR}"


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: p.name)
def test_doc_has_python_blocks(path: Path):
    blocks = extract_python_blocks(path.read_text(encoding="utf-8"))
    assert len(blocks) >= 1, f"{path.name} has no ```python block"


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: p.name)
def test_doc_examples_run(path: Path):
    blocks = extract_python_blocks(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    failure = None
    try:
        for n, source in enumerate(blocks, start=1):
            filename = f"docs/{path.name}:block{n}"
            try:
                code = compile(source, filename, "exec")
                exec(code, namespace)
            except Exception as exc:
                tb = "".join(traceback.format_exception(exc))
                failure = (
                    f"{path.name}: python block {n} of {len(blocks)} failed: "
                    f"{type(exc).__name__}: {exc}\n\n{tb}"
                )
                break
    finally:
        ctx = namespace.get("ctx")
        close = getattr(ctx, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # pragma: no cover - cleanup must not mask failures
                pass
    if failure is not None:
        pytest.fail(failure, pytrace=False)
