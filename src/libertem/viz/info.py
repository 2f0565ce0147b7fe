"""What a UDF would produce on a dataset, for ``Context.display``."""

from __future__ import annotations

import html

import numpy as np

from libertem.viz.base import result_shape

__all__ = ["UDFInfo"]


class UDFInfo:
    """The result buffers a UDF declares for a dataset: name, kind, shape, dtype, use.

    Shows as a table in Jupyter (``_repr_html_``) and as text otherwise.

    Parameters
    ----------
    udf_name
        Name of the UDF class.
    buffers
        Buffer name to declared :class:`~libertem.common.buffers.BufferWrapper`.
    nav_shape, sig_shape
        Shape of the dataset (the result shapes follow from them).

    Attributes
    ----------
    rows : list of dict
        One per buffer: ``name``, ``kind``, ``shape`` (of the result), ``dtype``, ``use``.
    """

    def __init__(self, udf_name: str, buffers: dict, nav_shape, sig_shape):
        self.udf_name = udf_name
        self.rows = []
        for name, buf in buffers.items():
            self.rows.append(
                {
                    "name": name,
                    "kind": buf.kind,
                    "shape": result_shape(buf, nav_shape, sig_shape),
                    "dtype": np.dtype(buf.dtype),
                    "use": buf.use or "result",
                }
            )

    def __repr__(self) -> str:
        lines = [f"{self.udf_name} results:"]
        for r in self.rows:
            lines.append(
                f"  {r['name']}: kind={r['kind']} shape={r['shape']} dtype={r['dtype']} "
                f"use={r['use']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("name", "kind", "shape", "dtype", "use"))
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(r[k]))}</td>"
                for k in ("name", "kind", "shape", "dtype", "use")
            )
            + "</tr>"
            for r in self.rows
        )
        title = html.escape(self.udf_name)
        return f"<b>{title}</b><table><tr>{head}</tr>{body}</table>"
