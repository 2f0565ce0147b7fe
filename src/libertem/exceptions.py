"""Public exceptions for datasets."""

from libertem.common.exceptions import DataSetException

__all__ = ["DataSetException"]
