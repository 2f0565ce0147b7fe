"""Every name LiberTEM 0.16 has in ``libertem.analysis`` and its modules resolves here
with a compatible signature (listing: ``libertem-0.16-analysis-api.txt``)."""

from __future__ import annotations

from pathlib import Path

from compat.api_listing import parse_line, resolve, signature_problems

LISTING = Path(__file__).resolve().parent / "libertem-0.16-analysis-api.txt"


def test_analysis_names_resolve_with_compatible_signatures():
    with open(LISTING, encoding="utf-8") as f:
        entries = [e for e in map(parse_line, f) if e is not None]
    assert len(entries) > 700
    missing, mismatched = [], []
    for entry in entries:
        try:
            obj = resolve(entry)
        except Exception:
            missing.append(entry.line)
            continue
        problems = signature_problems(entry, obj)
        if problems:
            mismatched.append(f"{entry.line}: {problems}")
    assert missing == []
    assert mismatched == []
