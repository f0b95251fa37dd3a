"""Prompt-format variants: the grammar's properties, shrinking, the search and the plugin item."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_jallm.backends.base import BackendIdentity
from pytest_jallm.data import Example
from pytest_jallm.evaluation import Evaluation, RunSettings
from pytest_jallm.prompt import render, render_messages, render_prompt, template_of
from pytest_jallm.prompt_format import (
    PromptFormat,
    answer_kind,
    render_label,
    rewrite_politeness,
    to_fullwidth,
    to_halfwidth_kana,
    token,
    token_system,
)
from pytest_jallm.specfile import load_spec, parse_spec
from pytest_jallm.variants.search import VariantLimits, VariantSearch, benchmark_seed, check
from pytest_jallm.variants.strategies import draw_formats, feature_options, prompt_formats

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip()


# --- random specs and examples -----------------------------------------------------

MC_BASE = {
    "name": "rand_mc",
    "category": "MC",
    "source": {"path": "x.jsonl"},
    "instruction": "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号（例：0）でお答えください。",
    "max_new_tokens": 2,
    "metrics": ["exact_match"],
}


@st.composite
def mc_specs(draw):
    """MC specs: the answer is a label (index/number/letter) or the choice text; varied templates."""
    n = draw(st.integers(2, 6))
    system = draw(st.sampled_from(["index", "number", "letter"]))
    label = draw(st.sampled_from(["{%s}." % system, "{%s}. " % system, "({%s})" % system]))
    answer_is_label = draw(st.booleans())
    data = dict(MC_BASE)
    data["fields"] = {"id": "id", "answer": "label", "choices": [f"c{i}" for i in range(n)], "question": "q"}
    data["input"] = draw(st.sampled_from(["質問：{question}\n選択肢：{choices}", "問題：{question}\n選択肢：\n{choices}",
                                          "Question: {question}\nChoices: {choices}"]))
    data["choice_format"] = {"label": label, "joiner": draw(st.sampled_from([",", "\n", ", "]))}
    data["prompt_template"] = draw(st.sampled_from(["llm-jp-eval-v1", "alpaca-ja", "cot-ja"]))
    if answer_is_label:
        data["labels"] = [token(system, i) for i in range(n)]
    return parse_spec(data, Path("rand_mc.yaml")), n, answer_is_label


# Data text: anything, braces and the template's own words included, but no sentinel brackets.
# Data text never contains the template's own section markers ('#'), so the
# structural assertions below count only what the template wrote.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="⟦⟧#"), max_size=12)


@st.composite
def mc_examples(draw, spec, n, answer_is_label, ident):
    choices = tuple(f"⟦{ident}c{i}⟧{draw(TEXT)}" for i in range(n))
    gold_idx = draw(st.integers(0, n - 1))
    system = token_system(spec.choice_format.label)
    gold = token(system, gold_idx) if answer_is_label else choices[gold_idx]
    q = f"⟦{ident}q⟧" + draw(TEXT)
    return Example(id=f"{ident}{draw(st.integers(0, 10**6))}", fields={"question": q}, choices=choices, gold=gold), gold_idx


@st.composite
def mc_cases(draw, spec_aware: bool):
    spec, n, answer_is_label = draw(mc_specs())
    example, gold_idx = draw(mc_examples(spec, n, answer_is_label, "x"))
    shots = [draw(mc_examples(spec, n, answer_is_label, f"s{k}")) for k in range(draw(st.integers(0, 2)))]
    fmt = draw(prompt_formats(spec if spec_aware else None))
    return spec, example, gold_idx, shots, fmt


def _item_block(spec, fmt: PromptFormat, prompt: str) -> str:
    """The item's own input block (after the last input header)."""
    from pytest_jallm.prompt import TEMPLATES

    header = TEMPLATES[spec.prompt_template].input_header
    if fmt.spacing == "compact":
        header = header.replace("\n\n", "\n", 1)
    return prompt.rsplit(header, 1)[1]


def _label_of(spec, fmt: PromptFormat, pos: int) -> str:
    lab = render_label(fmt.label_template(spec), pos)
    return to_fullwidth(lab, punctuation=True) if fmt.width == "full-alnum" else lab


