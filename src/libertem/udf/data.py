"""Attribute- and item-access containers for UDF parameters, results and task data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from libertem.common.buffers import BufferWrapper


class UDFData:
    """Named values with attribute and item access.

    Entries that are :class:`~libertem.common.buffers.BufferWrapper` instances
    resolve to their current view: a result buffer reads as the part for the frame,
    tile or partition now processed, and so does auxiliary data passed as a
    parameter. Everything else is returned as it is.

    Parameters
    ----------
    data
        Mapping of names to values or buffers.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        object.__setattr__(self, "_data", dict(data))

    def __getattr__(self, name: str):
        data = object.__getattribute__(self, "_data")
        try:
            value = data[name]
        except KeyError:
            raise AttributeError(f"no entry named {name!r}; have {sorted(data)}") from None
        if isinstance(value, BufferWrapper):
            return value.view
        return value

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(
            f"cannot rebind {name!r}: assign into the buffer instead, e.g. "
            f"`self.results.{name}[:] = value`"
        )

    def __getitem__(self, name: str):
        try:
            return self.__getattr__(name)
        except AttributeError as e:
            raise KeyError(name) from e

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        """Names of the entries."""
        return self._data.keys()

    def items(self):
        """Pairs of name and (resolved) value."""
        return ((name, self[name]) for name in self._data)

    def get_buffer(self, name: str) -> BufferWrapper:
        """The :class:`BufferWrapper` behind an entry."""
        return self._data[name]

    def buffers(self) -> dict[str, BufferWrapper]:
        """All entries that are buffers."""
        return {k: v for k, v in self._data.items() if isinstance(v, BufferWrapper)}

    def as_dict(self) -> dict[str, Any]:
        """The entries, resolved, as a plain dict."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"UDFData({sorted(self._data)})"

    def __getstate__(self):
        return self._data

    def __setstate__(self, state):
        object.__setattr__(self, "_data", state)
