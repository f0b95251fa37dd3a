"""Thresholds are human, baselines are machine: the baseline files, their validation, and the
verdicts a hand-edited or partial baseline used to turn into a quiet `pass` (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate_cases import PRODUCED, judge, result_of
from jallm_toy import BENCHMARKS, base_args, write_script, write_suite
from jallm_toy import SCRIPTED as SCRIPTED_BACKEND
from pytest_jallm.baseline import (
    Baseline,
    BaselineError,
    ThresholdError,
    load_threshold_file,
    read_baseline,
    render_baseline,
)

N = 20


def _baseline_file(tmp_path: Path, edit=None) -> Path:
    """A perfect 20-item baseline as the plugin writes it, then edited as a person might."""
    b = Baseline(benchmark="b", metric="exact_match", score=100.0, ooc_rate=0.0, n=N, binary=True, produced_by=PRODUCED,
                 items={f"q{i}": 1.0 for i in range(N)}, predictions={f"q{i}": "1" for i in range(N)})
    lines = render_baseline(b).splitlines()
    header, provenance, items = json.loads(lines[0]), lines[1], [json.loads(x) for x in lines[2:]]
    if edit:
        header, items = edit(header, items)
    path = tmp_path / "b.baseline.jsonl"
    path.write_text("\n".join([json.dumps(header), provenance, *(json.dumps(i) for i in items)]) + "\n", encoding="utf-8")
    return path


def _load(path: Path):
    try:
        return read_baseline(path)
    except BaselineError as e:
        return e


# The model is worse: half the items flip from right to wrong (a -50 point regression).
WORSE = {f"q{i}": (0.0 if i % 2 else 1.0) for i in range(N)}


class _Out:
    """The judgement in the terms these tests assert on."""

    def __init__(self, judgement):
        self.verdict, self.passed = judgement.verdict, judgement.passed
        self.failures, self.warnings = judgement.decision.failures, judgement.decision.warnings
        self.compared = judgement.record.p_value is not None


def _gate(baseline, metric="exact_match", **kw):
    return _Out(judge(result_of(WORSE, metric=metric), baseline, **kw))


def test_an_intact_baseline_catches_the_regression(tmp_path: Path) -> None:
    out = _gate(_load(_baseline_file(tmp_path)))
    assert out.verdict == "regressed" and not out.passed


def test_wrong_verdict_1_a_baseline_keeping_2_of_20_items_is_unpaired_not_pass(tmp_path: Path) -> None:
    def keep_two(h, items):
        return {**h, "n": 2}, items[:2]

    out = _gate(_load(_baseline_file(tmp_path, keep_two)))
    assert out.verdict == "unpaired" and not out.compared
    assert "only 2 of 20 current items (10.0%) pair with the baseline's 2 items (min_paired 90%)" in out.warnings[0]
    # Left at n: 20 it contradicts itself, which is an error.
    out = _gate(_load(_baseline_file(tmp_path, lambda h, items: (h, items[:2]))))
    assert out.verdict == "invalid baseline" and not out.passed
    assert "key 'n' is 20 but the file holds 2 items" in out.failures[0]


def test_wrong_verdict_2_renamed_ids_pair_with_nothing(tmp_path: Path) -> None:
    def rename(h, items):
        return h, [{**i, "id": "x" + i["id"]} for i in items]

    out = _gate(_load(_baseline_file(tmp_path, rename)))
    assert out.verdict == "unpaired" and "only 0 of 20 current items (0.0%)" in out.warnings[0]
    strict = _gate(_load(_baseline_file(tmp_path, rename)), strict=True)
    assert not strict.passed and "--jallm-strict" in strict.failures[0]


def test_wrong_verdict_3_a_nan_item_is_refused(tmp_path: Path) -> None:
    def nan(h, items):
        items[3]["score"] = float("nan")
        return h, items

    path = _baseline_file(tmp_path, nan)
    assert "NaN" in path.read_text(encoding="utf-8")
    out = _gate(_load(path))
    assert out.verdict == "invalid baseline" and not out.passed
    assert f"{path}: line 6: item 'q3': score nan is not a number from 0 to 1" in out.failures[0]


def test_wrong_verdict_4_an_item_score_out_of_range_is_refused(tmp_path: Path) -> None:
    def seven(h, items):
        items[0]["score"] = 7.0
        return {**h, "score": 130.0}, items

    out = _gate(_load(_baseline_file(tmp_path, seven)))
    assert out.verdict == "invalid baseline"
    assert "key 'score': expected a number from 0 to 100, got 130.0" in out.failures[0]


def test_wrong_verdict_5_a_score_that_its_items_contradict_is_refused(tmp_path: Path) -> None:
    def zeros(h, items):
        return h, [{**i, "score": 0.0} for i in items]

    out = _gate(_load(_baseline_file(tmp_path, zeros)))
    assert out.verdict == "invalid baseline" and "key 'score' is 100 but its items average 0.0000" in out.failures[0]


def test_wrong_verdict_6_n_must_count_the_items(tmp_path: Path) -> None:
    out = _gate(_load(_baseline_file(tmp_path, lambda h, items: ({**h, "n": 400}, items))))
    assert out.verdict == "invalid baseline" and "key 'n' is 400 but the file holds 20 items" in out.failures[0]


def test_wrong_verdict_7_a_changed_metric_makes_the_baseline_stale(tmp_path: Path) -> None:
    out = _gate(_load(_baseline_file(tmp_path)), metric="char_f1")
    assert out.verdict == "stale" and not out.compared
    assert "metric changed (exact_match -> char_f1)" in out.warnings[0]


def test_malformed_baseline_line_is_named(tmp_path: Path) -> None:
    path = _baseline_file(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4][:-3]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BaselineError, match=r"b\.baseline\.jsonl: line 5: not valid JSON"):
        read_baseline(path)


def test_binary_metric_items_must_be_zero_or_one(tmp_path: Path) -> None:
    def half(h, items):
        items[0]["score"] = 0.5
        return {**h, "score": 97.5}, items

    with pytest.raises(BaselineError, match="score 0.5 but exact_match scores are 0 or 1"):
        read_baseline(_baseline_file(tmp_path, half))


# --- the thresholds file: strict, human, never rewritten ----------------------------------


def test_threshold_file_refuses_a_duplicate_benchmark_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("benchmarks:\n  jnli: {min_score: 80}\n  jsts: {}\n  jnli: {min_score: 10}\n", encoding="utf-8")
    with pytest.raises(ThresholdError, match=r"m\.yaml: key 'jnli': duplicate key at line 4"):
        load_threshold_file(path)


def test_nan_threshold_says_it_must_be_a_number(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("benchmarks:\n  jnli: {min_score: .nan}\n", encoding="utf-8")
    with pytest.raises(ThresholdError) as e:
        load_threshold_file(path)
    assert "key 'benchmarks.jnli.min_score': must be a number" in str(e.value)
    assert "less than" not in str(e.value)


def test_an_old_baseline_block_in_the_thresholds_file_says_how_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("benchmarks:\n  jnli:\n    min_score: 80\n    baseline: {score: 90}\n", encoding="utf-8")
    with pytest.raises(ThresholdError, match=r"benchmarks\.jnli\.baseline.*--jallm-update-baseline.*m/jnli\.baseline\.jsonl"):
        load_threshold_file(path)


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    write_suite(pytester.path)
    return pytester


HAND_WRITTEN = """\
# Release gate for the toy model. Comments are kept.
defaults:
  max_drop: 2.0   # points
