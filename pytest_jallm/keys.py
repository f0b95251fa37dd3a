"""The pytest stash key of a run's benchmark session, in a module of its own: the hooks (plugin.py)
look for a session in every pytest run, while the session (session.py) is imported only by runs that
collect a benchmark or use a jallm option."""

from __future__ import annotations

from typing import Any

import pytest

# Holds a session.JallmSession (not named in the type: session.py imports this module).
SESSION_KEY = pytest.StashKey[Any]()
