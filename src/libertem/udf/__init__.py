"""User-defined functions: the interface and the built-in UDFs' base names."""

from libertem.common.exceptions import UDFRunCancelled
from libertem.common.math import check_cast
from libertem.udf.auto import AutoUDF
from libertem.udf.classes import UDF
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta
from libertem.udf.mixins import (
    UDFFrameMixin,
    UDFMergeAllMixin,
    UDFPartitionMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    UDFTileMixin,
)

__all__ = [
    "UDF",
    "AutoUDF",
    "UDFData",
    "UDFMeta",
    "UDFFrameMixin",
    "UDFTileMixin",
    "UDFPartitionMixin",
    "UDFPreprocessMixin",
    "UDFPostprocessMixin",
    "UDFMergeAllMixin",
    "UDFRunCancelled",
    "check_cast",
]
