"""Shared test setup.

pytester's in-process runs restore `sys.modules` afterwards, and C extensions
(pyarrow under `datasets`, torch, numpy) cannot be imported twice in one process.
Instead of importing every heavy library before any test (about 9 s, paid even by
`pytest tests -m "not slow"`), installed libraries that an inline run imports stay
loaded, as in any Python process: only modules of this project and of the tests'
temporary directories are reverted. Each library is then imported once, by the
first test that needs it.
"""

import os
import sys
import sysconfig
import tempfile

import _pytest.pytester

# Local model revisions are memoised under ~/.cache; tests (and the subprocesses they
# start, which inherit this) keep theirs in a throw-away directory instead.
os.environ.setdefault("JALLM_REVISION_MEMO", os.path.join(tempfile.mkdtemp(prefix="jallm-revmemo-"), "memo.json"))
# Likewise the data files' hashes (pytest_jallm.filehash).
os.environ.setdefault("JALLM_HASH_MEMO", os.path.join(tempfile.mkdtemp(prefix="jallm-hashmemo-"), "memo.json"))

_LIBRARY_DIRS = tuple(
    {
        os.path.join(path, "")
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (raw := sysconfig.get_path(key))
        for path in (raw, os.path.realpath(raw))
    }
)


_LIBRARY_MODULES: dict[str, bool] = {}  # a module name's answer, once: asked for every module after every inline run


def _is_installed_library(name: str) -> bool:
    """True for the standard library and site-packages, never for this project (even when installed)."""
    known = _LIBRARY_MODULES.get(name)
    if known is not None:
        return known
    if name == "pytest_jallm" or name.startswith("pytest_jallm."):
        return False  # not memoised: cheap, and never a library
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    answer = isinstance(path, str) and path.startswith(_LIBRARY_DIRS)
    if module is not None:  # an installed library stays one for the rest of the process
        _LIBRARY_MODULES[name] = answer
    return answer


_Snapshot = getattr(_pytest.pytester, "SysModulesSnapshot", None)

if _Snapshot is not None:

    class _KeepLibrariesSnapshot(_Snapshot):
        def __init__(self, preserve=None) -> None:
            super().__init__(preserve=lambda name: _is_installed_library(name) or bool(preserve and preserve(name)))

    _pytest.pytester.SysModulesSnapshot = _KeepLibrariesSnapshot
else:  # pytest changed its internals: fall back to importing the heavy libraries up front
    import charset_normalizer  # noqa: F401
    import datasets  # noqa: F401
    import numpy.fft  # noqa: F401  (imported lazily by pandas' CSV path)
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import scipy.io  # noqa: F401
    import scipy.sparse  # noqa: F401
    import scipy.stats  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