def _check_case(spec, example, gold_idx, shots, fmt) -> None:
    prompt, gold = render(spec, example, [s for s, _ in shots], fmt)
    block = _item_block(spec, fmt, prompt)
    # Same content: the question verbatim, every choice exactly once.
    assert block.count(example.fields["question"]) == 1
    for c in example.choices:
        assert block.count(c) == 1, (c, block)
    # Well-formed: one instruction, one input block per shot plus the item, an open response.
    assert prompt.count("### 指示:") + prompt.count("### Instruction:") == 1
    assert prompt.count("### 入力:") + prompt.count("### Input:") == len(shots) + 1
    assert prompt.endswith(("### 応答:\n", "### Response:\n", "ステップバイステップで考えましょう。\n"))
    # Gold: the label the gold choice carries now (answers are compared after NFKC).
    if answer_kind(spec) is None:
        assert gold == example.gold
    else:
        system = token_system(fmt.label_template(spec))
        pos = next(p for p in range(len(example.choices)) if nfkc(token(system, p)) == nfkc(gold))
        assert _label_of(spec, fmt, pos) + example.choices[gold_idx] in block
        labels = fmt.labels(spec)
        assert nfkc(gold) in {nfkc(x) for x in labels}
    # Few-shot answers follow the same mapping.
    for shot, shot_gold_idx in shots:
        _, shot_gold = fmt.render_input(spec, shot)
        if answer_kind(spec) is not None:
            system = token_system(fmt.label_template(spec))
            order = fmt.permutation(spec, shot)
            assert token(system, order.index(shot_gold_idx)) == shot_gold


@PROPS
@given(mc_cases(spec_aware=True))
def test_spec_aware_formats_keep_content_and_remap_gold(case) -> None:
    _check_case(*case)


@PROPS
@given(mc_cases(spec_aware=False))
def test_every_format_of_the_grammar_keeps_content_and_remaps_gold(case) -> None:
    _check_case(*case)


@PROPS
@given(mc_cases(spec_aware=True))
def test_canonical_point_of_the_grammar_is_the_normal_prompt(case) -> None:
    spec, example, _, shots, _ = case
    shots = [s for s, _ in shots]
    prompt, gold = render(spec, example, shots, PromptFormat())
    assert prompt == render_prompt(spec, example, shots)
    assert gold == example.gold
    assert render_messages(spec, example, shots, PromptFormat()) == render_messages(spec, example, shots)


def test_canonical_is_byte_identical_on_every_bundled_spec() -> None:
    for path in sorted((ROOT / "benchmarks").rglob("*.yaml")):
        spec = load_spec(path)
        if not template_of(spec).variants:
            continue  # one fixed japanese-lm-med-harness text: no variants are drawn for it
        vars_ = spec.fields.variables()
        choices = ("いぬ{question}", "ねこ", "とり", "さる", "うし") if spec.fields.choices is not None else ()
        ex = Example(id="1", fields={k: f"値{k}{{x}}" for k in vars_}, choices=choices, gold="0")
        assert render(spec, ex, [ex], PromptFormat())[0] == render_prompt(spec, ex, [ex]), path.name


def test_spec_aware_strategy_only_draws_features_that_change_the_prompt() -> None:
    jcqa = load_spec(ROOT / "benchmarks" / "jcommonsenseqa.yaml")
    opts = feature_options(jcqa)
    assert "：" not in opts["separator"] and opts["separator"][0] is None
    # The answer is the choice number: labels keep numbers (the instruction asks for them).
    assert all("{index}" in s for s in opts["choice_label"][1:])
    assert opts["choice_order"][0] == "as-is" and len(opts["choice_order"]) > 1
    nli = load_spec(ROOT / "benchmarks" / "jnli.yaml")
    nopts = feature_options(nli)
    assert nopts["choice_label"] == (None,) and nopts["choice_order"] == ("as-is",) and nopts["choice_joiner"] == (None,)
    en = load_spec(ROOT / "benchmarks" / "mmlu_en.yaml")
    assert feature_options(en)["politeness"] == ("as-is",) and feature_options(en)["width"] == ("as-is",)
    # Content-answer MC (IgakuQA): any label style and order is equivalent, the gold is the text.
    igaku = load_spec(ROOT / "benchmarks" / "igakuqa.yaml")
    assert "{circled}" in feature_options(igaku)["choice_label"]


