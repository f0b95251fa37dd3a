"""Bad specs, thresholds and data: a clear error naming the file, the key or row and what was
expected -- never a crash, a bare KeyError or a traceback.

The spec errors already covered in tests/test_plugin.py (unknown key, unknown metric, missing
file, bad category, wrong scalar type, unmapped placeholder, malformed YAML, min_score 150 in a
threshold file) are not repeated here.
"""

from __future__ import annotations

import fnmatch
import json
import zipfile
from pathlib import Path

import pytest

from pytest_jallm.baseline import ThresholdError, load_threshold_file
from pytest_jallm.data import DataError, load_rows
from pytest_jallm.spec import Source

from .toy import SCRIPTED, write_script, write_suite

BENCHES = {"toy_a": 6, "toy_b": 6}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    write_suite(pytester.path, BENCHES)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    script = write_script(pytester.path, BENCHES)
    return pytester.runpytest("benchmarks", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache", *args)


def _no_crash(result: pytest.RunResult) -> None:
    out = result.stdout.str() + result.stderr.str()
    for crash in ("Traceback", "KeyError", "INTERNALERROR", "def runtest"):
        assert crash not in out, out[-3000:]


# --- specs: collection errors ------------------------------------------------------------

SPEC_CASES = [
    ("missing-required", lambda s: s.replace("metrics: [exact_match]\n", ""), "*toy_a.yaml: key 'metrics': required key is missing*"),
    ("list-wrong-type", lambda s: s.replace('labels: ["0", "1", "2"]', "labels: 5"), "*toy_a.yaml: key 'labels': *valid list*"),
    ("threshold-above-100", lambda s: s + "thresholds: {min_score: 150}\n",
     "*toy_a.yaml: key 'thresholds.min_score': *less than or equal to 100*"),
    ("ooc-threshold-negative", lambda s: s + "thresholds: {max_ooc_rate: -1}\n",
     "*toy_a.yaml: key 'thresholds.max_ooc_rate': *greater than or equal to 0*"),
    ("not-a-mapping", lambda s: "- name: toy_a\n- category: MC\n", "*toy_a.yaml: key '<top level>': expected a mapping*list*"),
    ("empty-file", lambda s: "", "*toy_a.yaml: key '<top level>': expected a mapping*NoneType*"),
    ("bad-regex", lambda s: s + "answer_pattern: '([0-9]'\n", "*toy_a.yaml: key 'answer_pattern': *not a valid regular expression*"),
    ("regex-no-group", lambda s: s + "answer_pattern: '[0-9]'\n", "*toy_a.yaml: key 'answer_pattern': *capturing group*"),
    ("unknown-template", lambda s: s + "prompt_template: nope\n", "*toy_a.yaml: key 'prompt_template': unknown template 'nope'*"),
    ("two-sources", lambda s: s.replace("source: {path: data/toy_a.jsonl}", "source: {path: data/toy_a.jsonl, hf: x/y, split: test}"),
     "*toy_a.yaml: key 'source': *exactly one of 'hf', 'url' or 'path'*"),
    ("fewshot-without-source", lambda s: s + "fewshot: {count: 2}\n", "*toy_a.yaml: key 'fewshot': *needs a 'source'*"),
    ("max-tokens-zero", lambda s: s.replace("max_new_tokens: 2", "max_new_tokens: 0"),
     "*toy_a.yaml: key 'max_new_tokens': *greater than or equal to 1*"),
    ("nested-unknown-key", lambda s: s.replace("source: {path: data/toy_a.jsonl}", "source: {path: data/toy_a.jsonl, fromat: jsonl}"),
     "*toy_a.yaml: key 'source.fromat': unknown key*"),
    ("duplicate-key", lambda s: s + "max_new_tokens: 5\n", "*toy_a.yaml: key 'max_new_tokens': duplicate key*"),
]


def test_bad_specs_are_collection_errors_naming_file_key_and_expectation(suite: pytest.Pytester) -> None:
    """One collection run over a directory of broken specs: each is its own collection error."""
    bench = suite.path / "benchmarks"
    good = (bench / "toy_a.yaml").read_text(encoding="utf-8")
    for case_id, edit, _ in SPEC_CASES:
        name = f"bad_{case_id.replace('-', '_')}"
        (bench / f"{name}.yaml").write_text(edit(good.replace("name: toy_a", f"name: {name}")), encoding="utf-8")
    sjis = good.replace("name: toy_a", "name: bad_sjis").encode("utf-8").replace("正しい".encode(), "正しい".encode("shift_jis"))
    (bench / "bad_sjis.yaml").write_bytes(sjis)
    (bench / "copy.yaml").write_text(good, encoding="utf-8")  # same `name: toy_a` as toy_a.yaml

    result = suite.runpytest("benchmarks", "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    for case_id, _, expected in SPEC_CASES:
        name = f"bad_{case_id.replace('-', '_')}"
        result.stdout.fnmatch_lines([f"*ERROR collecting benchmarks/{name}.yaml*", expected.replace("toy_a.yaml", f"{name}.yaml")])
    result.stdout.fnmatch_lines(["*ERROR collecting benchmarks/bad_sjis.yaml*", "*bad_sjis.yaml: key '<file>': not UTF-8 text*"])
    result.stdout.fnmatch_lines(["*toy_a.yaml: key 'name': benchmark name 'toy_a' is already used by *copy.yaml"])
    result.stdout.fnmatch_lines([f"*{len(SPEC_CASES) + 2} errors*"])
    _no_crash(result)


# --- threshold files: every benchmark fails with the file, key and expectation -------------

THRESHOLD_CASES = [
    ("default-above-100", "defaults: {max_ooc_rate: 101}\n", "*model.yaml: key 'defaults.max_ooc_rate': *less than or equal to 100*"),
    ("wrong-type", "benchmarks:\n  toy_a: {min_score: high}\n", "*model.yaml: key 'benchmarks.toy_a.min_score': *valid number*"),
    ("unknown-key", "benchmarks:\n  toy_a: {min_scor: 50}\n", "*model.yaml: key 'benchmarks.toy_a.min_scor': unknown key*"),
    ("malformed-yaml", "benchmarks: [\n", "*model.yaml: key '<yaml>': malformed YAML*"),
    ("not-a-mapping", "- 1\n- 2\n", "*model.yaml: key '<top level>': expected a mapping*"),
    ("alpha-out-of-range", "defaults: {alpha: 1.5}\n", "*model.yaml: key 'defaults.alpha': *less than 1*"),
    # issue 14, item 11: NaN passes no comparison, so it must not be reported as "must be <= 100".
    ("nan", "benchmarks:\n  toy_a: {min_score: .nan}\n", "*model.yaml: key 'benchmarks.toy_a.min_score': must be a number (got nan)"),
    ("duplicate-key", "benchmarks:\n  toy_a: {min_score: 50}\n  toy_a: {min_score: 5}\n", "*model.yaml: key 'toy_a': duplicate key at line 3*"),
]


def test_bad_threshold_files_name_file_key_and_expectation(tmp_path: Path) -> None:
    for case_id, text, expected in THRESHOLD_CASES:
        path = tmp_path / "model.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ThresholdError) as err:
            load_threshold_file(path)
        assert fnmatch.fnmatch(str(err.value), expected), (case_id, str(err.value))


def test_bad_threshold_file_fails_every_benchmark_with_its_message(suite: pytest.Pytester) -> None:
    (suite.path / "thresholds").mkdir()
    (suite.path / "thresholds" / "model.yaml").write_text("benchmarks:\n  toy_a: {min_score: 101}\n", encoding="utf-8")
    result = _run(suite)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*model.yaml: key 'benchmarks.toy_a.min_score': *less than or equal to 100*"])
    _no_crash(result)


def test_usage_errors_are_clear(suite: pytest.Pytester) -> None:
    result = suite.runpytest("benchmarks", "--jallm-backend", "openai", "--model", "m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-backend openai needs --jallm-base-url*"])
    result = suite.runpytest("benchmarks", "--jallm-meta", "oops")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-meta 'oops': expected KEY=VALUE*"])


# --- data: reported with the file and the row --------------------------------------------


def _rows() -> list[dict]:
    return [{"qid": f"toy_a-{i}", "question": f"toy_aの問題{i}番", "c0": "いぬ", "c1": "ねこ", "c2": "とり", "label": i % 3} for i in range(6)]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _without(i: int, key: str) -> bytes:
    rows = _rows()
    del rows[i][key]
    return _jsonl(rows)


def _with(i: int, **values) -> bytes:
    rows = _rows()
    rows[i].update(values)
    return _jsonl(rows)


DATA_CASES = [
    ("missing-field", _without(3, "question"), "*toy_a.jsonl: row 3: column 'question' (mapped as 'question') is missing or null*"),
    ("missing-answer", _without(2, "label"), "*toy_a.jsonl: row 2: column 'label' (mapped as 'answer') is missing or null*"),
    ("null-id", _with(4, qid=None), "*toy_a.jsonl: row 4: column 'qid' (mapped as 'id') is missing or null*"),
    ("empty-answer", _with(1, label=""), "*toy_a.jsonl: row 1: column 'label' (mapped as 'answer') is empty*"),
    ("blank-id", _with(5, qid="  "), "*toy_a.jsonl: row 5: column 'qid' (mapped as 'id') is empty*"),
    ("duplicate-id", _with(5, qid="toy_a-0"), "*toy_a.jsonl: row 5: duplicate id 'toy_a-0' (first seen at row 0)*"),
    ("non-utf8", _jsonl(_rows()[:3]) + '{"qid": "x", "question": "'.encode() + "問題".encode("shift_jis") + b'", "label": 0}\n',
     "*toy_a.jsonl: line 4: not valid UTF-8*"),
    ("empty-file", b"", "*toy_a: source *toy_a.jsonl has no rows*"),
    ("blank-lines-only", b"\n\n  \n", "*toy_a: source *toy_a.jsonl has no rows*"),
    ("malformed-json", _jsonl(_rows()[:2]) + b'{"qid": "x",\n', "*toy_a.jsonl: line 3: not valid JSON (Expecting property name*"),
    ("malformed-mid-line", _jsonl(_rows()[:1]) + b'{"qid": "x" "label": 1}\n' + _jsonl(_rows()[2:]),
     "*toy_a.jsonl: line 2: not valid JSON (Expecting ',' delimiter, column 13)*"),
    ("non-object-line", _jsonl(_rows()[:3]) + b'["toy_a-9", 1]\n' + _jsonl(_rows()[4:]),
     "*toy_a.jsonl: line 4: an array, but JSON Lines needs one JSON object per line*"),
    ("label-outside-labels", _with(0, label=7), "*toy_a.jsonl: item 'toy_a-0': gold answer '7' is not in the spec's 'labels' (0, 1, 2)*"),
]


def _bad_benchmark(root: Path, name: str, filename: str, content: bytes) -> None:
    bench = root / "benchmarks"
    spec = (bench / "toy_a.yaml").read_text(encoding="utf-8")
    spec = spec.replace("name: toy_a", f"name: {name}").replace("data/toy_a.jsonl", f"data/{filename}")
    (bench / f"{name}.yaml").write_text(spec, encoding="utf-8")
    (bench / "data" / filename).write_bytes(content)


def test_bad_data_fails_only_that_benchmark_naming_file_and_row(suite: pytest.Pytester) -> None:
    """One run over many benchmarks, each with one problem in its data file (JSONL, CSV, TSV, JSON)."""
    cases = [(c[0].replace("-", "_"), f"{c[0]}.jsonl", c[1], c[2].replace("toy_a.jsonl", f"{c[0]}.jsonl").replace("toy_a:", f"{c[0].replace('-', '_')}:"))
             for c in DATA_CASES]
    cases += [(c[0].replace("-", "_"), f"{c[0]}{c[1]}", c[2], c[3].replace("d.", f"{c[0]}.")) for c in TABLE_CASES]
    for name, filename, content, _ in cases:
        _bad_benchmark(suite.path, name, filename, content)
    result = _run(suite, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=len(cases), passed=2)  # toy_a and toy_b are unaffected
    for name, _, _, expected in cases:
        result.stdout.fnmatch_lines([f"*benchmark {name} *", expected])
    _no_crash(result)


TABLE_CASES = [
    ("csv-short-row", ".csv", b"qid,question,c0,c1,c2,label\nq0,a,x,y,z,0\nq1,b,x,y\n", "*d.csv: row 1: column 'label' (mapped as 'answer') is empty*"),
    ("csv-non-utf8", ".csv", b"qid,question,c0,c1,c2,label\nq0,a,x,y,z,0\nq1,\x82\xa0,x,y,z,1\n", "*d.csv: line 3: not valid UTF-8*"),
    ("csv-header-only", ".csv", b"qid,question,c0,c1,c2,label\n", "*source *d.csv has no rows*"),
    ("tsv-duplicate-id", ".tsv", b"qid\tquestion\tc0\tc1\tc2\tlabel\nq0\ta\tx\ty\tz\t0\nq0\tb\tx\ty\tz\t1\n", "*d.tsv: row 1: duplicate id 'q0'*"),
    ("tsv-non-utf8", ".tsv", b"qid\tquestion\tc0\tc1\tc2\tlabel\nq0\t\xff\tx\ty\tz\t0\n", "*d.tsv: line 2: not valid UTF-8*"),
    ("json-missing-answer", ".json", b'[{"qid": "q0", "question": "a", "c0": "x", "c1": "y", "c2": "z"}]', "*d.json: row 0: column 'label' (mapped as 'answer') is missing*"),
]


# --- named loaders: non-UTF-8 bytes name the file -------------------------------------------

SJIS = "問題".encode("shift_jis")


def _loader_file(tmp_path: Path, fmt: str) -> tuple[list[str], dict]:
    """A file for loader `fmt` holding Shift_JIS bytes where UTF-8 text belongs."""
    def w(name: str, data: bytes) -> str:
        (tmp_path / name).write_bytes(data)
        return str(tmp_path / name)

    if fmt == "tsv-plain":
        return [w("bad.tsv", b"id\tq\n1\t" + SJIS + b"\n")], {}
    if fmt == "json-records":
        return [w("bad.jsonl", b'{"q": "' + SJIS + b'"}\n')], {}
    if fmt in ("jsem", "niilc"):
        return [w("bad.xml", b'<?xml version="1.0" encoding="utf-8"?><r><problem answer="yes"><p><script>' + SJIS + b"</script></p></problem></r>")], {}
    if fmt == "mawps":
        return [w("bad.json", b'[{"question": "' + SJIS + b'", "answer": 1}]')], {}
    if fmt == "chabsa":
        return [w("bad.json", b'{"sentences": [{"sentence": "' + SJIS + b'"}]}')], {}
    if fmt == "mcq":
        return [w("bad.csv", b"question,A,B,answer\n" + SJIS + b",x,y,A\n")], {"choice_columns": ["A", "B"]}
    if fmt == "igakuqa":
        return [w("116-A.jsonl", b'{"problem_id": "1", "problem_text": "' + SJIS + b'"}\n')], {}
    if fmt == "squad":
        return [w("bad.json", b'{"data": [{"title": "' + SJIS + b'"}]}')], {}
    if fmt == "wac":
        return [w("bad.knp", b"# S-ID:1\n* -1D\n" + SJIS + b" x\nEOS\n")], {"task": "reading"}
    if fmt == "alt":
        z = tmp_path / "alt.zip"
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("data_ja.txt", b"SNT.1.1\t" + SJIS + b"\n")
            zf.writestr("data_en.txt", b"SNT.1.1\tx\n")
        return [str(z), w("URL-test.txt", b"URL.1\thttp://x\n")], {}
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["tsv-plain", "json-records", "jsem", "niilc", "mawps", "chabsa", "mcq", "igakuqa", "squad", "wac", "alt"])
def test_named_loaders_report_non_utf8_with_the_file(tmp_path: Path, fmt: str) -> None:
    files, options = _loader_file(tmp_path, fmt)
    source = Source(path=files, format=fmt, loader_options=options)
    with pytest.raises(DataError) as err:
        load_rows(source, tmp_path, None, f"{fmt}: source")
    message = str(err.value)
    assert any(Path(f).name in message for f in files), message
    assert "UTF-8" in message or "malformed XML" in message or "not readable JSON" in message, message
