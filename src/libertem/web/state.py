"""What one server holds: the Context, the root folder, the token, datasets and runs."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from libertem.web.codegen import CodeContext
from libertem.web.datasets import DatasetEntry, DatasetRegistry
from libertem.web.plan import Plan
from libertem.web.runs import RunManager


@dataclass(frozen=True)
class ContextCode:
    """How generated code creates a Context like the server's.

    Attributes
    ----------
    expr
        A Python expression, e.g. ``'Context()'`` or ``'Context.make_with("threads")'``.
    imports
        Import lines it needs besides ``from libertem.api import Context``.
    description
        Shown in the GUI, e.g. ``'local Dask cluster'``.
    """

    expr: str = "Context()"
    imports: tuple[str, ...] = ()
    description: str = "default Context"


@dataclass
class ServerState:
    """The state the request handlers share."""

    ctx: object
    root: Path
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    context_code: ContextCode = field(default_factory=ContextCode)
    datasets: DatasetRegistry = field(default_factory=DatasetRegistry)
    runs: RunManager | None = None
    connections: set = field(default_factory=set)
    port: int = 0

    def __post_init__(self):
        self.root = Path(os.path.realpath(self.root))

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the run manager for the server's event loop."""
        self.runs = RunManager(self.ctx, loop)

    def code_context(self, entry: DatasetEntry, plan: Plan) -> CodeContext:
        """What the generated code needs to reproduce ``plan`` on ``entry``."""
        from libertem.web.analyses import as_2d

        stem = Path(entry.path).stem or "dataset"
        return CodeContext(
            context_expr=self.context_code.expr,
            context_imports=self.context_code.imports,
            filetype=entry.filetype,
            load_kwargs=dict(entry.load_kwargs),
            nav_2d=as_2d(entry.nav_shape),
            sig_2d=as_2d(entry.sig_shape),
            base_name=f"{_safe(stem)}_{plan.label}",
        )

    def broadcast(self, message: dict) -> None:
        """Send a JSON event to every connected tab."""
        for conn in list(self.connections):
            conn.send_message(message)

    def close(self) -> None:
        """Cancel the runs (the Context belongs to whoever created it)."""
        if self.runs is not None:
            self.runs.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
