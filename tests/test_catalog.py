"""The benchmark catalog: every llm-jp-eval dataset plus medical QA has a spec that parses,
is collected with its category marker, and -- where the published files are in
../shared/data -- maps every row of the real file. Row counts here are computed from the
raw files with a few lines of csv/json/regex, independently of the project's loaders.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pytest_jallm.answers import normalize
from pytest_jallm.data import LOADERS, DataError, load_examples, load_fewshots
from pytest_jallm.prompt import render_prompt
from pytest_jallm.specfile import load_spec
from real_slices import SLICES, for_slices

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SHARED = ROOT.parent / "shared" / "data"

CATALOG = {
    "NLI": {"jamp", "janli", "jnli", "jsem", "jsick"},
    "QA": {"jemhopqa", "niilc", "aio"},
    "RC": {"jsquad"},
    "MC": {"commonsensemoralja", "jcommonsenseqa", "kuci"},
    "EL": {"chabsa"},
    "FA": {"wiki_reading", "wiki_ner", "wiki_dependency", "wiki_pas", "wiki_coreference"},
    "MR": {"mawps", "mgsm", "mawps_cot", "mgsm_cot"},
    "MT": {"alt-e-to-j", "alt-j-to-e", "wikicorpus-e-to-j", "wikicorpus-j-to-e"},
    "STS": {"jsts"},
    "HE": {"mmlu_en", "jmmlu"},
    "SUM": {"xlsum_ja"},
    "CG": {"mbpp"},
    "SYN": {"jcola-in-domain", "jcola-out-of-domain"},
    "MED": {"igakuqa", "igakuqa_en", "igakuqa_cot", "igakuqa_en_cot", "jmmlu_medical", "mmlu_medical",
            "igakuqa_harness", "igakuqa_harness_en", "medqa_ja", "medqa_en", "medmcqa_ja", "medmcqa_en"},
}


def _spec(name: str):
    return load_spec(BENCH / f"{name}.yaml")


# (a) every spec parses, is collected, and carries its category marker ----------------------


def test_every_catalog_spec_parses_with_its_category() -> None:
    specs = {load_spec(p).name: load_spec(p) for p in BENCH.glob("*.yaml")}
    for category, names in CATALOG.items():
        for name in names:
            assert name in specs, f"no spec for {name}"
            assert specs[name].category == category, name
    assert not specs["jsts"].counts_in_average and specs["jsts"].metrics == ["pearson", "spearman"]
    assert {n for n in ("mawps_cot", "mgsm_cot") if not specs[n].counts_in_average} == {"mawps_cot", "mgsm_cot"}
    for name in ("mbpp", "xlsum_ja"):
        assert specs[name].fewshot.count == 0  # 0-shot only, as on the leaderboard
    for name in ("jamp", "janli", "jsick", "jemhopqa", "niilc", "commonsensemoralja", "kuci", "aio", "jsts"):
        assert specs[name].fewshot.count == 4 and specs[name].fewshot.shuffle_seed == 42, name


def _collect(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return {line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_collect_only_lists_the_catalog_and_markers_select_categories() -> None:
    everything = set().union(*CATALOG.values())
    assert everything <= _collect()
    assert _collect("-m", "nli") == CATALOG["NLI"]  # the samples are not in benchmarks/
    assert _collect("-m", "med or mr") == CATALOG["MED"] | CATALOG["MR"]


# (b) specs against the real published files -------------------------------------------------


def _roots(folder: str) -> list:
    """The real slices (first records of the same files, shipped; read unpinned, as a slice is
    not the pinned file), and the full files when present."""
    return [pytest.param(SLICES, id="slices", marks=pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")),
            pytest.param(SHARED, id="shared", marks=_needs(folder))]


def _spec_on(name: str, data: Path):
    return for_slices(_spec(name)) if data == SLICES else _spec(name)


def _needs(*folders: str):
    missing = [f for f in folders if not (SHARED / f).is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f"real data {missing} not found under {SHARED} (see shared/data/README.md)")


def _tsv_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


_JSEM_FILES = (
    "Adjectives Adverb Attitudes AuxiliaryVerb CaseParticle Comparatives CompoundAdjective CompoundVerb "
    "Conditional Conjunction Coordination Ellipsis GeneralizedQuantifier Modality NP NewAdjective "
    "NominalAnaphora Plurals Question TemporalReference Toritate Verbs"
).split()


def _count_jsem() -> int:
    n = 0
    for name in _JSEM_FILES:
        text = (SHARED / "jsem/data/v1.0" / f"{name}.xml").read_text(encoding="utf-8")
        answers = re.findall(r"<problem\b[^>]*?\banswer=\"([^\"]*)\"", text)
        n += sum(a not in ("", "infelicitous", "unacceptable", "weakacceptable") for a in answers)
    return n - int(n * 0.9)  # llm-jp-eval's test = the last 10% after shuffling


def _count_niilc() -> int:
    text = (SHARED / "niilc/data/NIILC-ECQA2015_test.xml").read_text(encoding="utf-8")
    blocks = re.findall(r"<answers>(.*?)</answers>", text, re.S)
    return sum(",".join(a.strip() for a in re.findall(r"<answer>(.*?)</answer>", b, re.S) if a.strip()) != "-" for b in blocks)


def _count_csv(path: Path, header: bool = True) -> int:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - (1 if header else 0)


REAL = {
    # name: (shared folder, independent row count, label set or None)
    "jamp": ("jamp", lambda: len(_tsv_rows(SHARED / "jamp/dataset/test_2.tsv")), {"entailment", "contradiction", "neutral"}),
    "janli": ("janli", lambda: sum(r[-1].strip() == "test" for r in _tsv_rows(SHARED / "janli/janli.tsv")), {"entailment", "non-entailment"}),
    "jsick": ("jsick", lambda: len(_tsv_rows(SHARED / "jsick/jsick/test.tsv")), {"entailment", "contradiction", "neutral"}),
    "jsem": ("jsem", _count_jsem, {"yes", "no", "unknown", "undef"}),
    "jemhopqa": ("jemhopqa", lambda: len(json.loads((SHARED / "jemhopqa/corpus_ver1.2/dev_ver1.2.json").read_text(encoding="utf-8"))), None),
    "niilc": ("niilc", _count_niilc, None),
    "commonsensemoralja": ("jcommonsensemorality", lambda: _count_csv(SHARED / "jcommonsensemorality/data/data_test.csv"), {"0", "1"}),
    "jsts": ("jglue", lambda: len((SHARED / "jglue/jsts-v1.3/valid-v1.3.json").read_text(encoding="utf-8").splitlines()), None),
    "mawps": ("mawps", lambda: (lambda n: n - int(n * 0.5))(len(json.loads((SHARED / "mawps/dataset/mawps/test.json").read_text(encoding="utf-8")))), None),
    "mgsm": ("mgsm", lambda: len((SHARED / "mgsm/mgsm/mgsm_ja.tsv").read_text(encoding="utf-8").splitlines()), None),
    "jmmlu_medical": ("jmmlu", lambda: sum(_count_csv(SHARED / "jmmlu/JMMLU" / f"{s}.csv", header=False) for s in (
        "anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics", "professional_medicine")), None),
    "m_ifeval_ja": ("m-ifeval", lambda: len((SHARED / "m-ifeval/data/ja_input_data.jsonl").read_text(encoding="utf-8").splitlines()), None),
}


# JSeM's XML takes seconds to read: outside the inner loop (`-m "not slow"`).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "jsem" else n for n in sorted(REAL)])
def test_spec_maps_every_row_of_the_real_file(name: str) -> None:
    folder, count, labels = REAL[name]
    if not (SHARED / folder).is_dir():
        pytest.skip(f"real data {folder}/ not found under {SHARED} (see shared/data/README.md)")
    spec = _spec(name)
    examples = load_examples(spec, BENCH, SHARED)
    assert len(examples) == count()
    assert len({ex.id for ex in examples}) == len(examples)
    assert all(ex.gold.strip() for ex in examples)
    if labels is not None:
        assert {normalize(ex.gold) for ex in examples} <= labels
        assert set(spec.labels or []) == labels
    if spec.fewshot.count and spec.fewshot.source is not None and not spec.fewshot.source.hf:
        shots = load_fewshots(spec, BENCH, SHARED)
        assert len(shots) == spec.fewshot.count
        assert all(s.gold.strip() for s in shots)


PREAMBLE = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"


@pytest.mark.parametrize("data", _roots("jamp"))
def test_jamp_prompt_is_llm_jp_eval_format(data: Path) -> None:
    spec = _spec_on("jamp", data)
    ex = load_examples(spec, BENCH, data, limit=1)[0]
    assert ex.gold == "entailment"
    assert render_prompt(spec, ex, []) == (
        PREAMBLE + "\n\n### 指示:\n前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
        "それ以外には何も含めないことを厳守してください。\n\n制約：\n"
        "- 前提から仮説が、時間関係上導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
        "- そのいずれでもない場合はneutralと出力"
        "\n\n### 入力:\n前提：ボブは選挙に撤回を表明している。\n仮説：ボブは現在選挙に撤回を表明している。\n\n### 応答:\n"
    )


@pytest.mark.parametrize("data", _roots("niilc"))
def test_niilc_prompt_and_joined_answers(data: Path) -> None:
    spec = _spec_on("niilc", data)
    examples = load_examples(spec, BENCH, data)
    assert render_prompt(spec, examples[0], []) == (
        PREAMBLE + "\n\n### 指示:\n質問に対する答えを出力してください。回答の他には何も含めないことを厳守してください。"
        "答えが複数の場合、コンマ（,）で繋げてください。\n\n### 入力:\n質問：初めてノート型パソコンを作ったメーカーは？\n\n### 応答:\n"
    )
    assert any("," in ex.gold for ex in examples) and all(ex.gold != "-" for ex in examples)


@_needs("mawps")
def test_mawps_prompt_split_and_shots() -> None:
    spec = _spec("mawps")
    ex = load_examples(spec, BENCH, SHARED, limit=1)[0]
    assert (ex.id, ex.gold) == ("927", "4")  # first item of llm-jp-eval's seed-42 test half
    assert render_prompt(spec, ex, []).endswith(
        "### 入力:\n問題：大山のバナナコレクションには36本のバナナがあります。バナナを9つのグループに分けると、"
        "それぞれのグループの大きさはどのくらいになりますか？\n\n### 応答:\n"
    )
    assert [s.gold for s in load_fewshots(spec, BENCH, SHARED)] == ["126", "0.2", "3", "45"]


def test_mgsm_cot_pattern_takes_the_last_number() -> None:
    from pytest_jallm.answers import extract_answer
    from pytest_jallm.metrics import get_metric

    spec = _spec("mgsm_cot")
    out = "卵は16個。16-3-4=9個を売る。9×2=18ドル。\n\n答えは1,018ドルです。"
    pred = normalize(extract_answer(out, spec.answer_pattern))
    assert pred == "1,018"
    assert get_metric("mathematical_equivalence")([pred], ["1018"], [{}]).score == 1.0


@_needs("jmmlu")
def test_jmmlu_medical_answers_with_choice_text_for_gestalt() -> None:
    from pytest_jallm.metrics import get_metric

    spec = _spec("jmmlu_medical")
    examples = load_examples(spec, BENCH, SHARED)
    first = next(ex for ex in examples if ex.id == "anatomy-0")
    assert first.gold == "頭蓋底の伸展不全による上顎骨の後退"
    assert render_prompt(spec, first, []).endswith(
        "### 入力:\n問題：「皿状顔貌(dished face)」の輪郭は、何に関係していることが多いか？\n選択肢：\n"
        "A. 先端巨大症による顆部軟骨の再活性化による下顎の突出\nB. 頭蓋底の伸展不全による上顎骨の後退\n"
        "C.  水頭症による前頭骨の肥大\nD.  上顎洞の発達不全\n\n### 応答:\n"
    )
    pred = normalize("B. 頭蓋底の伸展不全による上顎骨の後退です")
    assert get_metric("gestalt_accuracy")([pred], [normalize(first.gold)], [first.context]).score == 1.0


# (c) loaders on tiny files: what they read, and errors that name file/row/field -------------


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("loader", "name", "text", "options", "expected"),
    [
        ("tsv-plain", "t.tsv", "a\tb\tc\nx\ty\tz\nonly\n", {}, ["t.tsv", "row 1", "field 'b'"]),
        ("json-records", "j.jsonl", '{"q": 1}\n{"q": \n', {}, ["j.jsonl", "line 2", "not valid JSON"]),
        ("json-records", "a.json", '[{"answers": []}]', {"first": ["answers"]}, ["a.json", "row 0", "field 'answers'"]),
        ("jsem", "J.xml", '<jsem-dataset><problem jsem_id="1" answer="yes"><p><script>P</script></p></problem></jsem-dataset>', {},
         ["J.xml", "row 0", "field 'h.script'"]),
        ("niilc", "n.xml", '<questions><question id="q1"><answers><answer>A</answer></answers></question></questions>', {},
         ["n.xml", "row 0 (id q1)", "field 'text'"]),
        ("mawps", "m.json", '[{"idx": 0, "question": "問題：x\\n解答："}]', {}, ["m.json", "row 0", "field 'answer'"]),
        ("mcq", "c.csv", "q,1,2,3,4,E\n", {"columns": ["question", "A", "B", "C", "D", "answer"], "choice_columns": ["A", "B", "C", "D"]},
         ["c.csv", "row 0", "field 'answer'"]),
        ("mcq", "s.csv", "q,1,2\n", {"columns": ["question", "A", "B", "C", "D", "answer"], "choice_columns": ["A", "B", "C", "D"]},
         ["s.csv", "row 0", "field 'C'"]),
        ("igakuqa", "112-A.jsonl", '{"problem_id": "112A1", "problem_text": "x", "choices": ["a","b","c","d","e"]}\n', {},
         ["112-A.jsonl", "row 0", "field 'answer'"]),
        ("wac", "d.knp", "EOS\n", {"task": "srl"}, ["wac loader", "option 'task' is 'srl'"]),
    ],
)
def test_loader_errors_name_file_row_and_field(tmp_path, loader, name, text, options, expected) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError) as err:
        LOADERS[loader]([path], options)
    for part in expected:
        assert part in str(err.value)


def test_igakuqa_loader_filters_images_keeps_multi_answers_and_joins_translation(tmp_path) -> None:
    ja = [
        {"problem_id": "1", "problem_text": "問1", "choices": list("ABCDE"), "text_only": True, "answer": ["b"]},
        {"problem_id": "2", "problem_text": "写真を別に示す。", "choices": list("ABCDE"), "text_only": False, "answer": ["a"]},
        {"problem_id": "3", "problem_text": "2つ選べ。", "choices": list("VWXYZ"), "text_only": True, "answer": ["a", "e"]},
        {"problem_id": "4", "problem_text": "計算せよ。", "choices": [], "text_only": True, "answer": ["3"]},
    ]
    en = [{"problem_id": p["problem_id"], "problem_text_en": f"Q{p['problem_id']}", "choices_en": [c.lower() for c in p["choices"]],
           "answer": p["answer"]} for p in ja]
    path = _write(tmp_path, "116-A.jsonl", "\n".join(json.dumps(r) for r in ja))
    _write(tmp_path, "116-A_translate.jsonl", "\n".join(json.dumps(r) for r in en))
    rows = LOADERS["igakuqa"]([path], {})
    assert [(r["id"], r["answer_text"]) for r in rows] == [("1", ["B"]), ("3", ["V", "Z"])]
    rows_en = LOADERS["igakuqa"]([path], {"language": "en"})
    assert [(r["question"], r["answer_text"], r["choices"][0]) for r in rows_en] == [("Q1", ["b"], "a"), ("Q3", ["v", "z"], "v")]


def test_alt_and_wikicorpus_loaders_on_tiny_archives(tmp_path) -> None:
    z = tmp_path / "ALT-Parallel-Corpus-20191206.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ALT-Parallel-Corpus-20191206/data_ja.txt", "SNT.7.1\t猫。\nSNT.7.2\t犬。\nSNT.8.3\t鳥。\nSNT.7.9\n")
        zf.writestr("ALT-Parallel-Corpus-20191206/data_en.txt", "SNT.7.1\tCat.\nSNT.7.2\tDog.\nSNT.8.3\tBird.\n")
    split = _write(tmp_path, "URL-test.txt", "URL.7\thttp://example/7\n")
    rows = LOADERS["alt"]([str(z), split], {"copy": {"source": "en"}})
    assert [(r["id"], r["ja"], r["source"]) for r in rows] == [("SNT.7.1", "猫。", "Cat."), ("SNT.7.2", "犬。", "Dog.")]

    xml = ('<art><par><sen><j>京都 & 奈良</j><e type="check">Kyoto & Nara</e></sen>'
           '<sen><j>寺</j><e type="check">Temple</e></sen></par></art>')
    tgz = tmp_path / "wiki.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        data = xml.encode("utf-8")
        info = tarfile.TarInfo("wiki/BDS/BDS00001.xml")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    rows = LOADERS["wikicorpus"]([str(tgz)], {})
    assert [(r["ja"], r["en"]) for r in rows] == [("京都 & 奈良 寺", "Kyoto & Nara Temple")]
