"""Named row loaders for published formats `datasets` has no builder for.

Each is registered with `@register_loader(name)` and chosen by a spec's
`source.format`; it gets the resolved files (local paths or URLs) and the
spec's `source.loader_options`, and returns flat rows. Imported by
`pytest_jallm.data`.

Every problem with a row is reported as a DataError naming the file, the row
and the field. Common options, applied after a loader has read all files:

* ``shuffle_seed``: shuffle the rows with ``random.Random(seed)`` -- the same
  permutation as llm-jp-eval's ``random.seed(seed); random.shuffle(rows)``.
* ``skip: N``: drop the first N rows (after shuffling, before ``slice``), as llm-jp-eval
  keeps a fixed head of a shuffled list for train (JCoLA out-of-domain: 32 rows).
* ``slice: [start, end]``: keep ``rows[int(n*start):int(n*end)]``, as
  llm-jp-eval cuts its shuffled lists into train/dev/test (e.g. ``[0.9, 1.0]``).
* ``copy: {new: old}``: add column ``new`` holding ``old``'s value (e.g. ``source`` for the
  source-language text that comet_wmt22 reads from an item's context).
* ``max_chars: {column: N}``: drop rows whose text in ``column`` is longer than N characters
  (japanese-lm-med-harness skips questions over 1024 characters in Japanese, 2048 in English).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..registry import Registry

Rows = list[dict[str, Any]]

# Named loaders for formats `datasets` has no builder for (nested JSON, XML).
# A loader takes resolved local files and its options and returns flat rows.
RowLoader = Callable[[Sequence[str], Mapping[str, Any]], list[dict[str, Any]]]


def _check_loader(name: str, obj: Any) -> RowLoader:
    if not callable(obj):
        raise TypeError(f"expected a loader function (files, options) -> rows, got {type(obj).__name__}")
    return obj


# The built-in loaders register through the decorator, as an installed extension would: their
# modules are imported at the first lookup, then the `pytest_jallm.loaders` entry points.
LOADERS: Registry[RowLoader] = Registry("loader", "pytest_jallm.loaders", _check_loader, builtin_modules=(
    "pytest_jallm.loaders.tables", "pytest_jallm.loaders.llm_jp_eval", "pytest_jallm.loaders.medical",
    "pytest_jallm.loaders.wac", "pytest_jallm.chatjudge.loaders", "pytest_jallm.ifeval.benchmark",
))


def register_loader(name: str) -> Callable[[RowLoader], RowLoader]:
    """Decorator: the function becomes the `format: name` a spec's source may use."""
    return LOADERS.register(name)
