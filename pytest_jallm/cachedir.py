"""Where pytest-jallm keeps what it may recompute: one folder in the user's cache."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pytest-jallm``, else ``~/.cache/pytest-jallm`` (the data cache, the hash memos)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-jallm"