benchmarks:
  toy_mc:
    min_score: 50   # agreed with the team
  toy_typo: {min_score: 99}
"""


def test_update_baseline_writes_machine_files_and_never_the_thresholds_yaml(toy: pytest.Pytester) -> None:
    thresholds = toy.path / "thresholds"
    thresholds.mkdir()
    (thresholds / "model.yaml").write_text(HAND_WRITTEN, encoding="utf-8")
    script = write_script(toy.path)
    first = toy.runpytest(*base_args(script, "--jallm-update-baseline"))
    first.assert_outcomes(passed=3)
    assert (thresholds / "model.yaml").read_text(encoding="utf-8") == HAND_WRITTEN
    assert sorted(p.name for p in (thresholds / "model").glob("*.jsonl")) == [f"{b}.baseline.jsonl" for b in sorted(BENCHMARKS)]
    first.stdout.fnmatch_lines(["pytest-jallm: baselines written: 3 changed, 0 unchanged", "*toy_he.baseline.jsonl (changed)"])
    # The unused entry is reported, like syrupy's unused snapshots.
    first.stdout.fnmatch_lines(["*1 threshold entr(y/ies) or baseline file(s) match no collected benchmark*benchmarks.toy_typo*"])

    # Accepting a changed model rewrites only the files whose content changed; the diff is per item.
    before = (thresholds / "model" / "toy_mc.baseline.jsonl").read_text(encoding="utf-8").splitlines()
    again = toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 1}), "--jallm-update-baseline"))
    again.stdout.fnmatch_lines(["pytest-jallm: baselines written: 1 changed, 2 unchanged", "*toy_he.baseline.jsonl (unchanged)",
                                "*toy_mc.baseline.jsonl (changed)"])
    after = (thresholds / "model" / "toy_mc.baseline.jsonl").read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [json.loads(b)["id"] for _, b in changed[1:]] == ["toy_mc-0"]  # the header's score, then the one flipped item
    assert json.loads(changed[0][1])["score"] == 90.0


def test_a_relative_thresholds_dir_on_the_command_line_is_the_callers_not_the_rootdirs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an ini file pytest takes the common ancestor of the arguments as its rootdir, and
    the values of options it does not know yet count (`--model /abs/model.json`): a replay of a
    file elsewhere made it `/`. `--jallm-thresholds-dir th` is where the caller is, like every
    other path given on the command line; the ini's jallm_thresholds_dir stays the rootdir's."""
    write_suite(pytester.path / "suite")
    (pytester.path / "models").mkdir()
    script = write_script(pytester.path / "models")
    work = pytester.mkdir("work")
    monkeypatch.chdir(work)
    result = pytester.runpytest("../suite/benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED_BACKEND,
                                "--model", script, "--jallm-no-cache", "--jallm-thresholds-dir", "th",
                                "--jallm-baseline", "m", "--jallm-update-baseline")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}"])  # not the directory the run was started in
    assert sorted(p.name for p in (work / "th" / "m").iterdir()) == [f"{b}.baseline.jsonl" for b in sorted(BENCHMARKS)]
    assert not (pytester.path / "th").exists()