def test_every_spec_aware_single_feature_changes_the_prompt() -> None:
    for path in sorted((ROOT / "benchmarks").rglob("*.yaml")):
        spec = load_spec(path)
        if not template_of(spec).variants:
            continue  # as above
        vars_ = spec.fields.variables()
        choices = ("いぬ", "ねこ", "とり", "さる", "うし") if spec.fields.choices is not None else ()
        gold = (spec.labels or ["いぬ"])[0] if answer_kind(spec) else "いぬ"
        ex = Example(id="7", fields={k: f"値{k}" for k in vars_}, choices=choices, gold=gold)
        canonical = render(spec, ex, [], PromptFormat())[0]
        for feature, values in feature_options(spec).items():
            for value in values[1:]:
                fmt = PromptFormat(**{feature: value})
                assert render(spec, ex, [], fmt)[0] != canonical, (path.name, feature, value)


# --- shrinking ----------------------------------------------------------------------


def test_strategy_shrinks_to_canonical() -> None:
    jcqa = load_spec(ROOT / "benchmarks" / "jcommonsenseqa.yaml")
    for spec in (None, jcqa):
        assert find(prompt_formats(spec), lambda f: True) == PromptFormat()
        # The smallest format with a non-canonical separator changes only that, to the first alternative.
        shrunk = find(prompt_formats(spec), lambda f: f.separator is not None and f.instruction_after)
        assert shrunk.diff_from_canonical() == {"separator": feature_options(spec)["separator"][1], "instruction_after": True}


def test_describe_and_diff_name_the_changed_features() -> None:
    assert PromptFormat().describe() == "canonical" and PromptFormat().diff_from_canonical() == {}
    fmt = PromptFormat(separator=" - ", choice_order="reversed")
    assert fmt.diff_from_canonical() == {"separator": " - ", "choice_order": "reversed"}
    assert fmt.describe() == "separator=' - '; choice_order='reversed'"
    assert PromptFormat.from_dict(fmt.to_dict()) == fmt


def test_draws_are_reproducible_distinct_and_not_canonical() -> None:
    spec = load_spec(ROOT / "benchmarks" / "jcommonsenseqa.yaml")
    a, b = draw_formats(spec, 8, 123), draw_formats(spec, 8, 123)
    assert a == b and len(a) == 8 and len(set(a)) == 8 and PromptFormat() not in a
    assert draw_formats(spec, 8, 124) != a


# --- politeness and width -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, style, expected",
    [
        ("選択肢から回答を選択してください。", "nasai", "選択肢から回答を選択しなさい。"),
        ("選択肢から回答を選択してください。", "plain", "選択肢から回答を選択せよ。"),
        ("番号でお答えください。", "plain", "番号で答えよ。"),
        ("内容を返してください。", "plain", "内容を返せ。"),
        ("何も含めないでください。", "plain", "何も含めるな。"),
        ("似ていることを表しています。", "plain", "似ていることを表している。"),
        ("答えを書きなさい。", "kudasai", "答えを書いてください。"),
        ("出力しなさい。", "kudasai", "出力してください。"),
    ],
)
def test_politeness_rewrites(text: str, style: str, expected: str) -> None:
    assert rewrite_politeness(text, style) == expected


def test_width_conversions_are_undone_by_nfkc() -> None:
    text = "回答は選択肢の番号（例：0）、アルファベット、ガス、パン"
    assert nfkc(to_fullwidth(text)) == nfkc(text) and to_fullwidth("A1") == "Ａ１"
    half = to_halfwidth_kana(text)
    assert "ｱﾙﾌｧﾍﾞｯﾄ" in half and nfkc(half) == nfkc(text)


# --- the search with fakes ---------------------------------------------------------------

NLI_SPEC = """\
name: fake_nli
category: NLI
source: {path: data.jsonl}
fields: {id: pid, answer: label, premise: s1, hypothesis: s2}
instruction: 前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。
input: "前提：{premise}\\n仮説：{hypothesis}"
labels: [entailment, contradiction, neutral]
max_new_tokens: 3
metrics: [exact_match]
"""
NLI_LABELS = ["entailment", "contradiction", "neutral"]


