"""Python scripts and Jupyter notebooks that reproduce a result of the GUI.

The code opens the dataset with ``ctx.load`` and the parameters the GUI used,
builds the same ROI and UDF, runs it with ``ctx.run_udf`` and saves each result
channel as ``<name>.npy`` in the current folder; the notebook also plots them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from libertem.web.plan import Plan


@dataclass(frozen=True)
class CodeContext:
    """What the code needs besides the plan.

    Attributes
    ----------
    context_expr
        Python expression that creates the Context, e.g. ``'Context()'``.
    context_imports
        Import lines for it.
    filetype
        The dataset's format name.
    load_kwargs
        Keyword arguments of ``ctx.load`` (plain Python values, ``path`` absolute).
    nav_2d, sig_2d
        How the GUI shows the navigation and signal shapes as images.
    base_name
        Start of the names of the saved files.
    """

    context_expr: str
    context_imports: tuple[str, ...]
    filetype: str
    load_kwargs: dict
    nav_2d: tuple[int, int]
    sig_2d: tuple[int, int]
    base_name: str


def _load_line(code: CodeContext) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in code.load_kwargs.items())
    return f"ds = ctx.load({code.filetype!r}, {args})"


def _roi_lines(plan: Plan) -> list[str]:
    if plan.roi_call is None:
        return ["roi = None"]
    return [*plan.roi_call.code(("ny", "nx")), "roi = mask.reshape(tuple(ds.shape.nav))"]


def _setup_lines(plan: Plan, code: CodeContext) -> list[str]:
    return [
        _load_line(code),
        f"nav_2d = {code.nav_2d!r}  # the navigation image as the GUI shows it",
        f"sig_2d = {code.sig_2d!r}  # the frames as the GUI shows them",
        "ny, nx = nav_2d",
        "sy, sx = sig_2d",
        "sig_shape = tuple(ds.shape.sig)",
        *_roi_lines(plan),
        *plan.udf_code,
    ]


def _output_lines(plan: Plan, code: CodeContext) -> list[str]:
    lines = [
        "n_frames = int(np.prod(tuple(ds.shape.nav))) if roi is None "
        "else int(np.count_nonzero(roi))",
        "outputs = {",
    ]
    for name, (expr, _) in plan.outputs.items():
        lines.append(f'    "{code.base_name}_{name}": {expr},')
    lines += [
        "}",
        "for name, value in outputs.items():",
        '    np.save(f"{name}.npy", value)',
        '    print(f"{name}.npy: shape {value.shape}, dtype {value.dtype}")',
    ]
    return lines


def _imports(plan: Plan, code: CodeContext) -> list[str]:
    lines = {"import numpy as np", "from libertem.api import Context"}
    lines.update(plan.imports)
    if plan.roi_call is not None and plan.roi_call.func.startswith("masks."):
        lines.add("import libertem.masks as masks")
    lines.update(code.context_imports)
    plain = sorted(line for line in lines if line.startswith("import "))
    froms = sorted(line for line in lines if line.startswith("from "))
    return plain + froms


def _indent(lines: list[str], depth: int) -> list[str]:
    pad = "    " * depth
    return [pad + line if line else "" for line in lines]


def python_script(plan: Plan, code: CodeContext) -> str:
    """A script that computes ``plan`` on the dataset and saves the results as .npy."""
    path = code.load_kwargs.get("path", "")
    lines = [
        f'"""{plan.title.capitalize()} of {path}, as computed by libertem-server.',
        "",
        "Run it with Python; it saves each result as a .npy file in the current folder.",
        '"""',
        "",
        *_imports(plan, code),
        "",
        "",
        "def main():",
        f"    with {code.context_expr} as ctx:",
        *_indent(_setup_lines(plan, code), 2),
        "        result = ctx.run_udf(dataset=ds, udf=udf, roi=roi, progress=True)",
        *_indent(_output_lines(plan, code), 1),
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
        "",
    ]
    return "\n".join(lines)


def _cell(kind: str, lines: list[str]) -> dict:
    source = [line + "\n" for line in lines]
    if source:
        source[-1] = source[-1].rstrip("\n")
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update({"execution_count": None, "outputs": []})
    return cell


def notebook(plan: Plan, code: CodeContext) -> str:
    """A Jupyter notebook (nbformat 4) with the code of :func:`python_script` and plots."""
    path = code.load_kwargs.get("path", "")
    cells = [
        _cell("markdown", [f"# {plan.title.capitalize()}", "", f"of `{path}` (libertem-server)"]),
        _cell("code", [*_imports(plan, code), "import matplotlib.pyplot as plt"]),
        _cell("code", [f"ctx = {code.context_expr}"]),
        _cell("code", _setup_lines(plan, code)),
        _cell("code", ["result = ctx.run_udf(dataset=ds, udf=udf, roi=roi, progress=True)"]),
        _cell("code", _output_lines(plan, code)),
        _cell(
            "code",
            [
                "for name, value in outputs.items():",
                "    if value.ndim != 2:",
                "        continue",
                "    fig, ax = plt.subplots()",
                "    ax.imshow(value)",
                "    ax.set_title(name)",
            ],
        ),
    ]
    doc = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for i, cell in enumerate(doc["cells"]):
        cell["id"] = f"cell-{i}"
    return json.dumps(doc, indent=1)
