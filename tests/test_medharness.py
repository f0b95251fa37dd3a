"""japanese-lm-med-harness parity: prompt templates, answer cut, Gestalt match, shuffled choices.

The expected prompts are written out by hand from the harness's template.py and eval_bench.py
(github stardust-coder/japanese-lm-med-harness, commit ef9544a); the expected scores are
computed by hand (or taken from difflib's documentation), not by calling the code under test.
"""

from __future__ import annotations

import json
import random

import pytest

from pytest_jallm import medharness as mh
from pytest_jallm.metrics import get_metric

QUESTION = "発熱の原因として最も考えられるのはどれか。"
CHOICES = ["ウイルス感染", "骨折", "脱水", "貧血", "近視"]
JOINED = "ウイルス感染,骨折,脱水,貧血,近視"
LETTERED = "(A)ウイルス感染\n(B)骨折\n(C)脱水\n(D)貧血\n(E)近視"

MEDPALM_EN_HEAD = (
    "### Instruction:\nThe following are multiple choice questions about medical knowledge. Solve them in a "
    "step-by-step fashion, starting by summarizing the available information. Output a single option from the "
)
MEDPALM_JA_HEAD = (
    "### 指示：\n以下は医学知識に関する多肢選択問題です。利用可能な情報を要約してから、段階的に解決してください。"
    "最終的な答えとして"
)
MEDITRON_SYSTEM = (
    "You are a medical doctor answering real-world medical entrance exam questions. Based on your understanding of "
    "basic and clinical science, medical knowledge, and mechanisms underlying health, disease, patient care, and modes "
    "of therapy, answer the following multiple-choice question. Select one correct answer from A to "
)
MEDITRON_TAIL = " Base your answer on the current and standard practices referenced in medical guidelines.<|im_end|>\n"

EXPECTED = {
    "alpaca": (
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
        "response that appropriately completes the request.\n### Instruction:\n" + QUESTION + "\n### Input:\n" + JOINED
        + "\n### Response:\n"
    ),
    # template.py writes "で" of "組み合わせです" as て + U+3099 (combining dakuten).
    "alpaca_ja": (
        "以下は，タスクを説明する指示と，文脈のある入力の組み合わせて\u3099す。要求を適切に満たす応答を書きなさい。\n"
        "### 指示：\n" + QUESTION + "\n### 入力：\n" + JOINED + "\n### 応答：\n"
    ),
    "medpalm_four_choice_cot": MEDPALM_EN_HEAD + "four options as the final answer.\n### Input:\n" + QUESTION + "\n"
    + JOINED + "\n### Response:\n",
    "medpalm_four_choice_cot_ja": MEDPALM_JA_HEAD + "4つの選択肢のうちの1つを出力してください。\n### 入力：\n" + QUESTION
    + "\n" + JOINED + "\n### 応答：\n",
    "medpalm_five_choice_cot": MEDPALM_EN_HEAD + "five options as the final answer.\n### Input:\n" + QUESTION + "\n"
    + JOINED + "\n### Response:\n",
    "medpalm_five_choice_cot_ja": MEDPALM_JA_HEAD + "5つの選択肢のうちの1つを出力してください。\n### 入力：\n" + QUESTION
    + "\n" + JOINED + "\n### 応答：\n",
    "alpaca_med_five_choice_cot": (
        "The following are multiple choice questions about medical knowledge. Solve them in a step-by-step fashion, "
        "starting by summarizing the available information. Output a single option from the five options as the final "
        "answer.\n### Instruction:\n" + QUESTION + "\n### Input:\n" + JOINED + "\n### Response:\n"
    ),
    "alpaca_med_five_choice_cot_ja": (
        "以下は医学知識に関する多肢選択問題です。利用可能な情報を要約してから、段階的に解決してください。"
        "最終的な答えとして5つの選択肢のうちの1つを出力してください。\n### 指示：\n" + QUESTION + "\n### 入力：\n" + JOINED
        + "\n### 応答：\n"
    ),
    # eval_bench.py's four-choice branch is overwritten by the next if/else: comma-joined input.
    "meditron_four_choice": (
        "\n<|im_start|> system\n" + MEDITRON_SYSTEM + "D." + MEDITRON_TAIL + "<|im_start|> question\nQuestion: "
        + QUESTION + "\nOptions:\n" + JOINED + "\n<|im_start|> answer\n\n"
    ),
    "meditron_five_choice": (
        "\n<|im_start|> system\n" + MEDITRON_SYSTEM + "E." + MEDITRON_TAIL + "<|im_start|> question\nQuestion: "
        + QUESTION + "\nOptions:\n" + LETTERED + "<|im_end|>\n<|im_start|> answer\n\n"
    ),
}


