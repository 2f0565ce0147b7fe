"""Run user-defined functions (UDFs) over large pixelated-detector datasets.

The entry point is :class:`libertem.api.Context`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``revision``: the git commit of the source tree, or None (asks git on first access)
    if name == "revision":
        from libertem.common.revision import get_revision

        return get_revision()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
