"""Result formats: NPZ (plain and compressed), TIFF, HDF5 and raw bytes.

Each writes the results of an :class:`~libertem.common.analysis.AnalysisResultSet`
that have ``include_in_download`` set, under their keys, as their ``raw_data``.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from libertem.io.writers.results.base import ResultFormat


class NPZResultFormat(ResultFormat):
    """A numpy ``.npz`` archive, one array per result key (``numpy.load`` reads it)."""

    @classmethod
    def format_info(cls):
        return {"id": "NPZ", "description": "NumPy format (.npz)"}

    def get_content_type(self) -> str:
        return "application/octet-stream"

    def get_filename(self) -> str:
        return "results.npz"

    def _arrays(self) -> dict[str, np.ndarray]:
        rs = self._result_set
        return {k: np.asarray(rs[k].raw_data) for k in self.get_result_keys()}

    def serialize_to_buffer(self, buf) -> None:
        np.savez(buf, **self._arrays())


class NPZCompressedResultFormat(NPZResultFormat):
    """Like :class:`NPZResultFormat`, zip-compressed."""

    @classmethod
    def format_info(cls):
        return {"id": "NPZ_COMPRESSED", "description": "NumPy format, compressed (.npz)"}

    def serialize_to_buffer(self, buf) -> None:
        np.savez_compressed(buf, **self._arrays())


class TiffResultFormat(ResultFormat):
    """A multi-page TIFF file, one page per result image (``tifffile`` reads it).

    Complex results become two pages, real and imaginary part. Each page's
    description is the result key (with ``_real``/``_imag`` for complex ones).
    """

    @classmethod
    def format_info(cls):
        return {"id": "TIFF", "description": "TIFF format (.tif)"}

    def get_content_type(self) -> str:
        return "image/tiff"

    def get_filename(self) -> str:
        return "results.tif"

    def get_channel_images(self) -> list[tuple[str, np.ndarray]]:
        """The pages: ``(name, image)`` per result, two for complex results."""
        images = []
        for key in self.get_result_keys():
            data = np.asarray(self._result_set[key].raw_data)
            if np.iscomplexobj(data):
                images.append((f"{key}_real", np.ascontiguousarray(data.real)))
                images.append((f"{key}_imag", np.ascontiguousarray(data.imag)))
            else:
                images.append((key, np.ascontiguousarray(data)))
        return images

    def serialize_to_buffer(self, buf) -> None:
        import tifffile

        with tifffile.TiffWriter(buf) as tif:
            for name, image in self.get_channel_images():
                tif.write(image, description=name, metadata=None)


class HDF5ResultFormat(ResultFormat):
    """An HDF5 file with one dataset per result key; the result's title and
    description are attributes of the dataset."""

    @classmethod
    def format_info(cls):
        return {"id": "HDF5", "description": "HDF5 format (.h5)"}

    def get_content_type(self) -> str:
        return "application/x-hdf5"

    def get_filename(self) -> str:
        return "results.h5"

    def serialize_to_buffer(self, buf) -> None:
        import h5py

        with h5py.File(buf, "w") as f:
            for key in self.get_result_keys():
                result = self._result_set[key]
                dset = f.create_dataset(key, data=np.asarray(result.raw_data))
                dset.attrs["title"] = str(getattr(result, "title", ""))
                dset.attrs["desc"] = str(getattr(result, "desc", ""))


class RawResultFormat(ResultFormat):
    """The raw bytes of each result (C order, native byte order), in a ZIP archive.

    Each result is one member named ``<key>_<dtype>_<shape>.raw``, e.g.
    ``intensity_float32_16x16.raw``, which is all a reader needs to interpret it.
    """

    @classmethod
    def format_info(cls):
        return {"id": "RAW", "description": "Raw binary data, one file per result (.zip)"}

    def get_content_type(self) -> str:
        return "application/zip"

    def get_filename(self) -> str:
        return "results.zip"

    def serialize_to_buffer(self, buf) -> None:
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in self.get_result_keys():
                data = np.ascontiguousarray(self._result_set[key].raw_data)
                data = data.astype(data.dtype.newbyteorder("="), copy=False)
                shape = "x".join(str(s) for s in data.shape) or "scalar"
                zf.writestr(f"{key}_{data.dtype.name}_{shape}.raw", data.tobytes())


def serialize(result_set, format_id: str) -> tuple[bytes, str, str]:
    """``(file bytes, content type, file name)`` of ``result_set`` in format ``format_id``."""
    fmt = ResultFormat.get_format_by_id(format_id)(result_set)
    out = io.BytesIO()
    fmt.serialize_to_buffer(out)
    return out.getvalue(), fmt.get_content_type(), fmt.get_filename()


__all__ = [
    "HDF5ResultFormat",
    "NPZCompressedResultFormat",
    "NPZResultFormat",
    "RawResultFormat",
    "ResultFormat",
    "TiffResultFormat",
    "serialize",
]
