"""IgakuQA scored as IgakuQA's own evaluation script scores it.

No IgakuQA files are in ../shared/data: these tests use small files written here in the
published format (jsonl with problem_id, problem_text, choices, text_only, answer, points;
`<exam>-<block>_translate.jsonl` beside it for English). The facts below come from reading
jungokasai/IgakuQA @2bc4c3d, scripts/evaluate_main.py: the prediction's letters and the gold
letters are each sorted and compared (so order does not matter, a repeated letter is wrong);
problem 116A71 counts as correct whatever the answer; 112B30 (gold "a or d") accepts a or d.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.answers import normalize
from pytest_jallm.data import LOADERS, load_examples
from pytest_jallm.metrics import get_metric
from pytest_jallm.specfile import load_spec

ROOT = Path(__file__).resolve().parents[1]
CHOICES = ["コルヒチン", "リツキシマブ", "シクロスポリン", "メトトレキサート", "シクロホスファミド"]


def _problem(pid: str, answer: list[str], text_only: bool = True, choices=CHOICES) -> dict:
    return {"problem_id": pid, "problem_text": f"問題{pid}。2つ選べ。", "choices": list(choices),
            "text_only": text_only, "answer": answer, "points": "1"}


def _write_exam(folder: Path, name: str, problems: list[dict]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in problems), encoding="utf-8")
    return str(path)


def _score(metric: str, preds: list[str], rows: list[dict]):
    golds = [normalize("\n".join(r["answer_text"])) for r in rows]
    return get_metric(metric)([normalize(p) for p in preds], golds, rows)


def test_multi_answer_questions_compare_as_sets(tmp_path) -> None:
    rows = LOADERS["igakuqa"]([_write_exam(tmp_path, "116-A.jsonl", [_problem("116A70", ["b", "e"])])], {})
    row = rows[0]
    right_in_order = "リツキシマブ\nシクロホスファミド"
    reversed_order = "シクロホスファミド\nリツキシマブ"
    preds = [right_in_order, reversed_order, "e,b", "b. リツキシマブ\ne. シクロホスファミド", "リツキシマブ",
             "リツキシマブ\nシクロホスファミド\nコルヒチン", "リツキシマブ\nリツキシマブ\nシクロホスファミド"]
    r = _score("choice_set_accuracy", preds, [row] * len(preds))
    # order never matters; one missing, one extra or a repeated answer is wrong (IgakuQA sorts and compares lists)
    assert r.per_item == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    # the old exact_match scored the reversed order 0: that is the bug this metric fixes
    assert _score("exact_match", [reversed_order], [row]).per_item == [0.0]


def test_partial_credit_is_the_f1_of_the_answer_sets(tmp_path) -> None:
    rows = LOADERS["igakuqa"]([_write_exam(tmp_path, "116-A.jsonl", [_problem("116A70", ["b", "e"])])], {})
    preds = ["シクロホスファミド\nリツキシマブ", "リツキシマブ", "リツキシマブ\nコルヒチン", "コルヒチン", "",
             "リツキシマブ\nシクロホスファミド\nコルヒチン"]
    r = _score("choice_set_f1", preds, rows * len(preds))
    # F1 = 2|P∩G| / (|P| + |G|)
    assert r.per_item == pytest.approx([1.0, 2 / 3, 1 / 2, 0.0, 0.0, 4 / 5])


def test_igakuqa_special_cases_from_its_own_script(tmp_path) -> None:
    exam = _write_exam(tmp_path, "116-A.jsonl", [_problem("116A71", ["e"]), _problem("116A72", ["e"])])
    other = _write_exam(tmp_path, "112-B.jsonl", [_problem("112B30", ["a or d"])])
    rows = LOADERS["igakuqa"]([exam, other], {})
    assert [r["id"] for r in rows] == ["116A71", "116A72", "112B30"]
    assert rows[2]["answer_letters"] == ["a"] and rows[2]["accepted_answers"] == [["a"], ["d"]]
    preds = ["コルヒチン", "コルヒチン", "メトトレキサート"]
    # 116A71: every answer is credited; 116A72 (same gold, no special case) is not; 112B30 accepts d
    assert _score("choice_set_accuracy", preds, rows).per_item == [1.0, 0.0, 1.0]
    assert _score("choice_set_f1", preds, rows).per_item == [1.0, 0.0, 1.0]
    assert _score("choice_set_accuracy", ["コルヒチン\nメトトレキサート"], rows[2:]).per_item == [0.0]


def test_gestalt_accuracy_can_score_a_multi_answer_question_correct(tmp_path) -> None:
    rows = LOADERS["igakuqa"]([_write_exam(tmp_path, "116-A.jsonl", [_problem("116A70", ["b", "e"])])], {})
    preds = ["シクロホスファミドです\nリツキシマブ", "リツキシマブ", "リツキシマブ\nコルヒチン"]
    r = _score("gestalt_accuracy", preds, rows * len(preds))
    # each answer line maps to its most similar choice; the set of mapped choices must be the gold set
    assert r.per_item == [1.0, 0.0, 0.0]


def test_choice_set_metrics_need_choices() -> None:
    for name in ("choice_set_accuracy", "choice_set_f1"):
        with pytest.raises(ValueError, match="choices"):
            get_metric(name)(["a"], ["a"])


def test_igakuqa_specs_score_with_the_set_metric(tmp_path) -> None:
    """All four specs load a local copy in the published layout and use the set metric first."""
    folder = tmp_path / "data" / "2022"
    _write_exam(folder, "116-A.jsonl", [_problem("116A70", ["b", "e"]), _problem("116A1", ["c"])])
    translated = [{"problem_id": p, "problem_text_en": f"Q {p}", "choices_en": [c + " (en)" for c in CHOICES]}
                  for p in ("116A70", "116A1")]
    (folder / "116-A_translate.jsonl").write_text("".join(json.dumps(t) + "\n" for t in translated), encoding="utf-8")
    for name in ("igakuqa", "igakuqa_cot", "igakuqa_en", "igakuqa_en_cot"):
        spec = load_spec(ROOT / "benchmarks" / f"{name}.yaml")
        assert spec.metrics[:2] == ["choice_set_accuracy", "choice_set_f1"], name
        local = spec.model_copy(update={"source": spec.source.model_copy(
            update={"url": None, "path": str(tmp_path / "data" / "2022" / "116-A.jsonl")})})
        examples = load_examples(local, tmp_path, None, None)
        assert [ex.id for ex in examples] == ["116A70", "116A1"]
        pred = f"{examples[0].choices[4]}\n{examples[0].choices[1]}"  # both answers, reversed
        r = get_metric("choice_set_accuracy")([normalize(pred)], [normalize(examples[0].gold)], [examples[0].context])
        assert r.per_item == [1.0], name


def _exam_files(root: Path, spec_path: Path) -> list[str]:
    """One two-answer problem per exam block, at every mirror path the spec names, with its
    English translation beside it (IgakuQA's `_translate.jsonl`)."""
    spec = load_spec(spec_path)
    pids = []
    for mirror in spec.source.mirrors():
        block = Path(mirror).stem  # e.g. 116-A
        pid = block.replace("-", "") + "1"
        pids.append(pid)
        _write_exam((root / mirror).parent, Path(mirror).name, [_problem(pid, ["b", "e"])])
        translated = {"problem_id": pid, "problem_text_en": f"Question {pid}", "choices_en": [f"{c} (en)" for c in CHOICES]}
        (root / mirror).with_name(f"{block}_translate.jsonl").write_text(json.dumps(translated, ensure_ascii=False) + "\n",
                                                                       encoding="utf-8")
    return pids


@pytest.mark.parametrize("name, answer", [
    ("igakuqa", "{e}\n{b}"),
    ("igakuqa_cot", "まず考える。\n答え：{e}\n{b}"),
    ("igakuqa_en", "{e} (en)\n{b} (en)"),
    ("igakuqa_en_cot", "Let me think.\nAnswer: {e} (en)\n{b} (en)"),
])
def test_igakuqa_specs_end_to_end_from_a_data_dir(pytester: pytest.Pytester, name: str, answer: str) -> None:
    """Each shipped spec reads its local copy through --jallm-data-dir and scores a two-answer
    response given in the other order as right (exact_match, order-sensitive, does not)."""
    data = pytester.path / "data"
    pids = _exam_files(data, ROOT / "benchmarks" / f"{name}.yaml")
    output = answer.format(b=CHOICES[1], e=CHOICES[4])
    script = pytester.path / "script.json"
    script.write_text(json.dumps({"rules": [], "default": output}, ensure_ascii=False), encoding="utf-8")
    result = pytester.runpytest(str(ROOT / "benchmarks" / f"{name}.yaml"), "--model", str(script),
                                "--jallm-backend", "pytest_jallm.backends.scripted:ScriptedBackend", "--jallm-no-cache",
                                "--jallm-data-dir", str(data), "--jallm-results-json", "r.json",
                                "--jallm-thresholds-dir", str(pytester.path / "none"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    bench = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert bench["n"] == len(pids) == 30
    scores = bench["extra"]["scores"]
    assert scores["choice_set_accuracy"] == scores["choice_set_f1"] == scores["choice_set_points"] == 100.0
    assert scores["gestalt_accuracy"] == 100.0
    assert scores["exact_match"] == 0.0


def test_points_weighted_score_as_igakuqa_reports_it(tmp_path) -> None:
    """IgakuQA's script also reports score/total: each problem's `points` (1 or 3) when right."""
    heavy = {**_problem("112B25", ["b"]), "points": "3"}
    rows = LOADERS["igakuqa"]([_write_exam(tmp_path, "112-B.jsonl", [_problem("112B1", ["b"]), heavy])], {})
    assert [r["points"] for r in rows] == [1, 3]
    right, wrong = CHOICES[1], CHOICES[0]
    assert _score("choice_set_points", [wrong, right], rows).score == pytest.approx(3 / 4)
    assert _score("choice_set_points", [right, wrong], rows).score == pytest.approx(1 / 4)
    bad = {**_problem("112B2", ["b"]), "points": "many"}
    with pytest.raises(Exception, match="points"):
        LOADERS["igakuqa"]([_write_exam(tmp_path / "bad", "112-B.jsonl", [bad])], {})
