"""A UDF that reads the data and does nothing with it: for measuring I/O."""

from __future__ import annotations

from libertem.udf.classes import UDF

__all__ = ["NoOpUDF"]


class NoOpUDF(UDF):
    """Read every tile and do nothing: a run with it measures reading and the engine.

    Parameters
    ----------
    preferred_input_dtype
        Input dtype to ask for; the default ``bool`` (:attr:`UDF.USE_NATIVE_DTYPE`)
        reads the data in its native dtype, without conversion.
    """

    def __init__(self, preferred_input_dtype=bool) -> None:
        super().__init__(preferred_input_dtype=preferred_input_dtype)

    def get_result_buffers(self):
        return {}

    def get_preferred_input_dtype(self):
        return self.params.preferred_input_dtype

    def process_tile(self, tile):
        """Nothing: the tile was read, that is all."""
