"""The git revision of the source tree this package was imported from, if it is one."""

from __future__ import annotations

import functools
import os
import subprocess


@functools.lru_cache(maxsize=1)
def get_revision() -> str | None:
    """The commit hash of the git checkout holding this package, or ``None``.

    ``None`` when the package is not imported from a git checkout (e.g. an
    installed wheel) or git is not available.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        result = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and revision else None


__all__ = ["get_revision"]
