"""Datasets the GUI opens: detection, the parameter forms, opening and errors.

The form of each format is its parameter schema (``get_msg_converter().SCHEMA``).
Parameters from the browser are checked against the schema and converted before
``Context.load`` sees them; an error names the parameter it belongs to where it
can (``field``), so that the form shows it next to that input.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from libertem.web.analyses import as_2d


class OpenError(Exception):
    """A dataset that could not be opened.

    Attributes
    ----------
    message
        What went wrong.
    field
        The form parameter it belongs to, or ``None`` for the dataset as a whole.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class DatasetEntry:
    """An open dataset of the server."""

    id: str
    ds: Any
    filetype: str
    path: str
    load_kwargs: dict

    @property
    def nav_shape(self) -> tuple[int, ...]:
        """The dataset's navigation shape."""
        return tuple(self.ds.shape.nav)

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """The dataset's signal shape."""
        return tuple(self.ds.shape.sig)

    def info(self) -> dict:
        """JSON-able description."""
        params = {k: v for k, v in self.load_kwargs.items() if k != "path"}
        return {
            "id": self.id,
            "name": os.path.basename(self.path) or self.path,
            "path": self.path,
            "filetype": self.filetype,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "shape": list(self.ds.shape),
            "nav_shape": list(self.nav_shape),
            "sig_shape": list(self.sig_shape),
            "nav_2d": list(as_2d(self.nav_shape)),
            "sig_2d": list(as_2d(self.sig_shape)),
            "dtype": str(np.dtype(self.ds.dtype)),
        }


def formats() -> dict[str, dict]:
    """Each file format's form: ``{filetype: {"title", "properties", "required"}}``.

    Formats without a parameter schema and ``memory``/``dask`` (no files) are left out.
    """
    from libertem.io.dataset import filetypes, get_dataset_cls

    out = {}
    for name in filetypes:
        if name in ("memory", "dask"):
            continue
        try:
            schema = get_dataset_cls(name).get_msg_converter().SCHEMA
        except Exception:
            continue
        props = {k: v for k, v in schema.get("properties", {}).items() if k not in ("type",)}
        out[name] = {
            "title": schema.get("title", name),
            "properties": props,
            "required": [r for r in schema.get("required", []) if r != "type"],
        }
    return out


def detect(real_path: Path) -> dict:
    """The detected format and parameters of a file (``{}`` if not recognised).

    Raises
    ------
    OpenError
        If the file cannot be read.
    """
    from libertem.io.dataset import detect as detect_format

    try:
        found = detect_format(os.fspath(real_path))
    except Exception as e:
        raise OpenError(str(e), "path") from e
    if not found:
        return {}
    params = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in found.get("parameters", {}).items()
        if k != "path" and _jsonable(v)
    }
    return {"filetype": found["type"], "params": params}


def _jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, type(None)))


def _schema_field(error) -> str | None:
    if error.validator == "required":
        m = re.search(r"'([^']+)' is a required property", error.message)
        return m.group(1) if m else None
    path = list(error.absolute_path)
    return str(path[0]) if path else None


def load_kwargs(filetype: str, real_path: Path, params: dict) -> dict:
    """The keyword arguments of ``ctx.load`` for the form values ``params``.

    Raises
    ------
    OpenError
        For an unknown format or values that do not fit its schema.
    """
    import jsonschema

    from libertem.io.dataset import get_dataset_cls

    if not isinstance(params, dict):
        raise OpenError("parameters must be an object")
    try:
        converter = get_dataset_cls(filetype).get_msg_converter()()
    except Exception as e:
        raise OpenError(f"unknown format {filetype!r}: {e}", "filetype") from e
    type_name = converter.SCHEMA.get("properties", {}).get("type", {}).get("const")
    message = {k: v for k, v in params.items() if v is not None and v != ""}
    message.update({"type": type_name, "path": os.fspath(real_path)})
    try:
        return converter.to_python(message)
    except jsonschema.ValidationError as e:
        field = _schema_field(e)
        where = f"{field}: " if field else ""
        raise OpenError(f"{where}{e.message}", field) from e


_FIELD_WORDS = ("nav_shape", "sig_shape", "sync_offset", "dtype", "ds_path", "sig_dims")


def guess_field(message: str) -> str | None:
    """The form parameter an error message from a dataset talks about, if any."""
    lower = message.lower()
    for word in _FIELD_WORDS:
        if word in lower or word.replace("_", " ") in lower:
            return word
    return None


class DatasetRegistry:
    """The open datasets of a server, by id."""

    def __init__(self):
        self.entries: dict[str, DatasetEntry] = {}
        self._ids = itertools.count(1)

    def open(self, ctx, filetype: str, rel_path: str, real_path: Path, params: dict):
        """Open a dataset (blocking: call from a worker thread).

        ``filetype`` ``'auto'`` detects the format. Nothing is registered when
        opening fails.

        Raises
        ------
        OpenError
            With the message of the failure and the parameter it belongs to.
        """
        if filetype == "auto":
            found = detect(real_path)
            if not found:
                raise OpenError(f"{rel_path}: could not determine the file format", "filetype")
            filetype = found["filetype"]
            params = {**found["params"], **(params or {})}
        kwargs = load_kwargs(filetype, real_path, params or {})
        try:
            ds = ctx.load(filetype, **kwargs)
        except Exception as e:
            text = str(e) or type(e).__name__
            raise OpenError(text, guess_field(text)) from e
        entry = DatasetEntry(
            id=f"d{next(self._ids)}",
            ds=ds,
            filetype=filetype,
            path=rel_path,
            load_kwargs=kwargs,
        )
        self.entries[entry.id] = entry
        return entry

    def close(self, dataset_id: str) -> DatasetEntry:
        """Forget a dataset (``KeyError`` if unknown)."""
        return self.entries.pop(dataset_id)
