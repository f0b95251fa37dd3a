"""The transformers backend: batching must not change greedy outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_jallm.backends import BackendError, backend_factory, resolve_backend_name
from pytest_jallm.backends.base import GenerationRequest, SamplingSettings
from pytest_jallm.backends.hf import HFBackend

sys.path.insert(0, str(Path(__file__).parent))
from servers import make_tiny_ja_model  # noqa: E402

PROMPTS = ["質問：りんごは何ですか？\n答え：", "前提：犬が走る。", "短い", "これはとても長い入力の文章です。" * 3]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_ja_model(tmp_path_factory.mktemp("hfmodel"))


@pytest.mark.slow
def test_batched_left_padded_equals_one_by_one(model_dir: Path) -> None:
    requests = [GenerationRequest(prompt=p, max_new_tokens=6) for p in PROMPTS]
    batched = HFBackend(str(model_dir), batch_size=4, device="cpu")
    single = HFBackend(str(model_dir), batch_size=1, device="cpu")
    seen: dict[int, str] = {}
    out_batched = batched.generate(requests, SamplingSettings(), on_result=lambda i, t: seen.__setitem__(i, t))
    out_single = single.generate(requests, SamplingSettings())
    assert out_batched == out_single
    assert seen == dict(enumerate(out_batched))  # every result reported, by request index
    assert any(out_batched)  # a random model still emits tokens


@pytest.mark.slow
def test_groups_by_max_tokens_and_cuts_at_stop(model_dir: Path) -> None:
    backend = HFBackend(str(model_dir), batch_size=8, device="cpu")
    long = backend.generate([GenerationRequest(prompt=PROMPTS[0], max_new_tokens=8)], SamplingSettings())[0]
    assert long, "needs some output to test stop sequences"
    stop = long[len(long) // 2 :][:1]
    mixed = backend.generate(
        [
            GenerationRequest(prompt=PROMPTS[0], max_new_tokens=8, stop=(stop,)),
            GenerationRequest(prompt=PROMPTS[0], max_new_tokens=1),
        ],
        SamplingSettings(),
    )
    assert stop not in mixed[0] and long.startswith(mixed[0])
    assert long.startswith(mixed[1]) and len(mixed[1]) <= len(long)


@pytest.mark.slow
def test_identity_records_revision_dtype_and_versions(model_dir: Path) -> None:
    ident = HFBackend(str(model_dir), device="cpu").identity()
    assert ident.backend == "hf"
    assert ident.model_revision.startswith("local-sha256:")
    assert "transformers" in ident.backend_version and "torch" in ident.backend_version
    assert ident.settings["dtype"] == "float32"


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-ja-good", "tiny-ja-weak"])
@pytest.mark.parametrize("dtype", ["auto", "float32", "bfloat16"])
def test_peeked_identity_is_the_loaded_identity(model: str, dtype: str) -> None:
    # A cached re-run trusts the peeked identity to pick cache rows without
    # loading the model: it must be exactly what the loaded backend reports.
    path = str(ROOT / "models" / model)
    peeked = HFBackend.peek_identity(path, dtype=dtype, add_special_tokens=False, batch_size=4, device="cpu")
    loaded = HFBackend(path, dtype=dtype, add_special_tokens=False, device="cpu").identity()
    assert peeked == loaded


@pytest.mark.slow
def test_peek_declines_when_the_loaded_dtype_is_not_certain(model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    assert HFBackend.peek_identity("org/not-a-local-dir") is None  # hub ids resolve their revision on load
    assert HFBackend.peek_identity(str(model_dir), trust_remote_code=True) is None
    assert HFBackend.peek_identity(str(model_dir), dtype="half") is None  # an alias: loads as float16
    for change in ({"dtype": None, "torch_dtype": None}, {"quantization_config": {"quant_method": "gptq"}}):
        copy = tmp_path / f"m{len(change)}"
        shutil.copytree(model_dir, copy)
        config = json.loads((copy / "config.json").read_text())
        config.update(change)
        (copy / "config.json").write_text(json.dumps(config))
        assert HFBackend.peek_identity(str(copy)) is None, change
    assert HFBackend.peek_identity(str(model_dir)) is not None


@pytest.mark.slow
def test_chat_request_without_template_is_a_clear_error(model_dir: Path) -> None:
    backend = HFBackend(str(model_dir), device="cpu")
    backend.tokenizer.chat_template = None
    req = GenerationRequest(prompt="x", max_new_tokens=2, messages=({"role": "user", "content": "こんにちは"},))
    with pytest.raises(BackendError, match="no chat template"):
        backend.generate([req], SamplingSettings())


@pytest.mark.slow
def test_missing_model_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="could not load model"):
        HFBackend(str(tmp_path / "nope"), device="cpu")


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    assert resolve_backend_name("auto") == "hf"
    with pytest.raises(BackendError, match=r"pip install 'pytest-jallm\[vllm\]'"):
        backend_factory("vllm")
    assert backend_factory("pytest_jallm.backends.scripted:ScriptedBackend").__name__ == "ScriptedBackend"
    with pytest.raises(BackendError, match="cannot import"):
        backend_factory("pytest_jallm.backends.scripted:Nope")
    with pytest.raises(BackendError, match="expected one of auto"):
        backend_factory("tgi")
