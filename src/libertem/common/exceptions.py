"""Exceptions raised by the engine."""


class UDFException(Exception):
    """A UDF is declared or used in a way the engine cannot run."""


class UDFRunCancelled(Exception):
    """A UDF run was cancelled before it finished."""


class ExecutorSpecException(Exception):
    """An executor specification names an unknown executor or resources that are not there."""


class DataSetException(Exception):
    """A dataset cannot be opened or read as described: names the file and the problem."""
