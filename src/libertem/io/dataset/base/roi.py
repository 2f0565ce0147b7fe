"""Regions of interest of a dataset: boolean masks over its navigation axes.

:class:`RoiHelper` builds masks by indexing, ``ds.roi[...]``-style. The other
names LiberTEM has in this module (``roi_for_partition``, ``count_nonzero``, ...)
are defined in :mod:`libertem.common.roi` and :mod:`libertem.common.math`, and
re-exported here on access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from libertem.common.lazy import lazy_names

if TYPE_CHECKING:
    from libertem.io.dataset.base.dataset import DataSet


class RoiHelper:
    """Builds ROIs for a dataset: ``helper[key]`` is a boolean navigation mask.

    The mask has the dataset's navigation shape and is ``True`` exactly at
    ``mask[key]``, for any numpy basic index ``key`` (integers, slices,
    ``Ellipsis``). Every subscription returns a new array.

    Parameters
    ----------
    ds
        The dataset (anything with a ``shape`` that has a ``nav`` part).

    Examples
    --------
    >>> from libertem.common import Shape
    >>> class DS:
    ...     shape = Shape((3, 4, 8, 8), sig_dims=2)
    >>> RoiHelper(DS())[1, 1:3].astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """

    def __init__(self, ds: DataSet):
        self._ds = ds

    def __getitem__(self, key) -> np.ndarray:
        """A new boolean navigation mask, ``True`` exactly at ``mask[key]``."""
        mask = np.zeros(tuple(self._ds.shape.nav), dtype=bool)
        mask[key] = True
        return mask

    def __repr__(self) -> str:
        return f"<RoiHelper nav_shape={tuple(self._ds.shape.nav)}>"


# LiberTEM 0.16 also has these names in this module; they live elsewhere here
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "Slice": "libertem.common.slice",
        "count_nonzero": "libertem.common.math",
        "ndenumerate": "libertem.common.math",
        "roi_for_partition": "libertem.common.roi",
    },
)

__all__ = ["RoiHelper"]
