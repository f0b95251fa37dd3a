"""Real models' recorded outputs through the gate: one model against another's accepted baseline.

M-IFEval: the shipped spec, each model's recorded responses served by `--jallm-backend replay`,
the data from ../shared/data/m-ifeval. The reference evaluator's own per-prompt results
(`evaluations/.../eval_results_{strict,loose}.jsonl`) say which prompts each model followed: the
expected figures, flips, McNemar p and verdict are computed here from them, independently of
the plugin, and each run must agree. Japanese MT-Bench: the shipped spec with `judge.turns: 1`
(every recorded judgment is of turn 1), the answers and the recorded GPT-4 judgments both
replayed; the expected means (show_result's), per-question scores, flips and the exact sign-flip
p are computed here from `model_judgment/gpt-4_single.jsonl`.

Each case is a row of the table in docs/real-outputs.md, and the row must say what the run said.
Skipped with a reason when ../shared/data is absent; the last test runs on the shipped slice.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_jallm.ifeval import reference_figures
from real_slices import SLICES

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
IF_DIR = SHARED / "m-ifeval"
MT_DIR = SHARED / "japanese-mt-bench" / "japanese_mt_bench"
JUDGMENTS = "model_judgment/gpt-4_single.jsonl"
DOC = ROOT / "docs" / "real-outputs.md"
MAX_DROP, ALPHA = 2.0, 0.05  # the gate's defaults: no thresholds file is given

needs_m_ifeval = pytest.mark.skipif(not (IF_DIR / "evaluations").is_dir(), reason=(
    f"M-IFEval's recorded responses and reference results not found at {IF_DIR} (see shared/data/README.md)"))
needs_mt_bench = pytest.mark.skipif(not (MT_DIR / JUDGMENTS).is_file(), reason=(
    f"Japanese MT-Bench's recorded answers and GPT-4 judgments not found at {MT_DIR} (see shared/data/README.md)"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _record(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    (bench,) = json.loads((pytester.path / name).read_text(encoding="utf-8"))["benchmarks"]
    return bench


def _spec_copy(pytester: pytest.Pytester, raw: dict[str, Any], name: str) -> Path:
    """A spec inside the test's directory, so that the run's root (and every relative path) is there."""
    path = pytester.path / "benchmarks" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _gate_options(pytester: pytest.Pytester, baseline: str, out: str) -> list[str]:
    return ["-p", "no:cacheprovider", "--jallm-thresholds-dir", str(pytester.path / "thresholds"), "--jallm-baseline",
            baseline, "--jallm-cache", str(pytester.path / "cache.sqlite"), "--jallm-results-json", str(pytester.path / out)]


def _baseline_items(pytester: pytest.Pytester, baseline: str, benchmark: str) -> dict[str, float]:
    rows = _jsonl(pytester.path / "thresholds" / baseline / f"{benchmark}.baseline.jsonl")
    return {r["id"]: r["score"] for r in rows[2:]}


def mcnemar_p(losses: int, gains: int) -> float:
    """P(at least `losses` losses among the flips | each flip a fair coin), exactly."""
    n = losses + gains
    return sum(math.comb(n, k) for k in range(losses, n + 1)) / 2**n


def sign_flip_p(diffs: list[int]) -> tuple[float, float]:
    """The exact one-sided sign-flip p-values of integer differences (current - baseline), by
    counting every sign pattern: (p worse, p better)."""
    weights = [abs(d) for d in diffs if d]
    ways = {0: 1}  # total weight of the positive signs -> number of patterns
    for w in weights:
        step: dict[int, int] = defaultdict(int)
        for total, count in ways.items():
            step[total] += count
            step[total + w] += count
        ways = step
    gained = sum(d for d in diffs if d > 0)
    patterns = 2 ** len(weights)
    return (sum(c for t, c in ways.items() if t <= gained) / patterns,
            sum(c for t, c in ways.items() if t >= gained) / patterns)


def expected_verdict(drop: float, p_worse: float, p_better: float) -> str:
    """The gate's rule (README, "Thresholds and baselines"), with a family of one paired test."""
    if drop > MAX_DROP and p_worse < ALPHA:
        return "regressed"
    if -drop > MAX_DROP and p_better < ALPHA:
        return "improved"
    return "pass"