def test_a_hand_edited_baseline_fails_the_benchmark_with_file_and_line(toy: pytest.Pytester) -> None:
    script = write_script(toy.path)
    toy.runpytest(*base_args(script, "--jallm-update-baseline")).assert_outcomes(passed=3)
    path = toy.path / "thresholds" / "model" / "toy_mc.baseline.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"score": 1.0', '"score": NaN')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 6})))
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*invalid baseline, not compared: *toy_mc.baseline.jsonl: line 3: item 'toy_mc-0': score nan*"])
    assert any(line.startswith("toy_mc") and line.rstrip().endswith("invalid baseline") for line in result.stdout.lines)


# --- no silent pass -----------------------------------------------------------------------


def test_no_baseline_is_listed_at_the_end_and_strict_fails_it(toy: pytest.Pytester) -> None:
    script = write_script(toy.path)
    lax = toy.runpytest(*base_args(script))
    lax.assert_outcomes(passed=3)
    lax.stdout.fnmatch_lines(["pytest-jallm: WARNING: 3 benchmark(s) not gated by any baseline: toy_he (no baseline), "
                              "toy_mc (no baseline), toy_nli (no baseline)*pass --jallm-strict to fail them"])
    strict = toy.runpytest(*base_args(script, "--jallm-strict"))
    strict.assert_outcomes(failed=3)
    strict.stdout.fnmatch_lines(["*nothing gates this benchmark (--jallm-strict fails a benchmark that no baseline gates)*"])
    toy.makeini("[pytest]\njallm_strict = true\n")
    toy.runpytest(*base_args(script)).assert_outcomes(failed=3)


def test_thresholds_alone_gate_a_benchmark_without_a_baseline(toy: pytest.Pytester) -> None:
    (toy.path / "thresholds").mkdir()
    (toy.path / "thresholds" / "model.yaml").write_text("defaults: {min_score: 50}\n", encoding="utf-8")
    result = toy.runpytest(*base_args(write_script(toy.path), "--jallm-strict"))
    result.assert_outcomes(passed=3)
    assert "not gated" not in result.stdout.str()


