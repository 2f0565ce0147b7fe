"""LiberTEM's module path of tiling schemes and their negotiation.

:class:`TilingScheme` is defined in :mod:`~libertem.io.dataset.base.tiling`,
:class:`Negotiator` in :mod:`~libertem.udf.negotiation`; this module
re-exports them, and the other names LiberTEM has here, on access.
"""

from libertem.common.lazy import lazy_names

_WHERE = {
    "CorrectionSet": "libertem.io.corrections.corrset",
    "Negotiator": "libertem.udf.negotiation",
    "Shape": "libertem.common.shape",
    "Slice": "libertem.common.slice",
    "TYPE_CHECKING": "typing",
    "TilingScheme": "libertem.io.dataset.base.tiling",
    "UDFException": "libertem.common.exceptions",
    "UDFMethod": "libertem.common.udf",
    "UDFProtocol": "libertem.common.udf",
    "prod": "libertem.common.math",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = list(_WHERE)
