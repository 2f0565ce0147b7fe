"""Public exceptions: bad datasets, bad UDFs, cancelled runs, bad executor specs."""

from libertem.common.exceptions import (
    DataSetException,
    ExecutorSpecException,
    UDFException,
    UDFRunCancelled,
)

__all__ = ["DataSetException", "ExecutorSpecException", "UDFException", "UDFRunCancelled"]
