"""Attribute- and item-access containers for UDF parameters, results and task data."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.warnings import UseDiscouragedWarning

T = TypeVar("T")


_DICT_ACCESS = "dict-like access is discouraged, as it can be confusing vs. using attribute access"


class UDFData:
    """Named values with attribute and item access.

    Entries that are :class:`~libertem.common.buffers.BufferWrapper` instances
    resolve to their current view: a result buffer reads as the part for the frame,
    tile or partition now processed, and so does auxiliary data passed as a
    parameter. Everything else is returned as it is.

    Assigning to an entry, ``data.name = value``, writes ``value`` into its current
    view (``data.name[...] = value``); names starting with ``_`` are ordinary
    attributes. Item access, ``data['name']``, returns the
    :class:`~libertem.common.buffers.BufferWrapper` itself and warns
    (:class:`~libertem.warnings.UseDiscouragedWarning`); use :meth:`get_buffer`.

    Parameters
    ----------
    data
        Mapping of names to values or buffers.
    """

    __slots__ = ("_data", "__dict__")

    def __init__(self, data: dict[str, BufferWrapper]):
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
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        try:
            entry = self._data[name]
        except KeyError:
            raise AttributeError(repr(name)) from None
        target = entry.view if isinstance(entry, BufferWrapper) else entry
        if target is not value:  # ``data.x += y`` has already written in place
            target[...] = value

    def _resolve(self, name: str):
        value = self._data[name]
        if isinstance(value, BufferWrapper):
            return value.view
        return value

    def __getitem__(self, name: str):
        warnings.warn(
            _DICT_ACCESS + ". Please use `get_buffer` instead, if you really need the "
            "`BufferWrapper` and not the current view",
            UseDiscouragedWarning,
            stacklevel=2,
        )
        return self._data[name]

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, k: str, default: T | None = None) -> T | np.ndarray | BufferWrapper | None:
        """The (resolved) entry ``k``, or ``default`` if there is none."""
        if k not in self._data:
            return default
        return self._resolve(k)

    def keys(self):
        """Names of the entries."""
        return self._data.keys()

    def values(self):
        """The (resolved) values."""
        return (self._resolve(name) for name in self._data)

    def items(self):
        """Pairs of name and (resolved) value."""
        return ((name, self._resolve(name)) for name in self._data)

    def get_buffer(self, name: str) -> BufferWrapper:
        """The :class:`BufferWrapper` (or plain value) behind an entry."""
        return self._data[name]

    def set_buffer(self, name: str, buffer: BufferWrapper) -> None:
        """Add or replace the entry ``name``."""
        self._data[name] = buffer

    def buffers(self) -> dict[str, BufferWrapper]:
        """All entries that are buffers."""
        return {k: v for k, v in self._data.items() if isinstance(v, BufferWrapper)}

    def as_dict(self) -> dict[str, BufferWrapper]:
        """The entries as a plain dict, buffers unresolved."""
        return dict(self._data)

    def get_proxy(self) -> MergeAttrMapping:
        """The current views of all entries, as a :class:`MergeAttrMapping`."""
        return MergeAttrMapping({name: self._resolve(name) for name in self._data})

    # allocation and views, for all buffers at once ------------------------------
    def allocate_for_full(self, dataset, roi: np.ndarray | None) -> None:
        """Allocate every buffer for the whole dataset (on the main node)."""
        for buf in self.buffers().values():
            buf.set_shape_ds(dataset.shape, roi)
            buf.allocate()

    def allocate_for_part(self, partition, roi: np.ndarray | None, lib=None) -> None:
        """Allocate every buffer for ``partition``; ``lib`` is the module for device buffers."""
        for buf in self.buffers().values():
            buf.set_shape_partition(partition, roi)
            buf.allocate(lib=lib)

    def _set_views(self, method: str, *args) -> None:
        for buf in self.buffers().values():
            if buf.has_data() or buf.is_aux:
                buf.set_view(getattr(buf, method)(*args))

    def set_view_for_dataset(self, dataset) -> None:
        """Views of the whole dataset."""
        self._set_views("get_view_for_dataset", dataset)

    def set_view_for_partition(self, partition) -> None:
        """Views of a whole partition."""
        self._set_views("get_view_for_partition", partition)

    def set_view_for_tile(self, partition, tile) -> None:
        """Views of ``tile``."""
        self._set_views("get_view_for_tile", partition, tile)

    def set_contiguous_view_for_tile(self, partition, tile) -> None:
        """Contiguous views of ``tile`` (written back by :meth:`flush`)."""
        self._set_views("get_contiguous_view_for_tile", partition, tile)

    def set_view_for_frame(self, partition, tile, frame_idx: int) -> None:
        """Views of frame ``frame_idx`` of ``tile``."""
        self._set_views("get_view_for_frame", partition, tile, frame_idx)

    def clear_views(self) -> None:
        """Point every view back at the whole storage."""
        for buf in self.buffers().values():
            buf.reset_view()

    def flush(self, debug: bool = False) -> None:
        """Write back contiguous views (see :meth:`set_contiguous_view_for_tile`)."""
        for buf in self.buffers().values():
            buf.flush(debug=debug)

    def export(self) -> None:
        """Move device storage of all buffers to host memory."""
        for buf in self.buffers().values():
            buf.export()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self._data)})"

    def __getstate__(self):
        return self._data

    def __setstate__(self, state):
        object.__setattr__(self, "_data", state)


class UDFKwargsWrapper(UDFData):
    """The parameters of a UDF (``self.params``); auxiliary data resolves to its current view.

    Parameters
    ----------
    data
        The constructor's keyword arguments.
    """

    __slots__ = ()

    def __init__(self, data: dict[str, Any]):
        super().__init__(data)

    def __getitem__(self, name: str):
        """The (resolved) parameter ``name``."""
        return self._resolve(name)

    def new_for_partition(self, partition, roi: np.ndarray) -> UDFKwargsWrapper:
        """A copy whose auxiliary data holds only the part for ``partition`` (and ``roi``)."""
        return UDFKwargsWrapper(
            {
                k: v.new_for_partition(partition, roi)
                if isinstance(v, BufferWrapper) and v.is_aux
                else v
                for k, v in self._data.items()
            }
        )


class MergeAttrMapping(Mapping):
    """Arrays by name, with attribute and item access: ``dest`` and ``src`` of ``merge``.

    ``dest.name = value`` writes into the array (``dest.name[...] = value``), so
    ``dest.total += src.total`` works; an unknown name raises ``KeyError``. Item
    access (``dest['name']``) works too, but warns
    (:class:`~libertem.warnings.UseDiscouragedWarning`).

    Parameters
    ----------
    dict_input
        Name -> array.
    """

    __slots__ = ("_dict", "__dict__")

    def __init__(self, dict_input: dict[str, np.ndarray]):
        object.__setattr__(self, "_dict", dict(dict_input))

    def __getattr__(self, name: str):
        try:
            return object.__getattribute__(self, "_dict")[name]
        except KeyError:
            raise AttributeError(f"no buffer named {name!r}") from None

    def __setattr__(self, name: str, value) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        target = self._dict[name]
        if target is not value:  # ``dest.x += y`` has already written in place
            target[...] = value

    def __getitem__(self, name: str):
        warnings.warn(_DICT_ACCESS, UseDiscouragedWarning, stacklevel=2)
        return self._dict[name]

    def __contains__(self, name) -> bool:
        return name in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def get(self, name: str, default=None):
        """The array ``name``, or ``default``."""
        return self._dict.get(name, default)

    def keys(self):
        """The names."""
        return self._dict.keys()

    def values(self):
        """The arrays."""
        return self._dict.values()

    def items(self):
        """Pairs of name and array."""
        return self._dict.items()

    def as_dict(self) -> dict:
        """The arrays as a plain dict."""
        return dict(self._dict)

    def __repr__(self) -> str:
        return f"MergeAttrMapping({sorted(self._dict)})"

    def __getstate__(self):
        return self._dict

    def __setstate__(self, state):
        object.__setattr__(self, "_dict", state)


__all__ = ["UDFData", "UDFKwargsWrapper", "MergeAttrMapping"]
