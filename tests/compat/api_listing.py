"""Compare this package with the listing of LiberTEM 0.16's documented public API.

The listing (``libertem-0.16-api.txt`` beside this file) has one entry per line,
``module:Name`` or ``module:Class.member``, followed by what the name is: a
call signature, ``class(...)``, ``property`` or ``= value``. This module parses
it, resolves every entry here and checks that our callables accept the same
arguments:

- the listed positional parameters appear at the same positions, by name;
- listed keyword-only parameters are accepted by name (or through ``**kwargs``);
- what we require, the listing requires too;
- ``*args`` / ``**kwargs`` in the listing are there in ours as well.

Run it as a script for a report::

    python tests/compat/api_listing.py [--full] [--missing] [--mismatch] [--module PREFIX]

``--full`` checks the listing of every public name of every module
(``libertem-0.16-full-api.txt``) instead of the documented API only.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LISTING = Path(__file__).resolve().parent / "libertem-0.16-api.txt"
#: every public name of every LiberTEM 0.16 module (a superset of :data:`LISTING`)
FULL_LISTING = Path(__file__).resolve().parent / "libertem-0.16-full-api.txt"

_ENTRY_RE = re.compile(r"([\w.]+):([\w.]+)(.*)")
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True)
class Param:
    """One listed parameter."""

    name: str
    kind: str  # 'pos' (positional or keyword), 'kw' (keyword-only), 'varargs', 'varkw'
    required: bool


@dataclass(frozen=True)
class Entry:
    """One line of the listing."""

    line: str
    module: str
    path: str
    params: tuple[Param, ...] | None  # None: not a callable entry


def _matching_paren(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``start``."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, []
    for c in text:
        if quote:
            current.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(c)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def _parse_params(text: str) -> tuple[Param, ...]:
    params, keyword_only = [], False
    for raw in _split_top(text):
        raw = raw.strip()
        if raw == "/":
            continue
        if raw == "*":
            keyword_only = True
            continue
        if raw.startswith("**"):
            params.append(Param(raw[2:].split(":")[0].strip(), "varkw", False))
            continue
        if raw.startswith("*"):
            params.append(Param(raw[1:].split(":")[0].strip(), "varargs", False))
            keyword_only = True
            continue
        name = re.match(r"\w+", raw).group(0)
        params.append(Param(name, "kw" if keyword_only else "pos", "=" not in raw))
    return tuple(params)


def parse_line(line: str) -> Entry | None:
    """The entry of one listing line, or ``None`` for blank and comment lines."""
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        return None
    module, path, rest = _ENTRY_RE.match(line).groups()
    rest = rest.strip()
    params = None
    if rest.startswith("class(") or rest.startswith("("):
        start = rest.index("(")
        params = _parse_params(rest[start + 1 : _matching_paren(rest, start)])
    return Entry(line, module, path, params)


def entries(listing: Path = LISTING) -> list[Entry]:
    """All entries of a listing (by default the documented API)."""
    with open(listing, encoding="utf-8") as f:
        return [e for e in map(parse_line, f) if e is not None]


def resolve(entry: Entry):
    """The object an entry names here (raises if it does not resolve)."""
    obj = importlib.import_module(entry.module)
    for part in entry.path.split("."):
        obj = getattr(obj, part)
    return obj


def _drop_bound(params: list, names=("self", "cls")) -> list:
    if params and params[0] in names:
        return params[1:]
    return params


def signature_problems(entry: Entry, obj) -> list[str]:
    """Ways in which ``obj`` does not accept the listed arguments (empty: compatible)."""
    if entry.params is None or not callable(obj):
        return []
    if isinstance(obj, type) and not entry.line.split(":", 1)[1].split(" ", 1)[-1].startswith(
        "class("
    ):
        return []
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    ours = list(sig.parameters.values())
    if ours and ours[0].name in ("self", "cls"):
        ours = ours[1:]
    listed = list(entry.params)
    if listed and listed[0].name in ("self", "cls") and listed[0].kind == "pos":
        listed = listed[1:]
    P = inspect.Parameter
    our_pos = [p for p in ours if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    our_named = {p.name: p for p in ours if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    has_varargs = any(p.kind == P.VAR_POSITIONAL for p in ours)
    has_varkw = any(p.kind == P.VAR_KEYWORD for p in ours)
    problems = []
    listed_pos = [p for p in listed if p.kind == "pos"]
    for i, p in enumerate(listed_pos):
        if i < len(our_pos) and our_pos[i].name == p.name:
            continue
        if has_varargs and has_varkw:
            continue
        problems.append(f"positional parameter {i} should be {p.name!r}")
    for p in listed:
        if p.kind == "kw" and p.name not in our_named and not has_varkw:
            problems.append(f"keyword parameter {p.name!r} is not accepted")
        if p.kind == "varargs" and not has_varargs:
            problems.append("*args is not accepted")
        if p.kind == "varkw" and not has_varkw:
            problems.append("**kwargs is not accepted")
    listed_required = {p.name for p in listed if p.required and p.kind in ("pos", "kw")}
    for p in ours:
        if p.default is P.empty and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
            if p.name not in listed_required:
                problems.append(f"we require {p.name!r}, the listing does not")
    return problems


def check(
    prefix: str = "", listing: Path = LISTING, modules: set[str] | None = None
) -> tuple[Counter, Counter, list[str], list[str]]:
    """Resolve all entries (of modules starting with ``prefix``, or only those of ``modules``).

    Returns
    -------
    total, resolved
        Counts per module.
    missing
        Lines that do not resolve.
    mismatched
        Lines that resolve to a callable with an incompatible signature, with the reason.
    """
    total, resolved = Counter(), Counter()
    missing, mismatched = [], []
    for entry in entries(listing):
        if not entry.module.startswith(prefix):
            continue
        if modules is not None and entry.module not in modules:
            continue
        total[entry.module] += 1
        try:
            obj = resolve(entry)
        except Exception:
            missing.append(entry.line)
            continue
        resolved[entry.module] += 1
        problems = signature_problems(entry, obj)
        if problems:
            mismatched.append(f"{entry.line[:160]}\n    -> {'; '.join(problems)}")
    return total, resolved, missing, mismatched


def main(argv: list[str]) -> int:
    prefix = ""
    if "--module" in argv:
        prefix = argv[argv.index("--module") + 1]
    listing = FULL_LISTING if "--full" in argv else LISTING
    total, resolved, missing, mismatched = check(prefix, listing)
    for module in sorted(total):
        print(f"{resolved[module]:5d}/{total[module]:<5d} {module}")
    n_total, n_ok = sum(total.values()), sum(resolved.values())
    print(
        f"TOTAL {n_ok}/{n_total} resolve ({100 * n_ok / max(n_total, 1):.1f}%), "
        f"{len(mismatched)} with incompatible signatures"
    )
    if "--missing" in argv:
        print("\n# missing\n" + "\n".join(missing))
    if "--mismatch" in argv:
        print("\n# incompatible signatures\n" + "\n".join(mismatched))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
