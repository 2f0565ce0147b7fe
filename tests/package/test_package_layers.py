"""The package's layers hold: no module imports from a layer above its own (and no
module grows beyond what one job needs).

Layers, low to high: common < io < udf < executor < analysis, viz, api, web, contrib
(the top layers may import each other's lower layers, not each other where that would
run against this order). The source is walked with ``ast``, so imports inside
functions count as well. Allowed upward imports: those under ``if TYPE_CHECKING:``,
and those inside a module-level ``__getattr__`` (lazy re-exports that give LiberTEM's
module paths their names).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "libertem"

#: layer of each top-level part of the package (``libertem.<part>``)
LAYER_OF_PART = {
    "common": 0,
    "exceptions": 0,
    "warnings": 0,
    "masks": 0,
    "utils": 0,
    "io": 1,
    "corrections": 1,
    "udf": 2,
    "executor": 3,
    "analysis": 4,
    "viz": 4,
    "api": 4,
    "contrib": 4,
    "web": 4,
    "demo": 5,
    # imported by every executor (and Dask workers) before tasks run; imports only the
    # package itself
    "preload": 3,
    "__init__": 5,
}
LAYER_NAMES = {0: "common", 1: "io", 2: "udf", 3: "executor", 4: "top", 5: "package"}


def layer_of(module: str) -> int:
    """The layer of a dotted module name inside the package."""
    parts = module.split(".")
    if parts == ["libertem"]:
        return LAYER_OF_PART["__init__"]
    return LAYER_OF_PART[parts[1]]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_submodule(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import in the file that counts for the layers."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            found.append((node.lineno, target))
            # ``from libertem import udf`` names submodules (other names, such as
            # ``__version__``, come from the package itself)
            if target == "libertem":
                found.extend(
                    (node.lineno, f"libertem.{a.name}")
                    for a in node.names
                    if _is_submodule(a.name)
                )
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
            continue
        visit(stmt)
    return [(line, name) for line, name in found if name.split(".")[0] == "libertem"]


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(SRC.joinpath("libertem").rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for line, imported in imports_of(path):
            if imported == "libertem" or layer_of(imported) <= own:
                continue
            if layer_of(imported) == own:
                continue
            problems.append(
                f"{path.relative_to(SRC)}:{line}: {module} ({LAYER_NAMES[own]}) imports "
                f"{imported} ({LAYER_NAMES[layer_of(imported)]})"
            )
    return problems


def test_every_module_has_a_layer():
    for path in SRC.joinpath("libertem").rglob("*.py"):
        layer_of(module_name(path))


#: most lines a module of the package may have (split it by job beyond that)
MAX_MODULE_LINES = 500


def test_no_module_is_too_long():
    long = [
        f"{path.relative_to(SRC)}: {n} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_no_module_imports_a_higher_layer():
    problems = upward_imports()
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import libertem.udf.base\n", ["libertem.udf.base"]),
        ("def f():\n    from libertem.executor import dask\n", ["libertem.executor"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import libertem.api\n", []),
        ("def __getattr__(name):\n    from libertem.api import Context\n", []),
        ("from . import sibling\n", ["libertem.common"]),
        ("from libertem import udf\n", ["libertem", "libertem.udf"]),
    ],
)
def test_import_walker(tmp_path, monkeypatch, source, expected):
    """The walker sees imports at any depth and skips the allowed kinds."""
    package = tmp_path / "libertem" / "common"
    package.mkdir(parents=True)
    (package / "x.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert [name for _, name in imports_of(package / "x.py")] == expected
