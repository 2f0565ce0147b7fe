"""LiberTEM 0.16's documented names resolve here and accept the same arguments.

The facts come from ``tests/compat/libertem-0.16-api.txt`` (the documented API) and
``tests/compat/libertem-0.16-full-api.txt`` (every public name of every module);
``tests/compat/api_listing.py`` resolves them and compares signatures (run it as a
script for a report, ``--full`` for the full listing).
"""

import pytest

from compat.api_listing import FULL_LISTING, check, entries, parse_line, signature_problems

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


# Modules of the full listing that resolve completely: every public name LiberTEM 0.16
# has there (its own and what it imports) resolves from the same module path here.
COMPLETE_MODULES = {
    "libertem",
    "libertem.common.cupy",
    "libertem.common.math",
    "libertem.common.numba",
    "libertem.common.numba.cache",
    "libertem.common.scheduler",
    "libertem.common.shape",
    "libertem.common.slice",
    "libertem.common.subscriptions",
    "libertem.common.threading",
    "libertem.common.tracing",
    "libertem.io.dataset.base",
    "libertem.io.dataset.base.backend",
    "libertem.io.dataset.base.backend_buffered",
    "libertem.io.dataset.base.backend_direct",
    "libertem.io.dataset.base.backend_mmap",
    "libertem.io.dataset.base.coordinates",
    "libertem.io.dataset.base.dataset",
    "libertem.io.dataset.base.decode",
    "libertem.io.dataset.base.exceptions",
    "libertem.io.dataset.base.file",
    "libertem.io.dataset.base.fileset",
    "libertem.io.dataset.base.meta",
    "libertem.io.dataset.base.partition",
    "libertem.io.dataset.base.roi",
    "libertem.io.dataset.base.tiling",
    "libertem.io.dataset.base.tiling_scheme",
    "libertem.io.dataset.base.utils",
    "libertem.io.direct",
    "libertem.io.fs",
    "libertem.io.utils",
    "libertem.io.writers.base",
    "libertem.io.writers.results.base",
    "libertem.io.writers.results.formats",
}


@pytest.fixture(scope="module")
def full_report():
    return check(listing=FULL_LISTING)


def test_full_listing_modules_resolve_completely(full_report):
    total, resolved, missing, _ = full_report
    assert COMPLETE_MODULES <= set(total)
    incomplete = [line for line in missing if line.split(":", 1)[0] in COMPLETE_MODULES]
    assert incomplete == []
    assert sum(total.values()) == len(entries(FULL_LISTING)) > 6000


def test_full_listing_signatures_accept_the_listed_arguments(full_report):
    """Every name of the full listing that resolves accepts LiberTEM's arguments."""
    _, _, _, mismatched = full_report
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
