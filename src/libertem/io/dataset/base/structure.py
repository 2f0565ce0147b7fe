"""How a dataset is partitioned, in serializable form; partitions that can be written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np

from libertem.common.shape import Shape


class PartitionStructure:
    """The partitioning of a dataset: its shape, frame ranges and dtype.

    Parameters
    ----------
    shape
        Shape of the dataset.
    slices
        ``(start, stop)`` flat frame range of each partition, in order.
    dtype
        Dtype of the data.
    """

    SCHEMA_VERSION = 1

    def __init__(self, shape: Shape, slices: Sequence[tuple[int, int]], dtype):
        self.shape = shape
        self.slices = [(int(a), int(b)) for a, b in slices]
        self.dtype = np.dtype(dtype)
        prev = 0
        for a, b in self.slices:
            if a != prev or b < a:
                raise ValueError(f"partition slices must follow each other, got {self.slices}")
            prev = b
        if self.slices and prev != shape.nav.size:
            raise ValueError(f"partition slices cover {prev} of {shape.nav.size} frames")

    @classmethod
    def from_ds(cls, ds) -> PartitionStructure:
        """The structure of dataset ``ds`` (initialized)."""
        slices = [(s.origin[0], s.origin[0] + s.shape[0]) for s, _, _ in ds.get_slices()]
        return cls(ds.shape, slices, ds.dtype)

    def serialize(self) -> dict:
        """A JSON-compatible dict, read by :meth:`from_json`."""
        return {
            "version": self.SCHEMA_VERSION,
            "slices": [list(s) for s in self.slices],
            "shape": list(self.shape),
            "sig_dims": self.shape.sig_dims,
            "dtype": self.dtype.str,
        }

    @classmethod
    def from_json(cls, data: dict) -> PartitionStructure:
        """The structure from its :meth:`serialize` form."""
        if data.get("version") != cls.SCHEMA_VERSION:
            raise ValueError(f"unknown partition structure version {data.get('version')!r}")
        shape = Shape(tuple(data["shape"]), sig_dims=int(data["sig_dims"]))
        return cls(shape, [tuple(s) for s in data["slices"]], data["dtype"])

    def __eq__(self, other) -> bool:
        if not isinstance(other, PartitionStructure):
            return NotImplemented
        return (self.shape, self.slices, self.dtype) == (other.shape, other.slices, other.dtype)

    def __repr__(self) -> str:
        return f"PartitionStructure(shape={tuple(self.shape)}, {len(self.slices)} partitions)"


class WritablePartition:
    """Mixin of partitions whose frames can be written: into the raw file
    :attr:`write_path` (C order, the partition's dtype), e.g. a cache or a result.

    The partition sets ``write_path``; readers of the file are the partition's
    business (a raw layout of it, for example).
    """

    write_path: str | None = None

    @contextlib.contextmanager
    def get_write_handle(self):
        """A context giving a writable array ``(frames, *sig)`` backed by
        :attr:`write_path`; written to disk when the context ends."""
        if not self.write_path:
            raise ValueError(f"{self} has no write_path")
        shape = (self.stop - self.start, *tuple(self.dataset_shape.sig))
        target = np.memmap(self.write_path, dtype=self.dtype, mode="w+", shape=shape)
        try:
            yield target
            target.flush()
        finally:
            del target

    def delete(self) -> None:
        """Remove the written data, if any."""
        if self.write_path and os.path.exists(self.write_path):
            os.remove(self.write_path)
