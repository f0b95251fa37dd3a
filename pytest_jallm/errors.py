"""The one base of the errors pytest-jallm reports about its inputs (files, data, options, backends,
the cache), kept apart so that every module can import it and it imports nothing of the package.

A benchmark test that fails with one shows its message (after its type where ``show_type``), never a
traceback: the message names the file, key, option or request and what was expected.
"""


class JallmError(Exception):
    show_type = True  # "BackendError: …" where the type says what failed; file errors speak for themselves


class DataError(JallmError):
    """Benchmark data is missing or malformed; the message says where."""

    show_type = False
