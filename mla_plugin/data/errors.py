"""Errors raised by the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data.

    Messages name the file, the key and/or the sample concerned and say what is wrong,
    so that a broken feature file is found before training starts.
    """
