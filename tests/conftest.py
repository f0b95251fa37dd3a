"""Shared test setup.

pytester's in-process runs restore `sys.modules` afterwards; C extensions
(pyarrow under `datasets`, torch) cannot be imported twice in one process, so
they are imported once here, before any inline run.
"""

import datasets  # noqa: F401
import numpy.fft  # noqa: F401  (imported lazily by pandas' CSV path)
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import scipy.stats  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401

import os as _os
import tempfile as _tempfile

# Local model revisions are memoised under ~/.cache; tests (and the subprocesses they
# start, which inherit this) keep theirs in a throw-away directory instead.
_os.environ.setdefault("JALLM_REVISION_MEMO", _os.path.join(_tempfile.mkdtemp(prefix="jallm-revmemo-"), "memo.json"))
