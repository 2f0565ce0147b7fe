"""User-defined functions: the interface and the built-in UDFs' base names."""

from libertem.common.exceptions import UDFRunCancelled
from libertem.udf.auto import AutoUDF
from libertem.udf.base import (
    UDF,
    UDFFrameMixin,
    UDFMergeAllMixin,
    UDFPartitionMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    UDFTileMixin,
    check_cast,
)
from libertem.udf.data import UDFData
from libertem.udf.meta import UDFMeta

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
