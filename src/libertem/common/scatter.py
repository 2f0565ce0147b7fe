"""Objects that executors keep available to the tasks of a run: the handles that
``JobExecutor.scatter`` returns, and using them with or without a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from libertem.common.exceptions import ExecutorError


class ScatterHandle:
    """Base of what ``scatter`` returns: the handle for ``run_tasks``, and a context
    manager that yields itself.

    ``with executor.scatter(obj) as handle:`` keeps ``obj`` available to tasks for the
    block; executors add what entering and leaving mean for them (e.g. keeping a
    snoozing cluster awake) with :meth:`set_hooks`.
    """

    __slots__ = ("_hooks",)

    def set_hooks(self, enter: Callable[[], None] | None, leave: Callable[[], None] | None):
        """Call ``enter()`` when a ``with`` block starts, ``leave()`` when it ends."""
        self._hooks = (enter, leave)

    def __enter__(self):
        enter = getattr(self, "_hooks", (None, None))[0]
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc) -> None:
        leave = getattr(self, "_hooks", (None, None))[1]
        if leave is not None:
            leave()


class ParamsHandle(ScatterHandle):
    """What :meth:`JobExecutor.scatter` returns on in-process executors.

    Tasks get :attr:`obj` as their parameters when they start, so replacing or
    patching it (:meth:`JobExecutor.scatter_update`, ``scatter_update_patch``)
    changes what later tasks see. Leaving its ``with`` block releases the object.
    """

    __slots__ = ("obj", "released")

    def __init__(self, obj: Any):
        self.obj = obj
        self.released = False

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.obj = None
        self.released = True

    def __repr__(self) -> str:
        state = "released" if self.released else f"of {type(self.obj).__name__}"
        return f"<ParamsHandle {state}>"


def resolve_params(params_handle: Any) -> Any:
    """The object behind ``params_handle`` (a value passed without ``scatter`` as is).

    Raises
    ------
    ExecutorError
        If the handle's ``with`` block has ended.
    """
    if isinstance(params_handle, ParamsHandle):
        if params_handle.released:
            raise ExecutorError("the scattered parameters were released (their block ended)")
        return params_handle.obj
    return params_handle


@contextlib.contextmanager
def scattered(executor, obj) -> Iterator[Any]:
    """``with scattered(executor, obj) as handle``: the handle of ``obj`` for the block.

    Works for executors whose ``scatter`` returns a context manager (ours and
    LiberTEM's) and for ones that return a plain handle.
    """
    cm = executor.scatter(obj)
    if hasattr(cm, "__enter__") and hasattr(cm, "__exit__"):
        with cm as handle:
            yield handle
    else:
        yield cm


def enter_scatter(executor, obj) -> Any:
    """The handle of ``obj`` scattered with ``executor``, for use without a block.

    Our handles work outside a ``with`` block as well; a foreign context manager is
    entered (and left to the garbage collector).
    """
    cm = executor.scatter(obj)
    if isinstance(cm, ScatterHandle) or not hasattr(cm, "__enter__"):
        return cm
    return cm.__enter__()


__all__ = ["ParamsHandle", "ScatterHandle", "enter_scatter", "resolve_params", "scattered"]
