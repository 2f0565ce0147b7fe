"""LiberTEM 0.16's full listing of the executor helper modules resolves here, with
compatible signatures: ``executor.utils`` (``dask_inplace``, ``delayed_unpack``),
``executor.cli``, ``common.snooze`` and the async helpers.

The entries (``libertem-0.16-exec-api.txt`` beside this file) are those of LiberTEM's
full API listing for these modules; ``api_listing.signature_problems`` compares them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat.api_listing import parse_line, resolve, signature_problems

LISTING = Path(__file__).resolve().parent / "libertem-0.16-exec-api.txt"
ENTRIES = [e for e in map(parse_line, LISTING.read_text(encoding="utf-8").splitlines()) if e]
MODULES = {
    "libertem.executor.utils",
    "libertem.executor.utils.dask_inplace",
    "libertem.executor.utils.delayed_unpack",
    "libertem.executor.cli",
    "libertem.common.snooze",
    "libertem.common.async_utils",
    "libertem.utils.async_utils",
}


def test_listing_covers_the_modules():
    assert {e.module for e in ENTRIES} == MODULES
    assert len(ENTRIES) == 78


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.module}:{e.path}")
def test_entry_resolves_with_compatible_signature(entry):
    obj = resolve(entry)
    assert signature_problems(entry, obj) == []


def test_listed_values():
    from libertem.executor import cli

    assert cli.log_values == "Allowed values are 'critical', 'error', 'warning', 'info', 'debug'."
    assert cli.preload_help.startswith(
        "Module, file or code to preload on workers, for example HDF5 plugins. "
        "Can be specified multiple times. See also https://docs.dask.org/en/stable/customize"
    )
    from libertem.common import snooze

    assert snooze.TYPE_CHECKING is False