class SeparatorSensitive:
    """Right only when the premise is introduced with `前提：`; counts its backend calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def identity(self) -> BackendIdentity:
        return BackendIdentity("fake", "1", "separator-sensitive", "1")

    def generate(self, requests, sampling, on_result=None):
        self.calls.append(len(requests))
        out = []
        for i, r in enumerate(requests):
            k = int(r.prompt.rsplit("前提番号", 1)[1].split("。", 1)[0])
            right = NLI_LABELS[k % 3]
            text = right if "前提：" in r.prompt else NLI_LABELS[(k + 1) % 3]
            out.append(text)
            if on_result:
                on_result(i, text)
        return out

    def close(self) -> None:
        pass


def _nli_suite(tmp_path: Path, n: int = 12) -> Path:
    (tmp_path / "fake_nli.yaml").write_text(NLI_SPEC, encoding="utf-8")
    with open(tmp_path / "data.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"pid": f"p{i}", "s1": f"前提番号{i}。", "s2": "仮説です。", "label": NLI_LABELS[i % 3]},
                                ensure_ascii=False) + "\n")
    return tmp_path / "fake_nli.yaml"


def test_search_batches_scores_and_shrinks_to_the_one_sensitive_feature(tmp_path: Path) -> None:
    path = _nli_suite(tmp_path)
    backend = SeparatorSensitive()
    ev = Evaluation(RunSettings(model="fake"), lambda: backend)
    search = VariantSearch(ev, n=12, sample=10, seed=7)
    search.run([(load_spec(path), path)])
    res = search.results["fake_nli"]
    assert backend.calls and len(backend.calls) == 1  # all formats in one backend call
    assert len(res.item_ids) == 10 and len(res.scores) == 13 and res.canonical.score == 100.0
    broken = [s for s in res.scores if s.format.separator is not None]
    assert broken and all(s.score == 0.0 for s in broken)
    assert all(s.score == 100.0 for s in res.scores if s.format.separator is None)
    limits = VariantLimits(max_spread=10.0)
    assert check(res, limits)
    search.shrink({"fake_nli": limits})
    shrunk = search.shrunk["fake_nli"]
    assert list(shrunk.format.diff_from_canonical()) == ["separator"]
    assert search.shrink_rounds == 1 and len(backend.calls) <= 2


def test_search_goes_through_the_evaluation_and_its_cache(tmp_path: Path) -> None:
    """A second session with the same seed asks the backend for nothing: every format's prompts are cached,
    and the canonical format's are the benchmark test's own requests."""
    path = _nli_suite(tmp_path)
    spec = load_spec(path)
    settings = RunSettings(model="fake", cache_path=tmp_path / "cache.sqlite")
    first = SeparatorSensitive()
    ev = Evaluation(settings, lambda: first)
    ev.run([(spec, path)])
    search = VariantSearch(ev, n=4, sample=None, seed=3)
    search.run([(spec, path)])
    assert first.calls == [12, 4 * 12]  # the canonical format's 12 prompts came from the cache
    assert ev.prompts_requested == 12  # the session's summary counts the benchmark test's prompts only, as before
    assert search.prepared("fake_nli", PromptFormat()).requests == ev.prepared(spec, path).requests
    ev.close()
    again = SeparatorSensitive()
    ev2 = Evaluation(settings, lambda: again)
    search2 = VariantSearch(ev2, n=4, sample=None, seed=3)
    search2.run([(spec, path)])
    ev2.close()
    assert again.calls == [] and search2.results["fake_nli"].scores == search.results["fake_nli"].scores


class TwoFeatureSensitive(SeparatorSensitive):
    """Wrong only when the instruction comes after the input AND the values are quoted."""

    def generate(self, requests, sampling, on_result=None):
        self.calls.append(len(requests))
        out = []
        for i, r in enumerate(requests):
            k = int(r.prompt.rsplit("前提番号", 1)[1].split("。", 1)[0])
            after = r.prompt.index("### 指示:") > r.prompt.index("### 入力:")
            text = NLI_LABELS[(k + 1) % 3] if (after and "「" in r.prompt) else NLI_LABELS[k % 3]
            out.append(text)
            if on_result:
                on_result(i, text)
        return out


def test_greedy_shrink_finds_a_two_feature_interaction(tmp_path: Path) -> None:
    path = _nli_suite(tmp_path)
    backend = TwoFeatureSensitive()
    ev = Evaluation(RunSettings(model="fake"), lambda: backend)
    search = VariantSearch(ev, n=1, sample=6, seed=0)
    spec = load_spec(path)
    search.run([(spec, path)])
    worst = PromptFormat(separator=" - ", quoting=True, instruction_after=True, spacing="compact", politeness="nasai")
    search.benches["fake_nli"].formats.append(worst)
    extra = search.evaluate([("fake_nli", worst)])[("fake_nli", worst)]
    search.results["fake_nli"].scores.append(extra)
    search.shrink({"fake_nli": VariantLimits(min_variant_score=50)})
    assert search.shrunk["fake_nli"].format.diff_from_canonical() == {"quoting": True, "instruction_after": True}


# --- the plugin ----------------------------------------------------------------------------

TOY_MC = """\
name: toy_mc
category: MC
source: {path: data/toy_mc.jsonl}
fields: {id: qid, answer: label, choices: [c0, c1, c2, c3], question: question}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{question}\\n選択肢：{choices}"
labels: ["0", "1", "2", "3"]
max_new_tokens: 2
metrics: [exact_match]
"""
N_MC = 12


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "toy_mc.yaml").write_text(TOY_MC, encoding="utf-8")
    (bench / "fake_nli.yaml").write_text(NLI_SPEC.replace("data.jsonl", "data/nli.jsonl"), encoding="utf-8")
    rows = [{"qid": f"m{i}", "question": f"問題{i}番", "c0": "いぬ", "c1": "ねこ", "c2": "とり", "c3": "さる", "label": (i * 7) % 4}
            for i in range(N_MC)]
    (bench / "data" / "toy_mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    nli = [{"pid": f"p{i}", "s1": f"前提番号{i}。", "s2": "仮説です。", "label": NLI_LABELS[i % 3]} for i in range(6)]
    (bench / "data" / "nli.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in nli), encoding="utf-8")
    # A model that memorised each question's answer *number*: right only while choices keep their order.
    script = [{"contains": f"問題{r['qid'][1:]}番", "output": str(r["label"])} for r in rows]
    script += [{"contains": f"前提番号{i}。", "output": NLI_LABELS[i % 3]} for i in range(6)]
    (pytester.path / "model.json").write_text(json.dumps({"rules": script}, ensure_ascii=False), encoding="utf-8")
    return pytester


def _run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest("benchmarks", "--jallm-backend", SCRIPTED, "--model", str(p.path / "model.json"), "--jallm-no-cache",
                       "-p", "no:cacheprovider", *args)


def test_variants_items_are_collected_only_on_request(suite: pytest.Pytester) -> None:
    plain = suite.runpytest("benchmarks", "--collect-only", "-q")
    plain.stdout.fnmatch_lines(["2 tests collected*"])
    with_variants = suite.runpytest("benchmarks", "--collect-only", "-q", "--jallm-variants", "4")
    with_variants.stdout.fnmatch_lines(["*toy_mc.yaml::toy_mc[[]variants[]]", "4 tests collected*"])
    only = suite.runpytest("benchmarks", "--collect-only", "-q", "--jallm-variants", "4", "-m", "jallm_variants")
    only.stdout.fnmatch_lines(["2/4 tests collected (2 deselected)*"])


@pytest.mark.slow
def test_variants_report_only_without_thresholds_in_one_backend_call(suite: pytest.Pytester, monkeypatch) -> None:
    log = suite.path / "calls.jsonl"
    monkeypatch.setenv("JALLM_SCRIPTED_LOG", str(log))
    out_json = suite.path / "variants.json"
    result = _run(suite, "--jallm-variants", "6", "-k", "variants", "--jallm-variants-json", str(out_json))
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["*pytest-jallm: prompt-format variants*", "benchmark*canonical*min*max*spread*std*",
                                 "fake_nli*100.00*100.00*100.00*0.00*0.00*report*"])
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    rows = json.loads(out_json.read_text(encoding="utf-8"))["variants"]
    assert len(calls) == 1  # every format of both benchmarks in one call
    assert calls[0]["prompts"] <= sum(len(r["formats"]) * r["n"] for r in rows)
    assert calls[0]["prompts"] > N_MC * 2
    mc = next(r for r in rows if r["name"] == "toy_mc")
    assert mc["canonical"] == 100.0 and len(mc["formats"]) == 7 and mc["seed"] == benchmark_seed(0, "toy_mc")
    # Formats are stored with the results, reproducibly.
    again = _run(suite, "--jallm-variants", "6", "-k", "variants", "--jallm-variants-json", str(out_json))
    again.assert_outcomes(passed=2, deselected=2)
    assert json.loads(out_json.read_text(encoding="utf-8"))["variants"] == rows
    other = _run(suite, "--jallm-variants", "6", "-k", "variants", "--jallm-variants-json", str(out_json), "--jallm-seed", "5")
    assert json.loads(out_json.read_text(encoding="utf-8"))["variants"] != rows
    assert other.ret == 0
    # --hypothesis-seed, when given, picks the formats.
    _run(suite, "--jallm-variants", "2", "-k", "toy_mc and variants", "--jallm-variants-json", str(out_json),
         "--hypothesis-seed", "5").assert_outcomes(passed=1, deselected=3)
    assert json.loads(out_json.read_text(encoding="utf-8"))["variants"][0]["seed"] == benchmark_seed(5, "toy_mc")


def test_variants_item_fails_names_worst_and_shrunk_format(suite: pytest.Pytester) -> None:
    (suite.path / "thresholds").mkdir()
    (suite.path / "thresholds" / "model.yaml").write_text(
        yaml.safe_dump({"defaults": {"max_spread": 20}}), encoding="utf-8")
    result = _run(suite, "--jallm-variants", "12", "--jallm-variant-sample", "10")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*toy_mc[[]variants[]] (MC, exact_match): 13 prompt formats on 10 items*",
        "*spread * exceeds max_spread 20.00*",
        "worst format (score *",
        "shrunk to the smallest change from canonical that still fails: choice_order=* (score *)",
        "--- worst format's prompt (item *",
    ])
    assert "fake_nli[variants] PASSED" in out or "FAILED benchmarks/toy_mc.yaml::toy_mc[variants]" in out
    assert "FAILED benchmarks/fake_nli.yaml" not in out
    table = out.split("pytest-jallm: prompt-format variants", 1)[1]
    assert "toy_mc" in table and "FAIL" in table and "shrunk: choice_order=" in table


# --- the bundled weak model ------------------------------------------------------------------

WEAK = ROOT / "models" / "tiny-ja-weak"


@pytest.mark.slow
@pytest.mark.skipif(not (WEAK / "config.json").exists(), reason="models/tiny-ja-weak is not there")
def test_weak_checkpoint_spread_is_caught(pytester: pytest.Pytester) -> None:
    """A tiny model trained only on the canonical format: other formats break it, and the check says so."""
    pytester.makefile(".yaml", **{"thresholds/tiny-ja-weak": yaml.safe_dump({"defaults": {"max_spread": 15}})})
    out_json = pytester.path / "variants.json"
    result = pytester.runpytest(
        str(ROOT / "samples"), "--model", str(WEAK), "--jallm-backend", "hf", "--jallm-device", "cpu",
        "--jallm-no-cache", "--jallm-variants", "8", "--jallm-variant-sample", "30", "-k", "variants",
        "--jallm-thresholds-dir", str(pytester.path / "thresholds"), "--jallm-variants-json", str(out_json),
        "-p", "no:cacheprovider",
    )
    rows = {r["name"]: r for r in json.loads(out_json.read_text(encoding="utf-8"))["variants"]}
    assert set(rows) == {"sample_mc", "sample_nli"}
    caught = [r for r in rows.values() if r["spread"] > 15]
    assert caught, {n: r["spread"] for n, r in rows.items()}
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*spread * exceeds max_spread 15.00*", "shrunk to the smallest change from canonical*"])
    for r in caught:
        assert r["verdict"] == "FAIL" and r["shrunk"] is not None and r["shrunk"]["format"]


def test_a_field_value_that_holds_a_placeholder_is_not_substituted_again() -> None:
    """Found by hypothesis: a question whose text is "{choices}" became the choices list."""
    spec = parse_spec({"name": "t", "category": "MC", "source": {"path": "d.jsonl"},
                       "fields": {"answer": "label", "choices": ["c0", "c1"], "question": "q"},
                       "instruction": "i", "input": "質問：{question}\n選択肢：{choices}", "labels": ["0", "1"],
                       "max_new_tokens": 1, "metrics": ["exact_match"]}, Path("t.yaml"))
    ex = Example(id="1", fields={"question": "{choices} と {question}"}, choices=("いぬ", "ねこ"), gold="0", context={})
    assert PromptFormat().render_input(spec, ex)[0] == "質問：{choices} と {question}\n選択肢：0.いぬ,1.ねこ"