def test_every_template_of_the_harness_is_pinned() -> None:
    assert sorted(mh.HARNESS_TEMPLATES) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_the_harness_text(name: str) -> None:
    assert mh.render_harness_prompt(name, QUESTION, CHOICES) == EXPECTED[name]


def test_values_are_inserted_verbatim_and_once() -> None:
    text = mh.render_harness_prompt("alpaca", "Is {{input}} <b>&</b>?", ["a", "b"])
    assert "Is {{input}} <b>&</b>?\n### Input:\na,b\n" in text


def test_meditron_five_choice_needs_five_choices() -> None:
    with pytest.raises(ValueError, match="needs 5 choices, got 4"):
        mh.render_harness_prompt("meditron_five_choice", QUESTION, CHOICES[:4])


# --- answer cut ---------------------------------------------------------------------------------


def test_response_is_first_line_after_the_prompts_marker() -> None:
    prompt = EXPECTED["medpalm_five_choice_cot_ja"]
    assert mh.harness_response(prompt + "  脱水\n理由：…\n### 応答：\n貧血") == "脱水"
    en = EXPECTED["medpalm_five_choice_cot"]
    assert mh.harness_response(en + "\n Dehydration \nbecause") == "Dehydration"


def test_response_marker_preference_and_no_marker() -> None:
    # "### Answer:" is looked for before "### Response:" (eval_bench.py's elif order).
    en = EXPECTED["medpalm_five_choice_cot"]
    assert mh.harness_response(en + "thinking...\n### Answer: 骨折\n") == "骨折"
    # meditron prompts hold no marker: the first line of the whole text (the prompt's) is kept.
    meditron = EXPECTED["meditron_five_choice"]
    assert mh.harness_response(meditron + "(C)脱水") == "<|im_start|> system"


# --- Gestalt match ------------------------------------------------------------------------------


def test_gestalt_score_averages_both_directions() -> None:
    # difflib's documentation: ratio("tide", "diet") == 0.25 and ratio("diet", "tide") == 0.5.
    assert mh.gestalt_choice_scores("tide", ["diet"]) == [pytest.approx(0.375)]
    # 3 matching characters of 3 + 6: 2*3/9 both ways; disjoint choices score 0.
    assert mh.gestalt_choice_scores("aaabbb", ["aaa", "bbb", "ccc"]) == [
        pytest.approx(2 / 3), pytest.approx(2 / 3), 0.0]


def test_single_answer_best_choice_and_first_on_ties() -> None:
    choices = ["aaa", "bbb", "ccc", "ddd", "eee"]
    assert mh.gestalt_match_item("bbbx", "bbb", choices) == 1.0
    assert mh.gestalt_match_item("bbbx", "ccc", choices) == 0.0
    # "aaabbb" ties aaa and bbb: the first in list order wins.
    assert mh.gestalt_match_item("aaabbb", "aaa", choices) == 1.0
    assert mh.gestalt_match_item("aaabbb", "bbb", choices) == 0.0
    # ... so the order of the choices (shuffled or not) decides ties.
    assert mh.gestalt_match_item("aaabbb", "bbb", ["bbb", "aaa", "ccc"]) == 1.0


def test_multi_answer_takes_as_many_best_choices_as_gold_parts() -> None:
    choices = ["aaa", "bbb", "ccc", "ddd", "eee"]
    assert mh.gestalt_match_item("aaabbb", "bbb,aaa", choices) == 1.0  # order of gold parts is free
    assert mh.gestalt_match_item("aaabbb", "aaa,ccc", choices) == 0.0
    # 3 gold parts: aaa and bbb (2/3 each), then the first of the zeros (ccc).
    assert mh.gestalt_match_item("aaabbb", "aaa,bbb,ccc", choices) == 1.0
    assert mh.gestalt_match_item("aaabbb", "aaa,bbb,ddd", choices) == 0.0


