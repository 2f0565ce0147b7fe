"""Warning categories of libertem."""


class UseDiscouragedWarning(FutureWarning):
    """A feature is used in a way that works, but that is slow or error-prone.

    For example, dict-style access to result buffers (``self.results['name']``)
    instead of attribute access. Filter it with the standard :mod:`warnings` machinery.
    """


__all__ = ["UseDiscouragedWarning"]