# --- the smoke run ------------------------------------------------------------------------


def test_limit_is_a_smoke_run_paired_with_the_full_baseline(toy: pytest.Pytester) -> None:
    script = write_script(toy.path, {"toy_nli": 1})  # toy_nli scores 5/6 in full, 2/3 on its first 3 items
    (toy.path / "thresholds").mkdir()
    (toy.path / "thresholds" / "model.yaml").write_text("defaults: {min_score: 80}\n", encoding="utf-8")
    toy.runpytest(*base_args(script, "--jallm-update-baseline")).assert_outcomes(passed=3)
    smoke = toy.runpytest(*base_args(script, "--jallm-limit", "3", "--jallm-results-json", "smoke.json"))
    smoke.assert_outcomes(passed=3)
    rows = {r["name"]: r for r in json.loads((toy.path / "smoke.json").read_text(encoding="utf-8"))["benchmarks"]}
    assert rows["toy_nli"]["verdict"] == "pass" and rows["toy_nli"]["n"] == 3
    assert rows["toy_nli"]["baseline"] == pytest.approx(200 / 3)  # the baseline over the same 3 items, not over 6
    smoke.stdout.fnmatch_lines(["*score 66.67 is below min_score 80.00 (not enforced on a --jallm-limit smoke run*"])
    enforced = toy.runpytest(*base_args(script, "--jallm-limit", "3", "--jallm-enforce-min-score"))
    enforced.assert_outcomes(passed=2, failed=1)
    # A smoke run still catches a regression on the items it ran.
    worse = toy.runpytest(*base_args(write_script(toy.path, {"toy_he": 6}), "--jallm-limit", "6", "--jallm-family", "none"))
    worse.assert_outcomes(passed=2, failed=1)
    worse.stdout.fnmatch_lines(["*regression vs baseline: 100.00 -> 0.00*on 6 paired items*"])


# --- per-item tests and --lf --------------------------------------------------------------


def test_items_lf_reruns_the_failing_per_item_tests(toy: pytest.Pytester) -> None:
    (toy.path / "thresholds").mkdir()
    (toy.path / "thresholds" / "model.yaml").write_text("defaults: {min_score: 90}\n", encoding="utf-8")
    script = write_script(toy.path, {"toy_mc": 2})
    args = ["benchmarks", "--jallm-backend", "pytest_jallm.backends.scripted:ScriptedBackend", "--model", script, "--jallm-no-cache",
            "--jallm-items", "-p", "cacheprovider"]
    toy.runpytest(*args).assert_outcomes(failed=3, passed=24)
    again = toy.runpytest(*args, "--lf")
    again.assert_outcomes(failed=3)
    again.stdout.fnmatch_lines(["*FAILED benchmarks/toy_mc.yaml::toy_mc[[]toy_mc-0[]]*",
                                "*FAILED benchmarks/toy_mc.yaml::toy_mc[[]toy_mc-1[]]*"])


# --- many benchmarks, one family: the merge step re-corrects over every shard --------------


def test_merge_applies_holm_over_all_shards(toy: pytest.Pytester) -> None:
    from pytest_jallm.__main__ import main as cli

    good = write_script(toy.path)
    toy.runpytest(*base_args(good, "--jallm-update-baseline")).assert_outcomes(passed=3)
    # toy_mc: 5 of 10 flip, p = 1/32. Alone in its shard that is a regression; over the whole
    # run's three benchmarks Holm makes it 3/32 = 0.094, not significant.
    worse = write_script(toy.path, {"toy_mc": 5})
    whole = toy.runpytest(*base_args(worse, "--jallm-results-json", "whole.json"))
    whole.assert_outcomes(passed=3)
    shard_files = []
    for i in (1, 2, 3):
        toy.runpytest(*base_args(worse, "--jallm-shard", f"{i}/3", "--jallm-results-json", f"s{i}.json"))
        shard_files.append(str(toy.path / f"s{i}.json"))
    shard_rows = {b["name"]: b for f in shard_files for b in json.loads(Path(f).read_text())["benchmarks"]}
    assert shard_rows["toy_mc"]["verdict"] == "regressed" and shard_rows["toy_mc"]["outcome"] == "failed"
    assert cli(["merge", *shard_files, "-o", str(toy.path / "merged.json")]) == 0
    merged = {b["name"]: b for b in json.loads((toy.path / "merged.json").read_text())["benchmarks"]}
    whole_rows = {b["name"]: b for b in json.loads((toy.path / "whole.json").read_text())["benchmarks"]}
    for name in BENCHMARKS:
        assert merged[name]["p_adjusted"] == pytest.approx(whole_rows[name]["p_adjusted"])
        assert (merged[name]["verdict"], merged[name]["outcome"]) == (whole_rows[name]["verdict"], whole_rows[name]["outcome"])
    assert merged["toy_mc"]["p_adjusted"] == pytest.approx(3 / 32)