def test_quirks_kept_from_the_harness() -> None:
    # Every "." of the response is removed before scoring (and exact match).
    assert mh.gestalt_match_item("a.a.a", "aaa", ["aaa", "aab"]) == 1.0
    assert mh.harness_exact_match_item(" ウイルス感染. ", "ウイルス感染") == 1.0
    assert mh.harness_exact_match_item("ウイルス感染です", "ウイルス感染") == 0.0
    # A gold text with "," splits into parts that are not choices: never a match.
    assert mh.gestalt_match_item("1,000", "1,000", ["1,000", "2,000"]) == 0.0
    # More gold parts than choices: the harness's exception, counted as not matched.
    assert mh.gestalt_match_item("x", "a,b,c", ["a", "b"]) == 0.0


def test_metrics_score_multi_line_golds_as_the_harness_answer() -> None:
    ctx = [{"choices": ["aaa", "bbb", "ccc"]}, {"choices": ["aaa", "bbb", "ccc"]}, {"choices": ["x", "y"]}]
    result = get_metric("gestalt_match")(["aaabbb", "ccc", "y."], ["aaa\nbbb", "bbb", "y"], ctx)
    assert result.per_item == [1.0, 0.0, 1.0]
    assert result.score == pytest.approx(2 / 3)
    exact = get_metric("harness_exact_match")(["aaa,bbb", "bbb."], ["aaa\nbbb", "bbb"])
    assert exact.per_item == [1.0, 1.0]
    # A choice text holding a line break (IgakuQA 115C25's English choice): the loader's
    # harness_answer keeps it whole, where our one-answer-per-line gold would split it in two.
    ctx = [{"choices": ["a", "b\nx"], "harness_answer": "b\nx"}]
    assert get_metric("gestalt_match")(["b"], ["b\nx"], ctx).per_item == [1.0]
    assert get_metric("gestalt_match")(["b"], ["b\nx"], [{"choices": ["a", "b\nx"]}]).per_item == [0.0]
    with pytest.raises(ValueError, match="gestalt_match: item 0 has no 'choices'"):
        get_metric("gestalt_match")(["a"], ["a"], [{}])


# --- shuffled choices ---------------------------------------------------------------------------


def test_shuffle_is_random_shuffle_after_seeding_once() -> None:
    seed = 7
    texts = [list("abcde"), list("wxyz"), list("abcde")]
    random.seed(seed)  # what the harness would do if seeded once before its loop
    expected = []
    for t in texts:
        t = list(t)
        random.shuffle(t)
        expected.append(t)
    perms = mh.shuffle_permutations(seed, [len(t) for t in texts])
    assert [[t[i] for i in p] for t, p in zip(texts, perms, strict=True)] == expected


# --- loader ---------------------------------------------------------------------------------------


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_med_mcqa_loader_reads_every_published_layout(tmp_path) -> None:
    from pytest_jallm.loaders.medical import load_med_mcqa

    harness = _jsonl(tmp_path / "usmleqa_ja.jsonl", [
        {"problem_text": "問1", "choices": ["甲", "乙", "丙", "丁", "戊"], "answer": "丙"},
        {"problem_id": "q2", "problem_text": "問2", "choices": ["甲", "乙"], "answer": "甲"},
    ])
    jmedbench = _jsonl(tmp_path / "test.jsonl", [
        {"sample_id": 11, "question": "Q", "options": ["o1", "o2", "o3", "o4"], "answer_idx": 3, "n_options": 4,
         "metadata": {}},
        {"sample_id": 12, "question": "Q2", "options": ["o1", "o2"], "answer_idx": [0], "n_options": 2, "metadata": {}},
    ])
    medqa = _jsonl(tmp_path / "US_test.jsonl", [
        {"question": "A 23-year-old…", "answer": "Nitrofurantoin",
         "options": {"A": "Ampicillin", "B": "Ceftriaxone", "C": "Ciprofloxacin", "D": "Doxycycline", "E": "Nitrofurantoin"},
         "meta_info": "step2&3", "answer_idx": "E"},
    ])
    medmcqa = _jsonl(tmp_path / "dev.json", [
        {"id": "e9ad821a", "question": "Which vitamin…", "opa": "A1", "opb": "B1", "opc": "C1", "opd": "D1", "cop": 3,
         "choice_type": "single", "exp": None, "subject_name": "Biochemistry", "topic_name": None},
    ])
    rows = load_med_mcqa([harness, jmedbench, medqa, medmcqa], {})
    got = [(r["id"], r["question"], r["choices"], r["answer_text"]) for r in rows]
    assert got == [
        ("1", "問1", ["甲", "乙", "丙", "丁", "戊"], "丙"),
        ("q2", "問2", ["甲", "乙"], "甲"),
        ("11", "Q", ["o1", "o2", "o3", "o4"], "o4"),
        ("12", "Q2", ["o1", "o2"], "o1"),
        ("US_test-0", "A 23-year-old…", ["Ampicillin", "Ceftriaxone", "Ciprofloxacin", "Doxycycline", "Nitrofurantoin"],
         "Nitrofurantoin"),
        ("e9ad821a", "Which vitamin…", ["A1", "B1", "C1", "D1"], "C1"),
    ]
    assert [r["answer_index"] for r in rows] == [2, 0, 3, 0, 4, 2]
    # The harness's question-length cut, and HF's 0-based cop.
    assert [r["id"] for r in load_med_mcqa([harness], {"max_chars": {"question": 1}})] == []
    assert load_med_mcqa([medmcqa], {"cop_base": 0})[0]["answer_text"] == "D1"


