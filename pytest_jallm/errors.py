"""Exceptions shared by the data modules (kept apart so that none of them imports another's internals)."""


class DataError(Exception):
    """Benchmark data is missing or malformed; the message says where."""