def doc_row(benchmark: str, pair: str) -> list[str]:
    """The cells of the docs table's row for this benchmark and pair."""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] == f"`{benchmark}`" and cells[1] == pair:
            return cells
    raise AssertionError(f"{DOC.name} has no row for {benchmark}, {pair}")


def table_cells(record: dict[str, Any]) -> list[str]:
    """What the docs row shows of a run: baseline, score, n paired, flips −/+, p and p adj (of a drop /
    of a rise), verdict."""
    gate = record["gate"]
    paired, family = gate["paired"], gate["family"]
    return [f"{record['baseline']:.2f}", f"{record['score']:.2f}", str(paired["n_paired"]),
            f"{record['flipped_worse']}/{record['flipped_better']}", f"{paired['p_value']:.2g} / {paired['p_better']:.2g}",
            f"{family['p_adjusted']:.2g} / {family['p_better_adjusted']:.2g}", record["verdict"]]


# --- M-IFEval ----------------------------------------------------------------------------------

IF_SPEC = ROOT / "benchmarks" / "m_ifeval_ja.yaml"
IF_METRICS = ("ifeval_prompt_strict", "ifeval_inst_strict", "ifeval_prompt_loose", "ifeval_inst_loose")
QWEN = "Qwen__Qwen2.5-{}-Instruct-GPTQ-Int4"


def _short(model: str) -> str:
    return model.split("__")[-1].replace("-Instruct-GPTQ-Int4", "")


def _responses(model: str) -> Path:
    return IF_DIR / "data" / f"ja_input_response_data_{model}.jsonl"


def _if_reference(model: str, mode: str) -> dict[str, dict[str, Any]]:
    """The reference evaluator's recorded result of each prompt, by the input's key."""
    keys = {r["prompt"]: str(r["key"]) for r in _jsonl(IF_DIR / "data" / "ja_input_data.jsonl")}
    rows = _jsonl(IF_DIR / "evaluations" / f"ja_input_response_data_{model}" / f"eval_results_{mode}.jsonl")
    return {keys[r["prompt"]]: r for r in rows}


def _if_reference_figures(model: str) -> dict[str, float]:
    """print_report's four figures of the recorded results, x100."""
    out = {}
    for mode in ("strict", "loose"):
        verdicts = [r["follow_instruction_list"] for r in _if_reference(model, mode).values()]
        out[f"ifeval_prompt_{mode}"] = 100 * sum(all(v) for v in verdicts) / len(verdicts)
        out[f"ifeval_inst_{mode}"] = 100 * sum(sum(v) for v in verdicts) / sum(len(v) for v in verdicts)
    return out


def _if_run(pytester: pytest.Pytester, model: str, baseline: str, out: str, *more: str) -> pytest.RunResult:
    spec = _spec_copy(pytester, yaml.safe_load(IF_SPEC.read_text(encoding="utf-8")), IF_SPEC.name)  # as shipped
    return pytester.runpytest(str(spec), "--jallm-backend", "replay", "--jallm-chat", "--model", str(_responses(model)),
                              "--jallm-data-dir", str(SHARED), *_gate_options(pytester, baseline, out), *more)


def _check_if_figures(record: dict[str, Any], model: str) -> None:
    """The run's four figures are the reference's recorded ones and reference_figures' (0.01 points)."""
    recorded = _if_reference_figures(model)
    ours = reference_figures(_responses(model), IF_DIR / "data" / "ja_input_data.jsonl").percent()
    for metric in IF_METRICS:
        figure = record["extra"]["scores"][metric]
        assert figure == pytest.approx(recorded[metric], abs=0.01), (model, metric)
        assert figure == pytest.approx(ours[metric.removeprefix("ifeval_")], abs=0.01), (model, metric)


