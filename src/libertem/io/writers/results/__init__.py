"""Serializing analysis results into downloadable files (NPZ, TIFF, HDF5, raw)."""