def test_med_mcqa_loader_reads_a_save_to_disk_copy(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    from pytest_jallm.loaders.medical import load_med_mcqa

    ds = datasets.DatasetDict({"test": datasets.Dataset.from_list([
        {"sample_id": "s1", "question": "Q", "options": ["x", "y"], "answer_idx": 1, "n_options": 2},
    ])})
    ds.save_to_disk(str(tmp_path / "medqa_jp"))
    rows = load_med_mcqa([str(tmp_path / "medqa_jp")], {})
    assert [(r["id"], r["answer_text"]) for r in rows] == [("s1", "y")]
    with pytest.raises(Exception, match="no split 'validation'"):
        load_med_mcqa([str(tmp_path / "medqa_jp")], {"split": "validation"})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question": "Q", "options": ["a", "b"], "answer_idx": 2}, "field 'answer_idx': 2 is not a 0-based index"),
        ({"question": "Q", "options": {"A": "a"}, "answer_idx": "B"}, "field 'answer_idx': 'B' is not one of the options A"),
        ({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}, "field 'cop': 0 is not a choice number 1..4"),
        ({"problem_text": "Q", "answer": "a"}, "field 'choices': missing"),
        ({"question": "Q", "options": 5}, "field 'options': expected a list"),
    ],
)
def test_med_mcqa_loader_names_file_row_and_field(tmp_path, record, message) -> None:
    from pytest_jallm.data import DataError
    from pytest_jallm.loaders.medical import load_med_mcqa

    path = _jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(DataError) as err:
        load_med_mcqa([path], {})
    assert str(err.value).startswith(f"{path}: row 0: ") and message in str(err.value)


# --- end to end through the plugin ------------------------------------------------------------------

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
TOY_SPEC = """\
name: medqa_toy
category: MED
source: {path: data/usmleqa_ja.jsonl, format: med-mcqa}
fields: {id: id, question: question, choices: choices, answer: answer_text}
prompt_template: medpalm_five_choice_cot_ja
max_new_tokens: 16
metrics: [gestalt_match, harness_exact_match]
"""
TOY_ITEMS = [
    {"problem_id": f"p{i}", "problem_text": f"問題{i}：正しいのはどれか。", "choices": ["甲状腺", "副腎", "膵臓", "肝臓", "腎臓"],
     "answer": ["甲状腺", "副腎", "膵臓", "肝臓", "腎臓"][i % 5]}
    for i in range(5)
]


@pytest.fixture
def med_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "medqa_toy.yaml").write_text(TOY_SPEC, encoding="utf-8")
    _jsonl(bench / "data" / "usmleqa_ja.jsonl", TOY_ITEMS)
    return pytester


