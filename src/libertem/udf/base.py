"""LiberTEM's module path of the UDF interface.

The base classes live in :mod:`libertem.udf.classes`; this module is the documented
home of them, of many names of the engine (``UDFRunner``, ``UDFTask``,
``UDFParams``, ...) and of names of the dataset, executor and corrections layers
that UDF code imports from here. Names of modules that import this one, or of
higher layers, are looked up where they live on first access.
"""

from typing import TYPE_CHECKING

from libertem.common.buffers import (
    ArrayWithMask,
    AuxBufferWrapper,
    BufferWrapper,
    PlaceholderBufferWrapper,
)
from libertem.common.exceptions import UDFException, UDFRunCancelled
from libertem.common.lazy import lazy_names
from libertem.common.math import check_cast, count_nonzero, prod
from libertem.common.progress import (
    PartitionProgressTracker,
    PartitionTrackerNoOp,
    ProgressManager,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.common.udf import CUDA, TilingPreferences, UDFMethod, UDFProtocol
from libertem.udf.classes import UDF, UDFBase, overrides, refuse_result_only
from libertem.udf.data import MergeAttrMapping, UDFData, UDFKwargsWrapper
from libertem.udf.meta import UDFMeta
from libertem.udf.mixins import (
    UDFFrameMixin,
    UDFMergeAllMixin,
    UDFPartitionMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    UDFTileMixin,
    find_method,
)
from libertem.warnings import UseDiscouragedWarning

# Names documented under libertem.udf.base that live elsewhere, looked up on first
# access (some modules import this one, and some are written by other layers).
_ELSEWHERE: dict[str, str] = {
    "UDFRunner": "libertem.udf.runner",
    "UDFResults": "libertem.udf.results",
    "UDFResultsLazy": "libertem.udf.results",
    "ResultsForDataSet": "libertem.udf.results",
    "UDFParams": "libertem.udf.partition_runner",
    "UDFTask": "libertem.udf.task",
    "UDFPartRunner": "libertem.udf.partition_runner",
    "TileConverter": "libertem.udf.partition_runner",
    "get_resources_for_backends": "libertem.udf.backends",
    "NoOpUDF": "libertem.udf.noop",
    "CorrectionSet": "libertem.corrections",
    "DataSet": "libertem.io.dataset.base",
    "DataSetMeta": "libertem.io.dataset.base",
    "DataTile": "libertem.io.dataset.base",
    "Partition": "libertem.io.dataset.base",
    "Negotiator": "libertem.udf.negotiation",
    "TilingScheme": "libertem.io.dataset.base",
    "get_coordinates": "libertem.io.dataset.base",
    "roi_for_partition": "libertem.common.roi",
    "Environment": "libertem.common.executor",
    "GenericTask": "libertem.common.executor",
    "GenericTaskProtocol": "libertem.common.executor",
    "JobCancelledError": "libertem.common.executor",
    "JobExecutor": "libertem.common.executor",
    "NoopCommHandler": "libertem.common.executor",
    "TaskCommHandler": "libertem.common.executor",
    "TaskProtocol": "libertem.common.executor",
    "InlineJobExecutor": "libertem.executor.inline",
    "attach_to_parent": "libertem.common.tracing",
    "TracedThreadPoolExecutor": "libertem.common.tracing",
    "async_generator_eager": "libertem.common.async_utils",
}

__getattr__, __dir__ = lazy_names(__name__, _ELSEWHERE)

__all__ = [
    "ArrayWithMask",
    "AuxBufferWrapper",
    "BufferWrapper",
    "CUDA",
    "MergeAttrMapping",
    "PartitionProgressTracker",
    "PartitionTrackerNoOp",
    "PlaceholderBufferWrapper",
    "ProgressManager",
    "Shape",
    "Slice",
    "TYPE_CHECKING",
    "TilingPreferences",
    "UDF",
    "UDFBase",
    "UDFData",
    "UDFException",
    "UDFFrameMixin",
    "UDFKwargsWrapper",
    "UDFMergeAllMixin",
    "UDFMeta",
    "UDFMethod",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFProtocol",
    "UDFRunCancelled",
    "UDFTileMixin",
    "UseDiscouragedWarning",
    "check_cast",
    "count_nonzero",
    "find_method",
    "overrides",
    "prod",
    "refuse_result_only",
]
