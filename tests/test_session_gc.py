"""The session freezes the heap once the model is loaded, so the cyclic collector's full passes
(pytest runs two at session end) skip torch's and the model's objects (docs/performance.md)."""

from __future__ import annotations

import gc

import pytest

from jallm_toy import base_args, write_script, write_suite


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # what a run froze does not stay out of this process's other tests


def test_a_run_freezes_the_heap_after_loading_the_model(pytester: pytest.Pytester, unfrozen) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path)
    collected = pytester.runpytest_inprocess(*base_args(script, "--co"))
    assert collected.ret == 0
    assert gc.get_freeze_count() == 0  # no model loaded, nothing frozen
    result = pytester.runpytest_inprocess(*base_args(script))
    assert result.ret == 0
    assert gc.get_freeze_count() > 0
