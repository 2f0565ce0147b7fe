"""Warning categories of libertem."""


class UseDiscouragedWarning(RuntimeWarning):
    """A feature is used in a way that works, but that is slow or error-prone.

    For example, a buffer accessed in a way that forces an expensive conversion.
    Filter it with the standard :mod:`warnings` machinery.
    """


__all__ = ["UseDiscouragedWarning"]
