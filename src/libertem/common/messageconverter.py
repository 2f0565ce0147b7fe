"""MessageConverter: check and convert JSON messages (e.g. dataset parameters from a GUI).

A converter has a JSON :attr:`~MessageConverter.SCHEMA`; :meth:`~MessageConverter.to_python`
validates a message against it and converts it into Python values (e.g. the keyword
arguments of a dataset class), :meth:`~MessageConverter.from_python` goes the other way.
Each dataset format has one (``<Format>DatasetParams``, returned by its
``get_msg_converter()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema


class MessageConverter:
    """Validates messages against :attr:`SCHEMA` and converts them to and from Python."""

    #: the JSON schema of the messages
    SCHEMA: dict[str, Any] = {"type": "object"}

    def validate(self, raw_data) -> None:
        """Check ``raw_data`` against :attr:`SCHEMA`.

        Raises
        ------
        jsonschema.ValidationError
            Naming the first part that does not fit.
        """
        jsonschema.validate(instance=raw_data, schema=self.SCHEMA)

    def convert_to_python(self, raw_data):
        """Python values from a (valid) message; here: a copy of it."""
        return dict(raw_data) if isinstance(raw_data, dict) else raw_data

    def convert_from_python(self, raw_data):
        """A message from Python values; here: lists for tuples, a copy otherwise."""
        if isinstance(raw_data, dict):
            return {k: _jsonable(v) for k, v in raw_data.items()}
        return _jsonable(raw_data)

    def to_python(self, raw_data):
        """Validate the message ``raw_data``, then convert it to Python values."""
        self.validate(raw_data)
        return self.convert_to_python(raw_data)

    def from_python(self, raw_data):
        """Convert Python values to a message, then validate it."""
        converted = self.convert_from_python(raw_data)
        self.validate(converted)
        return converted


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def shape_schema(min_items: int = 1, max_items: int | None = None) -> dict[str, Any]:
    """Schema of a shape: an array of positive integers."""
    schema: dict[str, Any] = {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "minItems": min_items,
    }
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def dataset_schema(
    name: str, type_name: str, properties: dict[str, Any], required: Iterable[str] = ("path",)
) -> dict[str, Any]:
    """The schema of the parameters of a dataset format.

    Parameters
    ----------
    name
        Title of the schema (``'<Format>DatasetParams'``).
    type_name
        The ``"type"`` every message carries (e.g. ``'MIB'``).
    properties
        Schemas of the parameters.
    required
        Parameters that must be there (besides ``"type"``).
    """
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": f"http://libertem.org/{name}.schema.json",
        "title": name,
        "type": "object",
        "properties": {"type": {"const": type_name}, **properties},
        "required": ["type", *required],
    }


#: schemas of parameters most file formats share
COMMON_PROPERTIES: dict[str, Any] = {
    "path": {"type": "string"},
    "nav_shape": shape_schema(),
    "sig_shape": shape_schema(),
    "sync_offset": {"type": "integer"},
    "io_backend": {"enum": ["mmap", "buffered", "direct"]},
}


class DatasetParamsConverter(MessageConverter):
    """Converter of dataset parameters: keeps the known keys, arrays become tuples.

    Subclasses set :attr:`SCHEMA`; the parameters passed on are the schema's
    properties except ``"type"``.
    """

    def convert_to_python(self, raw_data) -> dict[str, Any]:
        keys = [k for k in self.SCHEMA["properties"] if k != "type"]
        result = {}
        for k in keys:
            if k in raw_data:
                v = raw_data[k]
                result[k] = tuple(v) if isinstance(v, list) else v
        return result


__all__ = [
    "COMMON_PROPERTIES",
    "DatasetParamsConverter",
    "MessageConverter",
    "dataset_schema",
    "shape_schema",
]
