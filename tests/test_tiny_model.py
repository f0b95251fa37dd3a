"""The bundled sample benchmarks and the two tiny checkpoints made from them.

`scripts/train_tiny_model.py` writes `samples/data/sample_{mc,nli}` and
`models/tiny-ja-{good,weak}`; these tests pin what the rest of the project
relies on: well-formed, leak-free data, the exact training prompt, a good
checkpoint that scores high, a weak one that visibly regresses, and batched
left-padded generation that agrees with one-by-one generation.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "samples" / "data"
MODELS = ROOT / "models"
SCRIPT = ROOT / "scripts" / "train_tiny_model.py"

NLI_LABELS = {"entailment", "contradiction", "neutral"}


def _load_script():
    spec = importlib.util.spec_from_file_location("train_tiny_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


T = _load_script()


def _rows(task_dir: str, split: str) -> list[dict]:
    with open(DATA / task_dir / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------- data files


@pytest.mark.parametrize("split", ["train", "test"])
def test_mc_rows_are_well_formed(split: str) -> None:
    rows = _rows("sample_mc", split)
    assert (len(rows) >= 300) if split == "train" else (35 <= len(rows) <= 45)
    for r in rows:
        assert set(r) == {"q_id", "question", "choice0", "choice1", "choice2", "choice3", "choice4", "label"}
        assert isinstance(r["q_id"], int) and not isinstance(r["q_id"], bool)
        assert isinstance(r["label"], int) and r["label"] in range(5)
        choices = [r[f"choice{i}"] for i in range(5)]
        assert all(isinstance(c, str) and c for c in choices + [r["question"]])
        assert len(set(choices)) == 5
    assert len({r["q_id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("split", ["train", "test"])
def test_nli_rows_are_well_formed(split: str) -> None:
    rows = _rows("sample_nli", split)
    assert (len(rows) >= 300) if split == "train" else (25 <= len(rows) <= 35)
    for r in rows:
        assert set(r) == {"sentence_pair_id", "sentence1", "sentence2", "label"}
        assert isinstance(r["sentence_pair_id"], str)
        assert r["label"] in NLI_LABELS
        assert r["sentence1"] and r["sentence2"] and r["sentence1"] != r["sentence2"]
    assert len({r["sentence_pair_id"] for r in rows}) == len(rows)
    assert {r["label"] for r in rows} == NLI_LABELS


def test_ids_are_unique_across_splits() -> None:
    for task_dir, key in (("sample_mc", "q_id"), ("sample_nli", "sentence_pair_id")):
        train = {r[key] for r in _rows(task_dir, "train")}
        test = {r[key] for r in _rows(task_dir, "test")}
        assert not train & test, task_dir


def test_no_test_item_appears_verbatim_in_train() -> None:
    def mc_key(r):
        return (r["question"],) + tuple(r[f"choice{i}"] for i in range(5))

    train = {mc_key(r) for r in _rows("sample_mc", "train")}
    assert not [r for r in _rows("sample_mc", "test") if mc_key(r) in train]
    # the prompts the model sees differ too
    train_prompts = {T.training_prompt("mc", r) for r in _rows("sample_mc", "train")}
    assert not [r for r in _rows("sample_mc", "test") if T.training_prompt("mc", r) in train_prompts]

    train = {(r["sentence1"], r["sentence2"]) for r in _rows("sample_nli", "train")}
    assert not [r for r in _rows("sample_nli", "test") if (r["sentence1"], r["sentence2"]) in train]


def test_committed_data_is_what_the_script_generates() -> None:
    data = {"mc": T.make_mc(), "nli": T.make_nli()}
    for task, task_dir in (("mc", "sample_mc"), ("nli", "sample_nli")):
        train, test = data[task]
        assert _rows(task_dir, "train") == train
        assert _rows(task_dir, "test") == test


# ---------------------------------------------------------------- prompt


def test_training_prompt_is_llm_jp_eval_v1_zero_shot() -> None:
    mc_row = {
        "q_id": 1, "question": "りんごは何の一種ですか？",
        "choice0": "野菜", "choice1": "果物", "choice2": "魚", "choice3": "家具", "choice4": "花",
        "label": 1,
    }
    assert T.training_prompt("mc", mc_row) == (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n"
        "\n"
        "### 指示:\n"
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号（例：0）でお答えください。\n"
        "\n"
        "### 入力:\n"
        "質問：りんごは何の一種ですか？\n"
        "選択肢：0.野菜,1.果物,2.魚,3.家具,4.花\n"
        "\n"
        "### 応答:\n"
    )
    nli_row = {"sentence_pair_id": "x", "sentence1": "男性が公園で本を読んでいる。",
               "sentence2": "男性が本を読んでいる。", "label": "entailment"}
    assert T.training_prompt("nli", nli_row) == (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n"
        "\n"
        "### 指示:\n"
        "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
        "それ以外には何も含めないことを厳守してください。\n"
        "\n"
        "制約：\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
        "- そのいずれでもない場合はneutralと出力\n"
        "\n"
        "### 入力:\n"
        "前提：男性が公園で本を読んでいる。\n"
        "仮説：男性が本を読んでいる。\n"
        "\n"
        "### 応答:\n"
    )
    with pytest.raises(ValueError):
        T.training_prompt("qa", nli_row)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoints():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    out = {}
    for name in ("tiny-ja-good", "tiny-ja-weak"):
        d = MODELS / name
        tok = transformers.AutoTokenizer.from_pretrained(d)
        model = transformers.AutoModelForCausalLM.from_pretrained(d)
        model.eval()
        out[name] = (tok, model)
    return out


@pytest.fixture(scope="module")
def test_prompts():
    out = {}
    for task, task_dir in (("mc", "sample_mc"), ("nli", "sample_nli")):
        rows = _rows(task_dir, "test")
        out[task] = ([T.training_prompt(task, r) for r in rows], [T.gold_answer(task, r) for r in rows])
    return out


@pytest.fixture(scope="module")
def answers(checkpoints, test_prompts):
    """{model: {task: (batched answers, one-by-one answers)}}"""
    res = {}
    for name, (tok, model) in checkpoints.items():
        res[name] = {}
        for task, (prompts, _) in test_prompts.items():
            n = T.MAX_NEW_TOKENS[task]
            res[name][task] = (
                T.generate_answers(model, tok, prompts, n, batch_size=64),
                T.generate_answers(model, tok, prompts, n, batch_size=1),
            )
    return res


def _accuracy(got: list[str], gold: list[str]) -> float:
    return sum(g == p for g, p in zip(gold, got, strict=True)) / len(gold)


@pytest.mark.slow
def test_good_checkpoint_scores_high(answers, test_prompts) -> None:
    for task, (_, gold) in test_prompts.items():
        acc = _accuracy(answers["tiny-ja-good"][task][0], gold)
        assert acc >= 0.85, (task, acc)


@pytest.mark.slow
def test_weak_checkpoint_regresses_visibly(answers, test_prompts) -> None:
    gaps = {}
    for task, (_, gold) in test_prompts.items():
        good = _accuracy(answers["tiny-ja-good"][task][0], gold)
        weak = _accuracy(answers["tiny-ja-weak"][task][0], gold)
        assert weak < good, (task, weak, good)
        gaps[task] = good - weak
    assert max(gaps.values()) >= 0.2, gaps


@pytest.mark.slow
def test_batched_left_padded_generation_equals_unbatched(answers) -> None:
    for name, per_task in answers.items():
        for task, (batched, single) in per_task.items():
            assert batched == single, (name, task)


@pytest.mark.slow
def test_answers_are_clean_labels(answers) -> None:
    allowed = {"mc": {str(i) for i in range(5)}, "nli": NLI_LABELS}
    for task in ("mc", "nli"):
        assert set(answers["tiny-ja-good"][task][0]) <= allowed[task]


@pytest.mark.slow
def test_tokenizer_contract(checkpoints, test_prompts) -> None:
    tok, _ = checkpoints["tiny-ja-good"]
    prompt = test_prompts["nli"][0][0]
    assert tok.bos_token is None
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert tok.pad_token_id != tok.eos_token_id
    # no special token is added around the prompt, with or without add_special_tokens
    assert tok(prompt).input_ids == tok(prompt, add_special_tokens=False).input_ids
    assert tok.decode(tok(prompt).input_ids) == prompt  # no normaliser: ：（） survive
    for label in ["0", "1", "2", "3", "4", *sorted(NLI_LABELS)]:
        assert len(tok(label).input_ids) == 1, label
    # the chat template concatenates the message contents and adds nothing
    messages = [{"role": "user", "content": prompt}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == prompt


@pytest.mark.slow
def test_checkpoint_files(checkpoints) -> None:
    for name, (_, model) in checkpoints.items():
        d = MODELS / name
        assert (d / "model.safetensors").stat().st_size <= 5 * 1024 * 1024
        gen = json.loads((d / "generation_config.json").read_text(encoding="utf-8"))
        assert gen.get("do_sample") is False
        assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
        card = (d / "README.md").read_text(encoding="utf-8")
        assert "license: apache-2.0" in card and "Apache-2.0" in card
