"""Paths the file browser may show and open: only those inside the root folder.

A path from the browser is always relative to the root. Absolute paths, ``..``
components and symbolic links that lead out of the root are refused; a link
that stays inside the root is followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


class PathRefused(Exception):
    """A path that is not inside the root folder (or does not exist)."""


def resolve(root: Path, relative: str) -> Path:
    """The real path of ``relative`` below ``root``.

    Parameters
    ----------
    root
        The root folder (``--local-directory``), already resolved.
    relative
        A path relative to the root, with ``/`` as separator; ``""`` is the root.

    Returns
    -------
    Path
        The path with every symbolic link resolved, inside ``root``.

    Raises
    ------
    PathRefused
        For absolute paths, ``..`` components, NUL characters, or a path whose
        real location is outside ``root``.
    """
    if "\0" in relative or "\\" in relative:
        raise PathRefused(f"{relative!r}: invalid characters in path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or os.path.isabs(relative) or (os.name == "nt" and ":" in relative):
        raise PathRefused(f"{relative!r}: absolute paths are not allowed, give one below the root")
    if ".." in pure.parts:
        raise PathRefused(f"{relative!r}: '..' is not allowed")
    real = Path(os.path.realpath(root.joinpath(*pure.parts)))
    if real != root and root not in real.parents:
        raise PathRefused(f"{relative!r}: outside the root folder")
    return real


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` (inside ``root``) as a ``/``-separated path relative to the root."""
    rel = Path(os.path.realpath(path)).relative_to(root)
    return "" if str(rel) == "." else rel.as_posix()


def list_directory(root: Path, relative: str) -> dict:
    """The entries of a folder below the root, folders first, then by name.

    Entries whose real location is outside the root (symbolic links leading out)
    are not listed; unreadable entries are skipped.

    Returns
    -------
    dict
        ``{"path": relative path, "parent": relative path or None, "entries": [...]}``,
        each entry ``{"name", "kind" ("dir" or "file"), "size", "mtime"}``.

    Raises
    ------
    PathRefused
        If the folder is outside the root or is not a folder.
    """
    folder = resolve(root, relative)
    if not folder.is_dir():
        raise PathRefused(f"{relative!r}: not a folder")
    entries = []
    with os.scandir(folder) as it:
        for entry in it:
            try:
                real = Path(os.path.realpath(entry.path))
                if real != root and root not in real.parents:
                    continue
                st = os.stat(real)
            except OSError:
                continue
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            entries.append(
                {"name": entry.name, "kind": kind, "size": st.st_size, "mtime": st.st_mtime}
            )
    entries.sort(key=lambda e: (e["kind"] != "dir", e["name"].lower()))
    rel = relative_to_root(root, folder)
    parent = None if rel == "" else relative_to_root(root, folder.parent)
    return {"path": rel, "parent": parent, "entries": entries}
