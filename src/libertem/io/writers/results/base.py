"""The interface of result formats, and the registry that finds them by id.

A :class:`ResultFormat` turns an
:class:`~libertem.common.analysis.AnalysisResultSet` into the bytes of one
downloadable file. Every subclass that names an ``"id"`` in its
:meth:`~ResultFormat.format_info` is registered by its metaclass,
:class:`ResultFormatRegistry`, and found with
:meth:`~ResultFormatRegistry.get_format_by_id`.
"""

from __future__ import annotations

from libertem.common.analysis import AnalysisResultSet


class ResultFormatRegistry(type):
    """Metaclass of result formats: registers each format under its id."""

    _formats: dict[str, type[ResultFormat]] = {}

    def __init__(cls, name: str, args: tuple, bases: dict):
        super().__init__(name, args, bases)
        info = cls.format_info()
        if info is not None:
            ResultFormatRegistry._formats[info["id"]] = cls

    def get_available_formats(cls) -> dict[str, dict]:
        """The registered formats: ``{id: format_info()}``."""
        return {k: v.format_info() for k, v in ResultFormatRegistry._formats.items()}

    def get_format_by_id(cls, identifier) -> type[ResultFormat]:
        """The format class registered as ``identifier``.

        Raises
        ------
        KeyError
            If no format has that id (the message lists the known ones).
        """
        try:
            return ResultFormatRegistry._formats[identifier]
        except KeyError:
            known = ", ".join(sorted(ResultFormatRegistry._formats))
            raise KeyError(f"unknown result format {identifier!r}; known: {known}") from None


class ResultFormat(metaclass=ResultFormatRegistry):
    """Serializes the downloadable results of a result set into one file.

    Subclasses define :meth:`format_info` (with an ``"id"``, which registers
    them), :meth:`get_content_type`, :meth:`get_filename` and
    :meth:`serialize_to_buffer`.

    Parameters
    ----------
    result_set
        The results; those with ``include_in_download`` set are written.
    """

    def __init__(self, result_set: AnalysisResultSet):
        self._result_set = result_set

    @classmethod
    def format_info(cls) -> dict | None:
        """``{"id": ..., "description": ...}`` of the format; ``None`` for the base class."""
        return None

    def get_result_keys(self) -> list[str]:
        """Keys of the results to write (those with ``include_in_download``)."""
        return [r.key for r in self._result_set.results if r.include_in_download]

    def get_content_type(self) -> str:
        """MIME type of the file."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_content_type")

    def get_filename(self) -> str:
        """Suggested file name of the download."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_filename")

    def serialize_to_buffer(self, buf) -> None:
        """Write the file into ``buf`` (a writable binary file object)."""
        raise NotImplementedError(f"{type(self).__name__} does not define serialize_to_buffer")


__all__ = ["AnalysisResultSet", "ResultFormat", "ResultFormatRegistry"]
