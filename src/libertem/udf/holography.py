"""Removed in LiberTEM: importing this module raises :class:`ImportError`.

The holography UDFs moved to the LiberTEM-holo project; LiberTEM up to 0.14.1
still contains them.
"""

raise ImportError(
    "The holography implementation is removed. Development continues at "
    "https://github.com/LiberTEM/LiberTEM-holo ; LiberTEM versions up to 0.14.1 "
    "still contain it."
)
