"""Cut tests/fixtures/mt-bench-history/ from a clone of Stability-AI/FastChat.

    python scripts/make_mt_bench_history.py --fastchat PATH/TO/FastChat/.git

The GPT-4 judgments recorded on the jp-stable branch were made in August and September 2023, with
the judge prompt, question and reference-answer files of those days. This keeps, for the questions
of the real-format slice (tests/fixtures/real-slices/japanese-mt-bench), those three files as they
were at the two commits that recorded judgments, line for line as written there, so that a test
can render the judge prompts with them and compare with the recorded ones. Re-running it
reproduces the fixture exactly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "tests" / "fixtures" / "real-slices" / "japanese-mt-bench"
DATA = "fastchat/llm_judge/data"
# commit -> what it recorded
COMMITS = {
    "aed16da2f75ba1374ad4f64a8323aa9fed22c6b9": "2023-08-20, 'enable evaluating ja llm w/ japanese mt bench': "
    "the judgments of japanese-stablelm-instruct-alpha-7b and the jslma-7b-ja-orca models",
    "aedb44e0b588bbd764d19435ceb62df248aeabd6": "2023-09-14, 'add latest model answers and judgments': the "
    "judgments of the mixv3_5btok models, after fd01e11 added the language sentence to the judge prompt",
}
FILES = ("judge_ja_prompts.jsonl", "japanese_mt_bench/question.jsonl", "japanese_mt_bench/reference_answer/gpt-4.jsonl")


def show(git_dir: Path, commit: str, path: str) -> str:
    out = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{DATA}/{path}"], capture_output=True,
                         check=True)
    return out.stdout.decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastchat", required=True, help="git directory of a Stability-AI/FastChat clone")
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "mt-bench-history"))
    args = parser.parse_args(argv)
    git_dir, out = Path(args.fastchat), Path(args.out)
    wanted = {json.loads(line)["question_id"] for line in
              (SLICE / "japanese_mt_bench" / "question_full.jsonl").read_text(encoding="utf-8").splitlines()}
    listing = []
    for commit in COMMITS:
        for rel in FILES:
            text = show(git_dir, commit, rel)
            if rel.startswith("japanese_mt_bench/"):
                text = "".join(line for line in text.splitlines(keepends=True)
                               if line.strip() and int(json.loads(line)["question_id"]) in {int(q) for q in wanted})
            target = out / commit / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="")
            listing.append(f"- `{commit}/{rel}`")
    shutil.copyfile(SLICE / "LICENSE", out / "LICENSE")
    commits = "\n".join(f"- `{c}`: {what}" for c, what in COMMITS.items())
    (out / "README.md").write_text(
        "# Japanese MT-Bench files as they were when the recorded judgments were made\n\n"
        "From https://github.com/Stability-AI/FastChat (branch jp-stable), `fastchat/llm_judge/data/`, licence "
        "Apache-2.0 (the upstream licence file is beside this README: `LICENSE`), at the two commits that added "
        "the GPT-4 judgments of `model_judgment/gpt-4_single.jsonl`:\n\n"
        f"{commits}\n\n"
        "The judge prompt file is whole; the question and reference-answer files keep, as written and in file "
        "order, the lines of the questions in `tests/fixtures/real-slices/japanese-mt-bench`. Rendering the judge "
        "prompts with these files reproduces every recorded prompt of the slice "
        "(`tests/test_mt_bench.py`); with today's files only some match, the rest having been recorded with the "
        "older wording. Made by `scripts/make_mt_bench_history.py`; not for evaluation.\n\n"
        + "\n".join(listing) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
