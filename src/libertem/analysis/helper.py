"""Code generation for analyses: each analysis has a helper that writes the Python code
(for a script or a notebook) that repeats it with the LiberTEM API.

The helpers produce pieces; :mod:`libertem.analysis.codegen` puts them together.
The generated code expects a :class:`~libertem.api.Context` named ``ctx``, the
dataset as ``ds``, NumPy as ``np`` and ``matplotlib.pyplot`` as ``plt``.
"""

from __future__ import annotations

import re

__all__ = ["GeneratorHelper", "TemplateBase"]


def _rst_to_markdown(text: str) -> str:
    """The little reStructuredText docstrings use, as Markdown."""
    text = re.sub(r":(?:meth|func|class|attr|mod|ref|code):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return text.strip()


class TemplateBase:
    """Filling code templates: the base of the code generators."""

    def format_template(self, template, data: dict) -> str:
        """``template`` (a string, or a list of lines) with ``{name}`` fields filled
        from ``data`` (`str.format`), passed through :meth:`code_formatter`."""
        if not isinstance(template, str):
            template = "\n".join(template)
        return self.code_formatter(template.format(**data))

    def code_formatter(self, code: str) -> str:
        """Tidy generated code: trailing whitespace and surrounding blank lines removed."""
        return "\n".join(line.rstrip() for line in code.strip("\n").splitlines())


class GeneratorHelper(TemplateBase):
    """Writes the code of one analysis; subclasses specialize it per analysis type.

    Parameters
    ----------
    params
        The analysis' parameters (:attr:`libertem.analysis.base.Analysis.parameters`).

    Attributes
    ----------
    short_name : str
        Prefix of the variables of the generated code (``{short_name}_analysis``,
        ``{short_name}_result``).
    api : str
        The :class:`~libertem.api.Context` method that creates the analysis.
    api_params : dict
        Parameter name of the analysis to keyword argument name of :attr:`api`,
        for the parameters that :meth:`convert_params` passes on.
    """

    short_name: str = "analysis"
    api: str = ""
    api_params: dict[str, str] = {}

    def __init__(self, params):
        self.params = dict(params)

    @property
    def analysis_name(self) -> str:
        """Variable name of the analysis in the generated code."""
        return f"{self.short_name}_analysis"

    @property
    def result_name(self) -> str:
        """Variable name of the results in the generated code."""
        return f"{self.short_name}_result"

    def convert_params(self) -> str:
        """The keyword arguments of :attr:`api` for the parameters, as code."""
        items = [
            f"{api_name}={self.params[name]!r}"
            for name, api_name in self.api_params.items()
            if self.params.get(name) is not None
        ]
        return ", ".join(items)

    def get_dependency(self) -> list[str]:
        """Import lines the generated code needs."""
        return [
            "import numpy as np",
            "import matplotlib.pyplot as plt",
            "from libertem import masks",
        ]

    def get_docs(self) -> str | None:
        """Documentation of the analysis for a Markdown cell, or ``None``."""
        return None

    def format_docs(self, title: str, docs_rst: str) -> str:
        """A Markdown section: ``title`` as heading, ``docs_rst`` converted from rST."""
        return f"## {title}\n\n{_rst_to_markdown(docs_rst)}"

    def get_analysis(self) -> str:
        """Code that creates the analysis as ``{short_name}_analysis``."""
        if not self.api:
            raise NotImplementedError(f"{type(self).__name__} names no Context method")
        params = self.convert_params()
        args = "dataset=ds" + (f", {params}" if params else "")
        return f"{self.analysis_name} = ctx.{self.api}({args})"

    def get_roi(self) -> str:
        """Code that sets ``roi`` from the parameters' ``'roi'`` entry (``None`` if none)."""
        roi = self.params.get("roi") or {}
        kind = roi.get("shape")
        if kind == "disk":
            return (
                "roi = masks.circular(centerX={cx!r}, centerY={cy!r}, imageSizeX=ds.shape.nav[1], "
                "imageSizeY=ds.shape.nav[0], radius={r!r})"
            ).format(**roi)
        if kind == "rect":
            return (
                "roi = masks.rectangular(X={x!r}, Y={y!r}, Width={width!r}, Height={height!r}, "
                "imageSizeX=ds.shape.nav[1], imageSizeY=ds.shape.nav[0])"
            ).format(**roi)
        return "roi = None"

    def get_run(self) -> str:
        """Code that runs the analysis into ``{short_name}_result``."""
        return f"{self.result_name} = ctx.run({self.analysis_name}, roi=roi, progress=False)"

    def get_plot(self) -> list[str]:
        """Code cells that plot the results (one figure per result by default)."""
        return [
            f"for result in {self.result_name}:\n"
            "    fig, axes = plt.subplots()\n"
            "    axes.set_title(result.title)\n"
            "    axes.imshow(result.visualized)"
        ]

    def get_save(self) -> str | None:
        """Code that saves the results as ``.npy`` files, or ``None``."""
        return (
            f"for result in {self.result_name}:\n"
            "    if result.include_in_download:\n"
            f"        np.save(f'{self.short_name}_{{result.key}}.npy', result.raw_data)"
        )
