"""Scripts and notebooks that repeat analyses, from their code generators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from libertem.analysis.base import Analysis
from libertem.analysis.helper import GeneratorHelper

__all__ = ["Cell", "generate_cells", "to_script", "to_notebook"]


class Cell(NamedTuple):
    """One cell of generated code: ``kind`` is ``'code'`` or ``'markdown'``."""

    kind: str
    source: str


def _helpers(analyses: Sequence[Analysis]) -> list[GeneratorHelper]:
    helpers = []
    seen: dict[str, int] = {}
    for analysis in analyses:
        helper = type(analysis).get_template_helper()(analysis.parameters)
        count = seen.get(helper.short_name, 0)
        seen[helper.short_name] = count + 1
        if count:
            helper.short_name = f"{helper.short_name}{count}"
        helpers.append(helper)
    return helpers


def generate_cells(
    analyses: Sequence[Analysis],
    dataset_code: str,
    context_code: str = "ctx = Context()",
) -> list[Cell]:
    """The cells of a notebook that repeats ``analyses``.

    Parameters
    ----------
    analyses
        Analyses whose classes have a code template
        (:meth:`~libertem.analysis.base.Analysis.get_template_helper`).
    dataset_code
        Code that opens the dataset as ``ds``, e.g.
        ``"ds = ctx.load('npy', path='data.npy')"``.
    context_code
        Code that creates the :class:`~libertem.api.Context` ``ctx``.

    Returns
    -------
    list of Cell
        Imports, context, dataset, then per analysis: its documentation, creation,
        ROI, run, plots and saving.
    """
    helpers = _helpers(analyses)
    imports = ["from libertem.api import Context"]
    for helper in helpers:
        for line in helper.get_dependency():
            if line not in imports:
                imports.append(line)
    cells = [
        Cell("code", "\n".join(imports)),
        Cell("code", context_code),
        Cell("code", dataset_code),
    ]
    for helper in helpers:
        docs = helper.get_docs()
        if docs:
            cells.append(Cell("markdown", docs))
        cells.append(Cell("code", helper.get_analysis()))
        cells.append(Cell("code", helper.get_roi()))
        cells.append(Cell("code", helper.get_run()))
        cells.extend(Cell("code", plot) for plot in helper.get_plot() or ())
        save = helper.get_save()
        if save:
            cells.append(Cell("code", save))
    return cells


def to_script(cells: Sequence[Cell]) -> str:
    """A Python script of the cells; Markdown cells become comments."""
    parts = []
    for cell in cells:
        if cell.kind == "markdown":
            parts.append("\n".join(f"# {line}".rstrip() for line in cell.source.splitlines()))
        else:
            parts.append(cell.source)
    return "\n\n".join(parts) + "\n"


def to_notebook(cells: Sequence[Cell]):
    """A Jupyter notebook of the cells (needs ``nbformat``).

    Returns
    -------
    nbformat.NotebookNode
        Write it with ``nbformat.write(nb, path)``.
    """
    import nbformat

    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if cell.kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell.source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell.source))
    return nb
