"""Shared fixtures: contexts for the inline and the thread-pool executor.

The contexts are session-scoped (one per pytest-xdist worker) and closed at the end.
``ctx`` is parametrized over both executors.
"""

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "libertem-tests",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("libertem-tests")


def _make_inline():
    from libertem.api import Context
    from libertem.executor.inline import InlineJobExecutor

    return Context(executor=InlineJobExecutor())


def _make_threads():
    from libertem.api import Context
    from libertem.executor.concurrent import ConcurrentJobExecutor

    return Context(executor=ConcurrentJobExecutor.make_local(n_threads=2))


@pytest.fixture(scope="session")
def inline_ctx():
    """A `Context` running every task in the calling thread."""
    ctx = _make_inline()
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def threads_ctx():
    """A `Context` running tasks on a pool of two threads."""
    ctx = _make_threads()
    yield ctx
    ctx.close()


@pytest.fixture(scope="session", params=["inline", "threads"])
def ctx(request):
    """Each of the two in-process executors in turn."""
    return request.getfixturevalue(f"{request.param}_ctx")


@pytest.fixture(scope="session")
def lt_ctx(inline_ctx):
    """Alias of `inline_ctx`."""
    return inline_ctx
