"""llm-jp-eval's source formats: JSeM, NIILC, MAWPS, chABSA, JMMLU, ALT and WikiCorpus."""

from __future__ import annotations

import csv
import io
import json
import random
import tarfile
import zipfile
from typing import Any, Mapping, Sequence

from ..errors import DataError
from . import register_loader
from .files import (
    Rows,
    bad_row,
    file_stem,
    local_path,
    parse_xml,
    postprocess,
    read_bytes,
    read_text,
    text_of,
)

# JSeM (XML, one file per phenomenon) -----------------------------------------------------------

_JSEM_SKIPPED = {"", "infelicitous", "unacceptable", "weakacceptable"}


@register_loader("jsem")
def load_jsem(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """JSeM problems: premise = the `<p><script>` texts joined, hypothesis = `<h><script>`.

    Each script's text is stripped of surrounding whitespace, as llm-jp-eval's XML reader
    (xmltodict) does; a few problems have a line break inside `<script>`.

    Problems whose answer is empty, infelicitous, unacceptable or weakacceptable are left
    out, as llm-jp-eval does. llm-jp-eval then shuffles all problems (seed 42) and cuts
    80/10/10: use ``shuffle_seed: 42`` and ``slice: [0.9, 1.0]`` for its test split.
    """
    rows: Rows = []
    for path in files:
        root = parse_xml(path, read_bytes(path))
        stem = file_stem(path)  # once per file: 16,000 problems
        for i, problem in enumerate(root.iter("problem")):
            answer = (problem.get("answer") or "").strip()
            if answer in _JSEM_SKIPPED:
                continue
            premises = problem.findall("p")
            if not premises:
                raise bad_row(path, f"{i} (jsem_id {problem.get('jsem_id')})", "p", "the problem has no premise <p>")
            texts = []
            for p in premises:
                script = p.find("script")
                if script is None:
                    raise bad_row(path, f"{i} (jsem_id {problem.get('jsem_id')})", "p.script", "a premise has no <script>")
                texts.append(text_of(script).strip())
            h = problem.find("h/script")
            if h is None:
                raise bad_row(path, f"{i} (jsem_id {problem.get('jsem_id')})", "h.script", "the hypothesis has no <script>")
            rows.append(
                {
                    # jsem_id repeats within a few files: the position is the unique part.
                    "id": f"{stem}-{i}",
                    "jsem_id": problem.get("jsem_id", ""),
                    "premise": "".join(texts),
                    "hypothesis": text_of(h).strip(),
                    "answer": answer,
                    "phenomenon": stem,
                    "_file": stem,
                    "_row": i,
                }
            )
    return postprocess(rows, options)


# NIILC (XML) -----------------------------------------------------------------------------------


@register_loader("niilc")
def load_niilc(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """NIILC questions: non-empty answers joined with ',' (llm-jp-eval), '-' (no answer) dropped."""
    rows: Rows = []
    for path in files:
        root = parse_xml(path, read_bytes(path))
        for i, q in enumerate(root.iter("question")):
            qid = q.get("id", str(i))
            text = q.find("text")
            if text is None:
                raise bad_row(path, f"{i} (id {qid})", "text", "the question has no <text>")
            answers_el = q.find("answers")
            if answers_el is None:
                raise bad_row(path, f"{i} (id {qid})", "answers", "the question has no <answers>")
            answers = [text_of(a).strip() for a in answers_el.findall("answer")]
            answer = ",".join(a for a in answers if a)
            if answer == "-":
                continue
            rows.append({"id": qid, "question": text_of(text), "answer": answer, "answers": answers,
                         "_file": file_stem(path), "_row": i})
    return postprocess(rows, options)


# MAWPS (nlp-waseda/chain-of-thought-ja-dataset) ------------------------------------------------

_QA_DELIMITER = "\n解答："


@register_loader("mawps")
def load_mawps(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """`test.json` rows (question before "\\n解答：", numeric answer) or, for
    `zero_shot_example.json`/`shot_example.json`, the worked examples with the number
    taken from "答えはNです。" (how llm-jp-eval builds its train split)."""
    rows: Rows = []
    for path in files:
        try:
            records = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON array of problems, got {type(records).__name__}")
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise bad_row(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            if "shot_example" in rec:
                parts = str(rec["shot_example"]).split(_QA_DELIMITER)
                if len(parts) != 2 or "答えは" not in parts[1]:
                    raise bad_row(path, i, "shot_example", "expected '問題：…\\n解答：…答えはNです。'")
                question, solution = parts
                answer = solution.split("答えは")[1].split("です。")[0]
                rows.append({"id": f"{file_stem(path)}-{i}", "question": question, "answer": answer,
                             "solution": solution.strip(), "_file": file_stem(path), "_row": i})
            else:
                for key in ("question", "answer"):
                    if key not in rec:
                        raise bad_row(path, i, key, "missing")
                question = str(rec["question"]).split(_QA_DELIMITER)[0]
                rows.append({"id": str(rec.get("idx", i)), "question": question, "answer": str(rec["answer"]),
                             "_file": file_stem(path), "_row": i})
    return postprocess(rows, options)


# chABSA (zip of per-company JSON) --------------------------------------------------------------


@register_loader("chabsa")
def load_chabsa(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """chABSA sentences with at least one opinion; gold is "target polarity" lines.

    Takes the published zip (or the JSON files themselves); files are read in sorted
    name order, as llm-jp-eval globs them, before ``shuffle_seed``/``slice``.
    """
    docs: list[tuple[str, bytes]] = []
    for path in files:
        if path.split("?")[0].endswith(".zip"):
            with zipfile.ZipFile(local_path(path)) as zf:
                for name in sorted(n for n in zf.namelist() if n.endswith(".json")):
                    docs.append((f"{path}!{name}", zf.read(name)))
        else:
            docs.append((path, read_bytes(path)))
    rows: Rows = []
    for where, data in sorted(docs, key=lambda d: d[0]):
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{where}: not readable JSON: {e}") from None
        for i, sentence in enumerate(doc.get("sentences", [])):
            if "sentence" not in sentence:
                raise bad_row(where, i, "sentence", "missing")
            lines = []
            for k, op in enumerate(sentence.get("opinions", [])):
                for key in ("target", "polarity"):
                    if key not in op:
                        raise bad_row(where, i, f"opinions.{k}.{key}", "missing")
                lines.append(f"{op['target']} {op['polarity']}")
            if not lines:
                continue
            rows.append({"id": f"{file_stem(where.split('!')[-1])}-{sentence.get('sentence_id', i)}",
                         "sentence": sentence["sentence"], "answer": "\n".join(lines), "_row": i})
    return postprocess(rows, options)


# JMMLU (nlp-waseda/JMMLU) as llm-jp-eval splits it ---------------------------------------------

_JMMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")
_JMMLU_SPLITS = ("test", "dev", "fewshot", "all")


@register_loader("jmmlu")
def load_jmmlu(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """JMMLU's header-less subject CSVs (question, A, B, C, D, answer letter), split as
    llm-jp-eval 1.3.0 splits them.

    Options: ``subject_order`` (file stems): the order the subjects are read in, which
    decides the split (llm-jp-eval's own list, not alphabetical); ``split_seed`` (42);
    ``fewshot_pool`` (32); ``split``: ``test``, ``dev``, ``fewshot`` or ``all``.
    One ``random.Random(split_seed)`` shuffles each subject in turn, its first half
    going to dev and the rest to test; then the dev and the test lists are shuffled.
    The few-shot pool is the first ``fewshot_pool/2`` of each; test and dev are the rest.
    ``split: all`` keeps every row in file order, unshuffled (7,097 rows, not
    llm-jp-eval's 3,541). Rows keep ``_file`` (subject) and ``_row`` (0-based row in it).
    """
    split = options.get("split", "test")
    if split not in _JMMLU_SPLITS:
        raise DataError(f"jmmlu loader: option 'split' is {split!r}; expected one of {', '.join(_JMMLU_SPLITS)}")
    order = options.get("subject_order")
    if order is not None:
        by_stem = {file_stem(f): f for f in files}
        unknown = sorted(set(by_stem) - set(order))
        if unknown:
            raise DataError(f"jmmlu loader: file(s) {', '.join(unknown)} are not in option 'subject_order'")
        files = [by_stem[name] for name in order if name in by_stem]
    subjects: list[Rows] = []
    for path in files:
        rows: Rows = []
        # Universal newlines, as llm-jp-eval opens the files: a "\r\n" inside a quoted
        # question becomes "\n" (two questions have one).
        text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
        for i, cells in enumerate(csv.reader(io.StringIO(text, newline=""))):
            if len(cells) != len(_JMMLU_COLUMNS):
                raise bad_row(path, i, "<row>", f"expected {len(_JMMLU_COLUMNS)} cells (question, A, B, C, D, answer), got {len(cells)}")
            row: dict[str, Any] = dict(zip(_JMMLU_COLUMNS, cells, strict=True))
            row.update(_file=file_stem(path), _row=i)
            rows.append(row)
        subjects.append(rows)
    if split == "all":
        return postprocess([r for rows in subjects for r in rows], options)
    seed = options.get("split_seed")
    if seed is None:
        raise DataError(f"jmmlu loader: split {split!r} needs option 'split_seed' (llm-jp-eval uses 42)")
    rng = random.Random(seed)
    dev: Rows = []
    test: Rows = []
    for rows in subjects:
        rng.shuffle(rows)
        dev += rows[: len(rows) // 2]
        test += rows[len(rows) // 2 :]
    rng.shuffle(dev)
    rng.shuffle(test)
    half = int(options.get("fewshot_pool", 32)) // 2
    chosen = {"test": test[half:], "dev": dev[half:], "fewshot": dev[:half] + test[:half]}[split]
    return postprocess(chosen, options)


# ALT parallel corpus (NICT) -------------------------------------------------------------------


@register_loader("alt")
def load_alt(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Asian Language Treebank ja-en pairs of one split, as llm-jp-eval builds them.

    Files: the `ALT-Parallel-Corpus-*.zip` and the split's `URL-<split>.txt` (article ids).
    Sentences of the split's articles present in both languages, with len(ja)+len(en) < 500,
    in split-file then sentence order. Rows: ``ja``, ``en``, ``id`` (SNT.<article>.<sentence>).
    """
    zips = [f for f in files if f.split("?")[0].endswith(".zip")]
    splits = [f for f in files if f.split("?")[0].endswith(".txt")]
    if len(zips) != 1 or len(splits) != 1:
        raise DataError(f"alt loader: expected one .zip and one URL-<split>.txt, got {list(files)}")
    with zipfile.ZipFile(local_path(zips[0])) as zf:
        texts = {}
        for lang in ("ja", "en"):
            name = next((n for n in zf.namelist() if n.endswith(f"data_{lang}.txt")), None)
            if name is None:
                raise DataError(f"{zips[0]}: no data_{lang}.txt inside")
            texts[lang] = _alt_sentences(f"{zips[0]}!{name}", zf.read(name).decode("utf-8"))
    rows: Rows = []
    for n, line in enumerate(read_text(splits[0]).splitlines(), 1):
        if not line.strip():
            continue
        tag = line.split("\t")[0]
        parts = tag.split(".")
        if len(parts) != 2:
            raise bad_row(splits[0], f"line {n}", "article id", f"expected 'URL.<id>', got {tag!r}")
        article = parts[1]
        ja, en = texts["ja"].get(article, {}), texts["en"].get(article)
        if en is None:
            continue
        for sid, en_text in en.items():
            if sid in ja and len(ja[sid]) + len(en_text) < 500:
                rows.append({"id": f"SNT.{article}.{sid}", "ja": ja[sid], "en": en_text, "_row": len(rows)})
    return postprocess(rows, options)


def _alt_sentences(where: str, text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if "\t" not in line:
            continue  # a few sentence ids carry no text
        tag, sentence = line.split("\t", 1)
        parts = tag.split(".")
        if len(parts) != 3:
            raise bad_row(where, f"line {n}", "sentence id", f"expected 'SNT.<article>.<sentence>', got {tag!r}")
        out.setdefault(parts[1], {})[parts[2]] = sentence.strip()
    return out


# Japanese-English Bilingual Corpus of Wikipedia's Kyoto Articles (NICT WikiCorpus) -----------


@register_loader("wikicorpus")
def load_wikicorpus(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Paragraph pairs from `wiki_corpus_2.01.tar.gz` (or loose XML files).

    Per paragraph: the `<sen>`'s `<j>` texts and `<e type="check">` texts joined by a space,
    pairs with len(ja)+len(en) < 500. llm-jp-eval shuffles the *files* (seed 42) and cuts
    80/10/10; here the file order is sorted by path before ``file_shuffle_seed`` and
    ``file_slice`` (llm-jp-eval walks the directory in filesystem order).
    """
    docs: list[tuple[str, bytes]] = []
    for path in files:
        p = path.split("?")[0]
        if p.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(local_path(path)) as tf:
                for m in tf.getmembers():
                    if m.isfile() and m.name.endswith(".xml"):
                        fh = tf.extractfile(m)
                        if fh is not None:
                            docs.append((f"{path}!{m.name}", fh.read()))
        else:
            docs.append((path, read_bytes(path)))
    docs.sort(key=lambda d: d[0])
    seed = options.get("file_shuffle_seed")
    if seed is not None:
        random.Random(seed).shuffle(docs)
    cut = options.get("file_slice")
    if cut is not None:
        n = len(docs)
        docs = docs[int(n * float(cut[0])) : int(n * float(cut[1]))]
    rows: Rows = []
    for where, data in docs:
        text = data.decode("utf-8", errors="replace").replace("&", "&amp;")
        root = parse_xml(where, text)
        for k, par in enumerate(root.findall("par")):
            ja, en = [], []
            for sen in par.findall("sen"):
                j, e = sen.find("j"), sen.find("e[@type='check']")
                if j is not None and e is not None and j.text is not None and e.text is not None:
                    ja.append(j.text)
                    en.append(e.text)
            ja_p, en_p = " ".join(ja), " ".join(en)
            if len(ja_p) + len(en_p) < 500:
                rows.append({"id": f"{file_stem(where.split('!')[-1])}-{k}", "ja": ja_p, "en": en_p, "_row": len(rows)})
    return postprocess(rows, options)


