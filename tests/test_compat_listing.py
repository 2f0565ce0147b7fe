"""LiberTEM 0.16's documented names resolve here and accept the same arguments.

The facts come from ``tests/compat/libertem-0.16-api.txt``; ``tests/compat/api_listing.py``
resolves them and compares signatures (run it as a script for a report).
"""

import pytest

from compat.api_listing import check, entries, parse_line, signature_problems

# Names of the listing that are knowingly left out, with the reason (none at present:
# StdDevUDF.postprocess now writes the per-region frame counts into num_frames).
LEFT_OUT: set[str] = set()


@pytest.fixture(scope="module")
def report():
    return check()


def test_every_listed_name_resolves(report):
    total, resolved, missing, _ = report
    assert sum(total.values()) == len(entries()) > 5000
    assert set(missing) <= LEFT_OUT, sorted(set(missing) - LEFT_OUT)[:20]
    assert sum(resolved.values()) / sum(total.values()) >= 0.95


def test_signatures_accept_the_listed_arguments(report):
    _, _, _, mismatched = report
    assert mismatched == []


def _f(a, b=1, *args, c, **kwargs):
    pass


def test_checker_finds_incompatible_signatures():
    """The checker notices a wrong order, a missing keyword and an extra requirement."""
    ok = parse_line("m:f(a, b=1, *args, c, **kwargs)")
    assert signature_problems(ok, _f) == []

    def h(a, b=1):
        pass

    swapped = parse_line("m:h(b, a=1)")
    assert any("positional parameter 0" in p for p in signature_problems(swapped, h))
    more = parse_line("m:f(a, b=1, *args, c, d, **kwargs)")
    assert signature_problems(more, _f) == []  # **kwargs takes d
    fewer = parse_line("m:f(a, b=1, **kwargs)")
    problems = signature_problems(fewer, _f)
    assert any("'c'" in p for p in problems)

    def g(a):
        pass

    assert any("'d'" in p for p in signature_problems(parse_line("m:f(a, *, d=2)"), g))