IF_CASES = [
    # (baseline model, current model, verdict): a smaller sibling, the model itself, a close sibling,
    # and two close models of one vendor
    pytest.param(QWEN.format("14B"), QWEN.format("3B"), "regressed", id="qwen14b-qwen3b"),
    pytest.param(QWEN.format("14B"), QWEN.format("14B"), "pass", id="qwen14b-itself"),
    pytest.param(QWEN.format("14B"), QWEN.format("7B"), "pass", id="qwen14b-qwen7b"),
    pytest.param("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "pass", id="gpt4o-gpt4omini"),
]


@pytest.mark.slow
@needs_m_ifeval
@pytest.mark.parametrize(("base_model", "model", "verdict"), IF_CASES)
def test_m_ifeval_gate_agrees_with_the_reference_per_prompt_results(pytester: pytest.Pytester, base_model: str,
                                                                    model: str, verdict: str) -> None:
    accepted = _if_run(pytester, base_model, "base", "accepted.json", "--jallm-update-baseline")
    accepted.assert_outcomes(passed=1)
    base_record = _record(pytester, "accepted.json")
    assert base_record["verdict"] == "accepted"
    _check_if_figures(base_record, base_model)
    base_ref, ref = _if_reference(base_model, "strict"), _if_reference(model, "strict")
    assert _baseline_items(pytester, "base", "m_ifeval_ja") == {k: float(r["follow_all_instructions"])
                                                                for k, r in base_ref.items()}

    result = _if_run(pytester, model, "base", "current.json")
    record = _record(pytester, "current.json")
    _check_if_figures(record, model)
    # the paired statistics, from the reference's per-prompt verdicts of the two models
    worse = sorted((k for k in ref if base_ref[k]["follow_all_instructions"] and not ref[k]["follow_all_instructions"]), key=int)
    better = [k for k in ref if ref[k]["follow_all_instructions"] and not base_ref[k]["follow_all_instructions"]]
    paired = record["gate"]["paired"]
    assert (paired["test"], paired["n_paired"], paired["losses"], paired["gains"]) == ("mcnemar-exact", 172, len(worse), len(better))
    assert (record["flipped_worse"], record["flipped_better"]) == (len(worse), len(better))
    assert record["p_value"] == pytest.approx(mcnemar_p(len(worse), len(better)), rel=1e-12)
    assert record["p_adjusted"] == record["p_value"]  # one benchmark, one paired test: Holm over a family of one
    drop = 100 * (len(worse) - len(better)) / 172
    assert record["baseline"] - record["score"] == pytest.approx(drop, abs=1e-3)
    assert record["verdict"] == verdict == expected_verdict(drop, record["p_value"], mcnemar_p(len(better), len(worse)))
    result.assert_outcomes(**({"failed": 1} if verdict == "regressed" else {"passed": 1}))
    # every flipped-worse prompt, and why: the instructions the reference says the model did not follow
    flips = record["gate"]["flips"]
    assert [f["id"] for f in flips] == worse
    for flip in flips:
        failed = [i for i, ok in zip(ref[flip["id"]]["instruction_id_list"], ref[flip["id"]]["follow_instruction_list"],
                                     strict=True) if not ok]
        assert flip["why"] == f"strict: {len(failed)} of {len(ref[flip['id']]['instruction_id_list'])} not followed: " \
                              f"{', '.join(failed)}", flip["id"]
    if verdict == "regressed":
        result.stdout.fnmatch_lines([f"*regression vs baseline: {record['baseline']:.2f} -> {record['score']:.2f}*"
                                     f"{len(worse)} flipped worse: {', '.join(worse[:3])}*"])
    # the current run's own per-prompt scores, as a baseline accepted from it holds them
    _if_run(pytester, model, "current", "again.json", "--jallm-update-baseline").assert_outcomes(passed=1)
    assert _baseline_items(pytester, "current", "m_ifeval_ja") == {k: float(r["follow_all_instructions"])
                                                                   for k, r in ref.items()}
    assert doc_row("m_ifeval_ja", f"{_short(base_model)} → {_short(model)}")[2:] == [*table_cells(record), "yes"]


# --- Japanese MT-Bench ----------------------------------------------------------------------------

MT_SPEC = ROOT / "benchmarks" / "japanese_mt_bench.yaml"


def _mt_turn1_spec(pytester: pytest.Pytester, **changes: Any) -> Path:
    """The shipped spec, answering and judging turn 1 only (as FastChat's recorded judgments are)."""
    raw = yaml.safe_load(MT_SPEC.read_text(encoding="utf-8"))
    raw["judge"]["turns"] = 1
    raw["judge"].update(changes)
    return _spec_copy(pytester, raw, MT_SPEC.name)


def _recorded_scores(model: str) -> dict[str, list[int]]:
    """Each question's recorded turn-1 GPT-4 scores for the model (more than one where FastChat re-ran it)."""
    scores: dict[str, list[int]] = defaultdict(list)
    for j in _jsonl(MT_DIR / JUDGMENTS):
        if j["model"] == model and j["turn"] == 1 and j["score"] != -1:
            scores[str(j["question_id"])].append(j["score"])
    return scores


def _mt_run(pytester: pytest.Pytester, spec: Path, model: str, baseline: str, out: str, *more: str,
            data: Path = SHARED, answers: Path = MT_DIR) -> pytest.RunResult:
    return pytester.runpytest(
        str(spec), "--jallm-backend", "replay", "--model", str(answers / "model_answer" / f"{model}.jsonl"),
        "--jallm-replay-benchmark", "japanese_mt_bench", "--jallm-judge-backend", "replay",
        "--jallm-judge-model", str(answers / JUDGMENTS), "--jallm-judge-replay-judged-model", model,
        "--jallm-data-dir", str(data), *_gate_options(pytester, baseline, out), *more)


def _check_mt_run(record: dict[str, Any], model: str) -> dict[str, float]:
    """The run's FastChat figures are show_result's over the recorded judgments it was served;
    returns the per-item scores it must have had."""
    recorded = _recorded_scores(model)
    single = {q: s[0] for q, s in recorded.items() if len(s) == 1}  # a question judged twice is not served
    judged = record["extra"]["judged"]
    mean = sum(single.values()) / len(single)  # show_result: the mean of the model's turn-1 scores
    assert judged["average"] == pytest.approx(mean, abs=1e-12) and judged["turns"] == {"1": pytest.approx(mean, abs=1e-12)}
    assert record["score"] == pytest.approx(10 * mean, abs=1e-4) and record["n"] == judged["scored"] == len(single)
    twice = sorted(q for q, s in recorded.items() if len(s) > 1)
    assert sorted(judged["unscorable"]) == [f"{q}-turn1" for q in twice]
    assert all("2 different recorded outputs" in why for why in judged["unscorable"].values())
    return {f"{q}-turn1": s / 10 for q, s in single.items()}


MT_CASES = [
    # (baseline checkpoint, current checkpoint, verdict): three jslma-7b-ja-orca checkpoints
    pytest.param("jslma-7b-ja-orca-25k-20ep", "jslma-7b-ja-orca-6k-3ep", "regressed", id="25k-6k"),
    pytest.param("jslma-7b-ja-orca-6k-3ep", "jslma-7b-ja-orca-25k-20ep", "improved", id="6k-25k"),
    pytest.param("jslma-7b-ja-orca-25k-20ep", "jslma-7b-ja-orca-25k-20ep", "pass", id="25k-itself"),
    pytest.param("jslma-7b-ja-orca-25k-20ep", "jslma-7b-ja-orca-11k-50ep", "pass", id="25k-11k"),
]


@pytest.mark.slow
@needs_mt_bench
@pytest.mark.parametrize(("base_model", "model", "verdict"), MT_CASES)
def test_mt_bench_gate_agrees_with_the_recorded_judgments(pytester: pytest.Pytester, base_model: str, model: str,
                                                           verdict: str) -> None:
    spec = _mt_turn1_spec(pytester)
    accepted = _mt_run(pytester, spec, base_model, "base", "accepted.json", "--jallm-update-baseline")
    accepted.assert_outcomes(passed=1)
    base_record = _record(pytester, "accepted.json")
    base_items = _check_mt_run(base_record, base_model)
    assert base_record["verdict"] == "accepted"
    assert _baseline_items(pytester, "base", "japanese_mt_bench") == pytest.approx(base_items, abs=1e-6)

    result = _mt_run(pytester, spec, model, "base", "current.json")
    record = _record(pytester, "current.json")
    items = _check_mt_run(record, model)
    # the recorded prompts were rendered from older files than the spec's: every judgment is served by
    # question and turn, and the run says so
    judge_calls = record["run"]["judge"]
    if judge_calls["generated"]:  # (a re-run of the baseline's model finds every judgment in the cache)
        result.stdout.fnmatch_lines([f"*replay backend: {record['n']} of {judge_calls['generated']} outputs are FastChat "
                                     "judgments matched by question id and turn*"])
    paired_ids = [i for i in _baseline_items(pytester, "base", "japanese_mt_bench") if i in items]  # in file order
    diffs = [round(10 * (items[i] - base_items[i])) for i in paired_ids]  # whole rating points
    worse = [i for i, d in zip(paired_ids, diffs, strict=True) if d < 0]
    better = [i for i, d in zip(paired_ids, diffs, strict=True) if d > 0]
    p_worse, p_better = sign_flip_p(diffs)
    paired = record["gate"]["paired"]
    assert (paired["test"], paired["n_paired"]) == ("sign-flip-exact", len(paired_ids))
    assert (record["flipped_worse"], record["flipped_better"]) == (len(worse), len(better))
    assert [f["id"] for f in record["gate"]["flips"]] == worse
    assert record["p_value"] == pytest.approx(p_worse, rel=1e-6) and paired["p_better"] == pytest.approx(p_better, rel=1e-6)
    assert record["p_adjusted"] == record["p_value"]
    drop = 100 * sum(base_items[i] - items[i] for i in paired_ids) / len(paired_ids)
    assert record["baseline"] - record["score"] == pytest.approx(drop, abs=1e-3)
    assert record["verdict"] == verdict == expected_verdict(drop, p_worse, p_better)
    result.assert_outcomes(**({"failed": 1} if verdict == "regressed" else {"passed": 1}))
    # the current run's own per-question scores, as a baseline accepted from it holds them
    _mt_run(pytester, spec, model, "current", "again.json", "--jallm-update-baseline").assert_outcomes(passed=1)
    assert _baseline_items(pytester, "current", "japanese_mt_bench") == pytest.approx(items, abs=1e-6)
    pair = f"{base_model.removeprefix('jslma-7b-ja-orca-')} → {model.removeprefix('jslma-7b-ja-orca-')}"
    assert doc_row("japanese_mt_bench", f"jslma-7b-ja-orca {pair}")[2:] == [*table_cells(record), "yes"]


def test_the_judge_replays_judgments_by_their_exact_prompt_when_rendered_from_the_files_of_the_day(
        pytester: pytest.Pytester) -> None:
    """On the shipped slice, without ../shared: the spec's judge reads the question, prompt and
    reference files as they were when japanese-stablelm-instruct-alpha-7b was judged
    (tests/fixtures/mt-bench-history), so the plugin renders every recorded judge prompt and the
    replayed judge answers each by its prompt (no judgment served by question id: no warning)."""
    day = ROOT / "tests" / "fixtures" / "mt-bench-history" / "aed16da2f75ba1374ad4f64a8323aa9fed22c6b9"
    model = "japanese-stablelm-instruct-alpha-7b"
    spec = _mt_turn1_spec(pytester, prompts={"path": str(day / "judge_ja_prompts.jsonl"), "format": "jsonl"},
                          reference_answers={"path": str(day / "japanese_mt_bench" / "reference_answer" / "gpt-4.jsonl"),
                                             "format": "fastchat-answers"}, multi_turn_prompts=None)
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    raw["source"] = {"path": str(day / "japanese_mt_bench" / "question.jsonl"), "format": "fastchat-questions"}
    spec = _spec_copy(pytester, raw, spec.name)
    slice_dir = SLICES / "japanese-mt-bench" / "japanese_mt_bench"
    result = _mt_run(pytester, spec, model, "day", "r.json", data=SLICES, answers=slice_dir)
    result.assert_outcomes(passed=1)
    record = _record(pytester, "r.json")
    recorded = {str(j["question_id"]): j["score"] for j in _jsonl(slice_dir / JUDGMENTS) if j["model"] == model}
    assert len(recorded) == record["n"] == record["run"]["judge"]["generated"] == 16  # all asked, none cached
    assert record["extra"]["judged"]["average"] == pytest.approx(sum(recorded.values()) / 16, abs=1e-12)
    assert "matched by question id" not in result.stdout.str()