def _script_for(pytester: pytest.Pytester, rules: list[dict[str, str]], default: str = "") -> str:
    path = pytester.path / "script.json"
    path.write_text(json.dumps({"rules": rules, "default": default}, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _results(pytester: pytest.Pytester, script: str, *args: str) -> dict:
    out = pytester.path / "results.json"
    result = pytester.runpytest("benchmarks", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache",
                                "--jallm-results-json", str(out), *args)
    assert out.exists(), result.stdout.str()
    return json.loads(out.read_text(encoding="utf-8"))


def test_harness_spec_prompts_cuts_and_scores_as_the_harness(med_suite: pytest.Pytester) -> None:
    # Items 0-2 answered right (with the harness's trailing text and a period), 3-4 wrong.
    rules = []
    for i, item in enumerate(TOY_ITEMS):
        prompt = mh.render_harness_prompt("medpalm_five_choice_cot_ja", item["problem_text"], item["choices"])
        answer = item["answer"] if i < 3 else "腎臓" if item["answer"] != "腎臓" else "肝臓"
        rules.append({"contains": prompt, "output": f" {answer}.\n理由は…"})
    doc = _results(med_suite, _script_for(med_suite, rules))
    (row,) = doc["benchmarks"]
    assert row["metric"] == "gestalt_match" and row["score"] == pytest.approx(60.0)
    assert row["extra"]["scores"]["harness_exact_match"] == pytest.approx(60.0)
    assert "shuffle_choices" not in row["extra"]["produced_by"]


def test_shuffled_choices_reach_the_prompt_provenance_and_hash(med_suite: pytest.Pytester) -> None:
    random.seed(3)
    rules = []
    for item in TOY_ITEMS:
        shuffled = list(item["choices"])
        random.shuffle(shuffled)
        joined = ",".join(shuffled)
        rules.append({"contains": f"{item['problem_text']}\n{joined}\n", "output": item["answer"]})
    script = _script_for(med_suite, rules, default="わからない")
    plain = _results(med_suite, script)["benchmarks"][0]
    shuffled_row = _results(med_suite, script, "--jallm-shuffle-choices", "3")["benchmarks"][0]
    assert shuffled_row["score"] == pytest.approx(100.0)  # every prompt had the seeded order
    assert plain["score"] < 100.0  # the unshuffled order matches no rule (or only by chance)
    assert shuffled_row["extra"]["produced_by"]["shuffle_choices"] == 3
    assert shuffled_row["extra"]["produced_by"]["prompt_hash"] != plain["extra"]["produced_by"]["prompt_hash"]


def test_med_template_option_switches_a_med_spec_to_a_harness_template(med_suite: pytest.Pytester) -> None:
    rules = [
        {"contains": mh.render_harness_prompt("alpaca_med_five_choice_cot", item["problem_text"], item["choices"]),
         "output": item["answer"]}
        for item in TOY_ITEMS
    ]
    script = _script_for(med_suite, rules, default="わからない")
    # Without the option no rule fires: "わからない" ties every choice at 0 and the first choice is
    # picked, which is item 0's answer only.
    assert _results(med_suite, script)["benchmarks"][0]["score"] == pytest.approx(20.0)
    row = _results(med_suite, script, "--jallm-med-template", "alpaca_med_five_choice_cot")["benchmarks"][0]
    assert row["score"] == pytest.approx(100.0)  # every prompt was exactly the harness's text
    result = med_suite.runpytest("benchmarks", "--collect-only", "--jallm-med-template", "no_such_template")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-med-template 'no_such_template': expected one of alpaca, alpaca_ja, *"])


# --- the bundled hand-written slice through the real specs --------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SLICE = ROOT / "samples" / "medical-slice"


@pytest.mark.filterwarnings("ignore:.*not pinned by sha256")  # the real files are not here to pin
@pytest.mark.parametrize(
    ("spec_name", "ids", "first_gold", "first_prompt_tail"),
    [
        # The image item 900A4 is dropped (text_only false), as the harness drops it.
        ("igakuqa_harness", ["900A1", "900A2", "900A3"], "膵臓",
         "インスリンを分泌する臓器はどれか。\n肝臓,膵臓,脾臓,腎臓,胃\n### 応答：\n"),
        ("igakuqa_harness_en", ["900A1", "900A2", "900A3"], "Pancreas",
         "Which organ secretes insulin?\nLiver,Pancreas,Spleen,Kidney,Stomach\n### Response:\n"),
        ("medqa_ja", ["m1", "m2", "m3"], "大腸菌", "\n大腸菌,黄色ブドウ球菌,緑膿菌,肺炎球菌,カンジダ\n### 応答：\n"),
        ("medqa_en", ["usmleqa_en-0", "usmleqa_en-1", "usmleqa_en-2"], "Escherichia coli",
         "\nEscherichia coli,Staphylococcus aureus,Pseudomonas aeruginosa,Streptococcus pneumoniae,Candida albicans\n"
         "### Response:\n"),
        ("medmcqa_ja", ["mc1", "mc2", "mc3"], "120日", "ヒトの赤血球の平均寿命はどれか。\n30日,60日,120日,240日\n### 応答：\n"),
        ("medmcqa_en", ["e1", "e2", "e3"], "120 days", "\n30 days,60 days,120 days,240 days\n### Response:\n"),
    ],
)
def test_medical_specs_read_the_bundled_slice(spec_name, ids, first_gold, first_prompt_tail) -> None:
    from pytest_jallm.data import load_examples
    from pytest_jallm.prompt import render_prompt
    from pytest_jallm.specfile import load_spec

    spec = load_spec(ROOT / "benchmarks" / f"{spec_name}.yaml")
    examples = load_examples(spec, ROOT / "benchmarks", SLICE)
    assert [ex.id for ex in examples] == ids
    assert examples[0].gold == first_gold
    assert render_prompt(spec, examples[0], []).endswith(first_prompt_tail)
    if spec_name.startswith("igakuqa"):
        assert examples[2].gold.count("\n") == 1  # the two-answer item: the harness's "a,c" gold


def test_prompts_command_takes_the_med_template_and_the_shuffle(capsys) -> None:
    from pytest_jallm.__main__ import main as cli

    assert cli(["prompts", str(ROOT / "benchmarks" / "medqa_ja.yaml"), "--data-dir", str(SLICE), "--limit", "2",
                "--shuffle-choices", "5", "--med-template", "alpaca_ja"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = [json.loads(line) for line in (SLICE / "MedQA" / "usmleqa_ja.jsonl").read_text(encoding="utf-8").splitlines()]
    random.seed(5)
    for record, row in zip(records, rows[:2], strict=True):
        choices = list(row["choices"])
        random.shuffle(choices)
        assert record["prompt"] == EXPECTED["alpaca_ja"].replace(QUESTION, row["problem_text"]).replace(JOINED, ",".join(choices))
        assert record["gold"] == row["answer"]


@pytest.mark.filterwarnings("ignore:.*not pinned by sha256")
def test_a_save_to_disk_copy_at_the_mirror_path_is_read_offline(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    from pytest_jallm.data import load_examples
    from pytest_jallm.specfile import load_spec

    data_dir = tmp_path / "data"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([
        {"sample_id": "j1", "question": "問", "options": ["甲", "乙", "丙", "丁"], "answer_idx": 3, "n_options": 4},
    ])}).save_to_disk(str(data_dir / "MedMCQA" / "medmcqa_ja.jsonl"))  # the spec's mirror path
    spec = load_spec(ROOT / "benchmarks" / "medmcqa_ja.yaml")
    [example] = load_examples(spec, ROOT / "benchmarks", data_dir)
    assert (example.id, example.gold, example.choices) == ("j1", "丁", ("甲", "乙", "丙", "丁"))


# --- against IgakuQA's real files, when a copy is at hand ------------------------------------------

def _igakuqa_data_dir():
    import os

    for candidate in (os.environ.get("JALLM_IGAKUQA_DATA_DIR"), str(ROOT.parent / "shared" / "data")):
        if candidate and (__import__("pathlib").Path(candidate) / "igakuqa" / "data" / "2018" / "112-A.jsonl").is_file():
            return __import__("pathlib").Path(candidate)
    return None


@pytest.mark.skipif(_igakuqa_data_dir() is None, reason="IgakuQA's data/ not found under ../shared/data/igakuqa or "
                    "$JALLM_IGAKUQA_DATA_DIR/igakuqa (jungokasai/IgakuQA @2bc4c3d; not in shared data)")
@pytest.mark.filterwarnings("ignore:.*not pinned by sha256")
@pytest.mark.parametrize(("lang", "expected"), [("ja", 1450), ("en", 1420)])
def test_igakuqa_harness_specs_select_and_prompt_as_the_harness_on_the_real_files(lang, expected) -> None:
    """The harness's selection re-stated from eval_bench.py: English and Japanese files paired line
    by line in sorted order, kept when the Japanese item is text_only and has 5 choices and the
    question is at most 1024 (ja) / 2048 (en) characters; gold = the answer letters' texts joined by ","."""
    import glob

    from pytest_jallm.data import load_examples
    from pytest_jallm.medharness import harness_gold
    from pytest_jallm.prompt import render_prompt
    from pytest_jallm.specfile import load_spec

    data_dir = _igakuqa_data_dir()
    root = str(data_dir / "igakuqa" / "data")
    jp_files = sorted(glob.glob(root + "/20*/*-[ABCDEF].jsonl"))
    files = sorted(glob.glob(root + "/20*/*_translate.jsonl")) if lang == "en" else jp_files
    reference = []
    for f, g in zip(files, jp_files, strict=True):
        with open(f, encoding="utf-8") as fh, open(g, encoding="utf-8") as gh:
            for line, jp_line in zip(fh, gh, strict=False):
                item, jp = json.loads(line), json.loads(jp_line)
                if jp["text_only"] is not True or len(jp["choices"]) != 5:
                    continue
                question = item["problem_text"] if lang == "ja" else item["problem_text_en"]
                choices = item["choices"] if lang == "ja" else item["choices_en"]
                if len(question) <= (1024 if lang == "ja" else 2048):
                    gold = ",".join(dict(zip("abcde", choices, strict=True))[a] for a in item["answer"])
                    reference.append((str(item["problem_id"]), question, choices, gold))
    spec = load_spec(ROOT / "benchmarks" / ("igakuqa_harness.yaml" if lang == "ja" else "igakuqa_harness_en.yaml"))
    examples = load_examples(spec, ROOT / "benchmarks", data_dir)
    assert len(reference) == expected
    assert [ex.id for ex in examples] == [r[0] for r in reference]
    for ex, (pid, question, choices, gold) in zip(examples, reference, strict=True):
        assert render_prompt(spec, ex, []) == mh.render_harness_prompt(spec.prompt_template, question, choices), pid
        assert harness_gold(ex.gold, ex.context) == gold, pid


def test_shuffle_moves_a_positional_label_gold_and_refuses_an_unmovable_one() -> None:
    from pytest_jallm.data import DataError, Example
    from pytest_jallm.evaluation import shuffle_choices
    from pytest_jallm.specfile import parse_spec

    spec = parse_spec({
        "name": "toy", "category": "MC", "source": {"path": "x.jsonl"},
        "fields": {"answer": "label", "choices": ["c0", "c1", "c2"], "question": "q"},
        "instruction": "番号で答えよ", "input": "{question}\n{choices}", "labels": ["0", "1", "2"],
        "max_new_tokens": 2, "metrics": ["exact_match"],
    }, __import__("pathlib").Path("toy.yaml"))
    items = [Example(id=str(i), fields={"question": f"q{i}"}, choices=("いぬ", "ねこ", "とり"), gold=str(i % 3))
             for i in range(6)]
    shuffled = shuffle_choices(spec, items, seed=11)
    orders = mh.shuffle_permutations(11, [3] * 6)
    for before, after, order in zip(items, shuffled, orders, strict=True):
        assert after.choices == tuple(before.choices[k] for k in order)
        # the gold label names the same choice text in its new position
        assert after.choices[int(after.gold)] == before.choices[int(before.gold)]
        assert after.context["choices"] == list(after.choices)
    text_gold = [Example(id="t", fields={"question": "q"}, choices=("いぬ", "ねこ", "とり"), gold="ねこ")]
    assert shuffle_choices(spec, text_gold, seed=1)[0].gold == "ねこ"
    with pytest.raises(DataError, match=r"toy: item 'b': --jallm-shuffle-choices cannot move the gold 'さる'"):
        shuffle_choices(spec, [Example(id="b", fields={"question": "q"}, choices=("いぬ", "ねこ", "とり"), gold="さる")], seed=1)