def test_family_correction_can_be_switched_off(toy: pytest.Pytester) -> None:
    good = write_script(toy.path)
    toy.runpytest(*base_args(good, "--jallm-update-baseline")).assert_outcomes(passed=3)
    worse = write_script(toy.path, {"toy_mc": 5})  # 5 of 10 flip: p = 1/32
    holm = toy.runpytest(*base_args(worse))  # x3 = 0.094: not significant across the family
    holm.assert_outcomes(passed=3)
    per_benchmark = toy.runpytest(*base_args(worse, "--jallm-family", "none"))
    per_benchmark.assert_outcomes(passed=2, failed=1)
    holm.stdout.fnmatch_lines(["benchmark*paired*flips −/+*p*p adj*MDD@80%*max_drop", "toy_mc*10*5/0*0.031*0.094*UNDERPOWERED"])


@pytest.mark.slow
def test_the_html_report_lists_every_flipped_item_with_its_answers(toy: pytest.Pytester) -> None:
    toy.runpytest(*base_args(write_script(toy.path), "--jallm-update-baseline")).assert_outcomes(passed=3)
    worse = toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 7}), "--jallm-diff-items", "2",
                                     "--jallm-report-html", "report.html"))
    worse.assert_outcomes(passed=2, failed=1)
    # The failure message shows the first K, with input, gold, the accepted answer and today's.
    worse.stdout.fnmatch_lines(["*first 2 of 7 flipped items (id | input | gold | baseline answer -> answer now):",
                                "*toy_mc-0 | 質問：問題0番 選択肢：0.いぬ,1.ねこ,2.とり | gold '0' | '0' -> '1'",
                                "*toy_mc-1 | *", "*… 5 more (--jallm-diff-items K shows more; the HTML report lists all)"])
    page = (toy.path / "report.html").read_text(encoding="utf-8")
    flips = page[page.index("<table class=\"flips\">"):]
    for i in range(7):
        assert f"<td>toy_mc-{i}</td><td>質問：問題{i}番" in flips
    assert "toy_mc-7" not in flips


def test_hostile_predictions_round_trip_and_an_unchanged_baseline_is_not_rewritten(tmp_path: Path) -> None:
    from pytest_jallm.baseline import MAX_PREDICTION_CHARS, atomic_write_baseline

    preds = {"a": "line\u2028sep\nnew \"quoted\"", "b": "\udcff lone surrogate", "c": "長" * 5000}
    b = Baseline(benchmark="b", metric="exact_match", score=100 / 3, ooc_rate=None, n=3, binary=True, produced_by=PRODUCED,
                 items={"a": 1.0, "b": 0.0, "c": 0.0}, predictions=preds)
    path = tmp_path / "b.baseline.jsonl"
    assert atomic_write_baseline(path, b) is True
    assert len(path.read_text(encoding="utf-8").splitlines()) > 5  # U+2028 splits lines for splitlines() ...
    back = read_baseline(path)  # ... but not for the reader
    assert back is not None and back.items == b.items
    assert back.predictions["a"] == preds["a"] and back.predictions["b"] == "? lone surrogate"
    assert len(back.predictions["c"]) == MAX_PREDICTION_CHARS + 1
    assert atomic_write_baseline(path, b) is False  # same content: the file is not touched
