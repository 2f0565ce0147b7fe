"""Flatten nests of containers (dicts, lists, tuples) to their leaves and build them again.

The delayed executor hands nests of results to Dask and back: :func:`flatten_nested`
lists the leaves, :func:`build_mapping` records where each leaf sits (its path: one
``(container type, key)`` pair per level), and :func:`rebuild_nested` puts (new)
leaves back into a nest of the same shape and container types::

    >>> nest = {'a': [1, (2, 3)], 'b': 4}
    >>> flat = flatten_nested(nest)
    >>> flat
    [1, 2, 3, 4]
    >>> rebuild_nested([x * 10 for x in flat], build_mapping(nest))
    {'a': [10, (20, 30)], 'b': 40}

Empty containers are leaves, so they come back as they were.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable
from typing import Any

#: how to list the ``(key, item)`` pairs of a container type
Unpackers = dict[type, Callable[[Iterable], Iterable[tuple[Any, Any]]]]
#: how to put ``item`` at ``key`` into a (mutable, under construction) container
MergeFns = dict[type, Callable[[Iterable, Any, Any], None]]
#: the path of a leaf: ``(container type, key)`` per level, outermost first
Path = list[tuple[type, Any]]


class IgnoreClass:
    """A type nothing is an instance of: the default of ``ignore_types`` (ignore nothing)."""


class StructDescriptor:
    """How to make an empty container: ``cls(*args, **kwargs)``.

    Parameters
    ----------
    cls
        The container type.
    *args, **kwargs
        Arguments for ``cls``.
    """

    def __init__(self, cls: type, *args: tuple, **kwargs: dict):
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __call__(self):
        return self.cls(*self.args, **self.kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, StructDescriptor) and (
            (self.cls, self.args, self.kwargs) == (other.cls, other.args, other.kwargs)
        )

    def __hash__(self) -> int:
        return hash(self.cls)

    def __repr__(self) -> str:
        return f"StructDescriptor({self.cls.__name__}, *{self.args!r}, **{self.kwargs!r})"


def _items_of_dict(d: dict) -> Iterable[tuple[Any, Any]]:
    return d.items()


def default_unpackable() -> Unpackers:
    """The containers walked by default: ``list`` and ``tuple`` (by index), ``dict`` (by key)."""
    return {list: enumerate, tuple: enumerate, dict: _items_of_dict}


def _set_in_sequence(nest: list, key: int, el: Any) -> None:
    if key >= len(nest):
        nest.extend([None] * (key + 1 - len(nest)))
    nest[key] = el


def _set_in_mapping(nest: dict, key: Any, el: Any) -> None:
    nest[key] = el


def default_merge_fns() -> MergeFns:
    """How :func:`rebuild_nested` stores an item: ``merge_fn(nest, key, item)`` per type.

    Tuples are built as lists and turned into tuples at the end (:func:`list_to_tuple`).
    """
    return {list: _set_in_sequence, tuple: _set_in_sequence, dict: _set_in_mapping}


#: empty containers that :func:`insert_at_pos` creates for each container type
_BUILDERS = {list: StructDescriptor(list), tuple: StructDescriptor(list)}


def _container_type(el: Any, unpackable_types: Unpackers, ignore_types: tuple[type, ...]):
    if isinstance(el, ignore_types):
        return None
    for kind in unpackable_types:
        if isinstance(el, kind):
            return kind
    return None


def build_mapping(
    el: Any,
    unpackable_types: Unpackers = None,
    ignore_types: tuple[type, ...] | None = None,
    _pos: Path = None,
) -> list[Path]:
    """The path of every leaf of ``el``, in the order of :func:`flatten_nested`.

    Parameters
    ----------
    el
        The nest (a leaf on its own gives ``[[]]``).
    unpackable_types
        Container types to walk and how to list their items (default:
        :func:`default_unpackable`); subclasses count as their base type.
    ignore_types
        Types that are leaves even if they are containers.
    _pos
        The path of ``el`` itself (used while recursing).

    Returns
    -------
    list of paths
        One list of ``(container type, key)`` pairs per leaf.
    """
    unpackable_types = default_unpackable() if unpackable_types is None else unpackable_types
    ignore_types = (IgnoreClass,) if ignore_types is None else tuple(ignore_types)
    pos = [] if _pos is None else _pos
    kind = _container_type(el, unpackable_types, ignore_types)
    if kind is None:
        return [pos]
    items = list(unpackable_types[kind](el))
    if not items:
        return [pos]
    mapping = []
    for key, item in items:
        mapping.extend(build_mapping(item, unpackable_types, ignore_types, pos + [(kind, key)]))
    return mapping


def flatten_nested(
    el: Any,
    unpackable_types: Unpackers = None,
    ignore_types: tuple[type, ...] | None = None,
) -> list[Any]:
    """The leaves of the nest ``el``, depth first (see :func:`build_mapping` for arguments)."""
    unpackable_types = default_unpackable() if unpackable_types is None else unpackable_types
    ignore_types = (IgnoreClass,) if ignore_types is None else tuple(ignore_types)
    kind = _container_type(el, unpackable_types, ignore_types)
    if kind is None:
        return [el]
    items = list(unpackable_types[kind](el))
    if not items:
        return [el]
    flat = []
    for _key, item in items:
        flat.extend(flatten_nested(item, unpackable_types, ignore_types))
    return flat


def pairwise(iterable: Iterable[Any]) -> Generator[tuple[Any, Any], None, None]:
    """Overlapping pairs: ``s0, s1, s2, ...`` gives ``(s0, s1), (s1, s2), ...``."""
    first, second = itertools.tee(iterable)
    next(second, None)
    yield from zip(first, second)


def insert_at_pos(el: Any, coords: Path, nest: Iterable, merge_fns: MergeFns):
    """Put ``el`` into ``nest`` at the path ``coords``, creating containers on the way.

    Parameters
    ----------
    el
        The leaf.
    coords
        Its path (see :func:`build_mapping`); must not be empty.
    nest
        The outermost container (tuples are lists while building).
    merge_fns
        How to store an item into each container type (see :func:`default_merge_fns`).
    """
    current = nest
    for (kind, key), (child_kind, _child_key) in pairwise(coords):
        child = _get(current, key)
        if child is None:
            child = _BUILDERS.get(child_kind, StructDescriptor(child_kind))()
            merge_fns[kind](current, key, child)
        current = child
    kind, key = coords[-1]
    merge_fns[kind](current, key, el)


def _get(nest, key):
    if isinstance(nest, dict):
        return nest.get(key)
    return nest[key] if key < len(nest) else None


def find_tuples(flat_mapping: list[Path]) -> list[tuple[int, int]]:
    """Where the nest has tuples: ``(leaf index, depth)`` of each, deepest first.

    ``flat_mapping[leaf][:depth]`` is the path to the tuple (each tuple listed once).
    """
    seen = set()
    found = []
    for index, path in enumerate(flat_mapping):
        for depth, (kind, _key) in enumerate(path):
            prefix = tuple(key for _kind, key in path[:depth])
            if kind is tuple and prefix not in seen:
                seen.add(prefix)
                found.append((index, depth))
    return sorted(found, key=lambda pair: -pair[1])


def set_as_tuple(nest, indices: list[Any]):
    """Turn the list at the path ``indices`` (keys) of ``nest`` into a tuple.

    Returns
    -------
    The nest (a new tuple if ``indices`` is empty, that is the nest itself was meant).
    """
    if not indices:
        return tuple(nest)
    parent = nest
    for key in indices[:-1]:
        parent = parent[key]
    parent[indices[-1]] = tuple(parent[indices[-1]])
    return nest


def list_to_tuple(nest, flat_mapping: list[Path]):
    """Turn the lists that stand for tuples (per ``flat_mapping``) into tuples."""
    for index, depth in find_tuples(flat_mapping):
        keys = [key for _kind, key in flat_mapping[index][:depth]]
        nest = set_as_tuple(nest, keys)
    return nest


def rebuild_nested(flat: list[Any], flat_mapping: list[Path], merge_functions=None):
    """The nest described by ``flat_mapping`` holding the leaves ``flat``.

    Parameters
    ----------
    flat
        One leaf per path (in the order of ``flat_mapping``).
    flat_mapping
        From :func:`build_mapping`.
    merge_functions
        Extra or replacement entries for :func:`default_merge_fns`.

    Raises
    ------
    ValueError
        If ``flat`` and ``flat_mapping`` differ in length.
    """
    flat = list(flat)
    if len(flat) != len(flat_mapping):
        raise ValueError(f"{len(flat)} leaves for {len(flat_mapping)} positions")
    if len(flat_mapping) == 1 and not flat_mapping[0]:
        return flat[0]
    merge_fns = {**default_merge_fns(), **(merge_functions or {})}
    root_kind = flat_mapping[0][0][0]
    nest = _BUILDERS.get(root_kind, StructDescriptor(root_kind))()
    for el, coords in zip(flat, flat_mapping):
        insert_at_pos(el, coords, nest, merge_fns)
    return list_to_tuple(nest, flat_mapping)


__all__ = [
    "IgnoreClass",
    "StructDescriptor",
    "build_mapping",
    "default_merge_fns",
    "default_unpackable",
    "find_tuples",
    "flatten_nested",
    "insert_at_pos",
    "list_to_tuple",
    "pairwise",
    "rebuild_nested",
    "set_as_tuple",
]
