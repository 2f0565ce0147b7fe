"""File-system listings for a file browser (as LiberTEM's web GUI shows them).

:func:`get_fs_listing` lists a directory, :func:`stat_path` describes one path;
problems raise :class:`FSError`, which carries a machine-readable ``code`` and,
for a path that does not exist, the nearest existing parent as ``alternative``.
"""

from __future__ import annotations

import os
import stat as stat_module
import sys


class FSError(Exception):
    """A path that cannot be listed or described.

    Parameters
    ----------
    msg
        What went wrong.
    code
        ``'NOT_FOUND'``, ``'PERMISSION_ERROR'``, ``'NOT_A_DIRECTORY'`` or ``'OS_ERROR'``.
    alternative
        A path to offer instead (the nearest existing parent of a missing path).
    """

    def __init__(self, msg: str, code: str, alternative: str | None = None):
        super().__init__(msg)
        self.code = code
        self.alternative = alternative


def get_owner_name(full_path: str, stat: os.stat_result) -> str:
    """The name of the user owning ``full_path`` (``stat`` is its ``os.stat`` result).

    Falls back to the numeric user id where names are not available (no such
    user, or a platform without a user database).
    """
    try:
        import pwd

        return pwd.getpwuid(stat.st_uid).pw_name
    except (ImportError, KeyError):
        return str(getattr(stat, "st_uid", ""))


def _nearest_existing(path: str) -> str:
    parent = path
    while not os.path.isdir(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def _fs_error(path: str, e: OSError) -> FSError:
    if isinstance(e, FileNotFoundError):
        return FSError(f"path {path} does not exist", "NOT_FOUND", _nearest_existing(path))
    if isinstance(e, PermissionError):
        return FSError(f"no permission to read {path}", "PERMISSION_ERROR", os.path.dirname(path))
    if isinstance(e, NotADirectoryError):
        return FSError(f"{path} is not a directory", "NOT_A_DIRECTORY", os.path.dirname(path))
    return FSError(f"cannot read {path}: {e}", "OS_ERROR", os.path.dirname(path))


def _entry(full_path: str, st: os.stat_result) -> dict:
    return {
        "name": os.path.basename(full_path),
        "size": st.st_size,
        "ctime": st.st_ctime,
        "mtime": st.st_mtime,
        "owner": get_owner_name(full_path, st),
    }


def stat_path(path: str) -> dict:
    """Facts about ``path``, as a file browser shows them.

    Returns
    -------
    dict
        ``path`` (absolute), ``dirname``, ``basename``, ``size`` (bytes), ``ctime``,
        ``mtime`` (seconds since the epoch), ``owner``, ``isdir``, ``isreg``.

    Raises
    ------
    FSError
        If ``path`` does not exist or cannot be read.
    """
    path = os.path.abspath(os.path.expanduser(path))
    try:
        st = os.stat(path)
    except OSError as e:
        raise _fs_error(path, e) from e
    info = _entry(path, st)
    return {
        "path": path,
        "dirname": os.path.dirname(path),
        "basename": info.pop("name"),
        **info,
        "isdir": stat_module.S_ISDIR(st.st_mode),
        "isreg": stat_module.S_ISREG(st.st_mode),
    }


def _drives() -> list[str]:
    if sys.platform.startswith("win"):
        import string

        return [f"{d}:\\" for d in string.ascii_uppercase if os.path.exists(f"{d}:\\")]
    return ["/"]


def _places() -> list[dict]:
    places = [{"key": "home", "title": "Home", "path": os.path.expanduser("~")}]
    places.append({"key": "cwd", "title": "Working directory", "path": os.getcwd()})
    return places


def get_fs_listing(path: str) -> dict:
    """The directories and files in the directory ``path``.

    Returns
    -------
    dict
        ``path`` (absolute), ``dirs`` and ``files`` (lists of entries with
        ``name``, ``size``, ``ctime``, ``mtime``, ``owner``, sorted by name),
        ``drives`` (roots of the file systems) and ``places`` (shortcuts, each
        with ``key``, ``title``, ``path``). Entries that vanish or cannot be
        examined while listing are left out.

    Raises
    ------
    FSError
        If ``path`` does not exist (``alternative``: the nearest existing
        parent), is not a directory, or cannot be read.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
        raise FSError(f"path {path} does not exist", "NOT_FOUND", _nearest_existing(path))
    if not os.path.isdir(path):
        raise FSError(f"{path} is not a directory", "NOT_A_DIRECTORY", os.path.dirname(path))
    try:
        names = os.listdir(path)
    except OSError as e:
        raise _fs_error(path, e) from e
    dirs, files = [], []
    for name in sorted(names):
        full = os.path.join(path, name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        (dirs if stat_module.S_ISDIR(st.st_mode) else files).append(_entry(full, st))
    return {
        "path": path,
        "dirs": dirs,
        "files": files,
        "drives": _drives(),
        "places": _places(),
    }


__all__ = ["FSError", "get_fs_listing", "get_owner_name", "stat_path"]
