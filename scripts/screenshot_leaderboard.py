"""Render the leaderboard's HTML page and take a screenshot of it in a real headless browser, to see how it
reads at a given width (the leaderboard must read well at 1,400 px: names and revisions wrap or are cut,
the per-benchmark table scrolls in its own box).

    python scripts/screenshot_leaderboard.py results/*.json -o /tmp/leaderboard.png [--width 1400]
    python scripts/screenshot_leaderboard.py --demo -o /tmp/leaderboard.png

`--demo` builds a leaderboard of made-up runs that stress the layout: a complete run, a better-scoring
run over fewer benchmarks with a failed gate, a run with errored benchmarks, a long organisation/model
name with a 40-character revision, and Japanese text. Needs Chromium and a CJK font (Debian:
`apt-get install chromium fonts-noto-cjk`); not a CI test: it prints where the PNG is, and a person
looks at it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_jallm.gate import Verdict, unscored_record  # noqa: E402
from pytest_jallm.reporting import leaderboard  # noqa: E402
from pytest_jallm.reporting.record import BenchmarkRecord  # noqa: E402
from pytest_jallm.reporting.results_json import read_results, results_document, run_meta  # noqa: E402

CATALOG = {"jamp": "NLI", "jnli": "NLI", "jsick": "NLI", "jemhopqa": "QA", "niilc": "QA", "jsquad": "RC",
           "jcommonsenseqa": "MC", "kuci": "MC", "chabsa": "EL", "wiki_ner": "FA", "mawps": "MR", "jmmlu": "HE",
           "jsts": "STS", "jmmlu_medical": "MED", "igakuqa_harness": "MED", "medqa_ja": "MED"}


def _run(model: str, scores: dict[str, float], *, revision: str, shots: int = 4, failed: tuple[str, ...] = (),
         errors: tuple[str, ...] = (), params_b: float | None = None) -> dict:
    pb = {"backend": "vllm", "backend_version": "0.11.0", "model_revision": revision, "num_fewshot": shots,
          "chat": False, "settings": {"dtype": "bfloat16"}}
    rows = []
    for name, score in scores.items():
        cat = CATALOG[name]
        extra = {"produced_by": pb, "scores": {"exact_match": score, "gestalt_match": min(100.0, score + 7)}}
        rows.append(BenchmarkRecord(
            name=name, category=cat, metric="exact_match", n=500, score=score, in_average=cat not in ("STS", "MED"),
            verdict=Verdict.REGRESSED if name in failed else Verdict.PASS,
            outcome="failed" if name in failed else "passed", extra=extra))
    for name in errors:
        rows.append(unscored_record(name, CATALOG[name], "exact_match", Verdict.ERROR,
                                    f"{name}: source: mirror '{name}/test.jsonl' not found under data dir /data/jallm "
                                    "(the local copy of https://example.org/very/long/path/to/the/file.jsonl)",
                                    error_kind="data"))
    given = {"params_b": params_b, "type": "instruction-tuned", "license": "apache-2.0"} if params_b else {}
    return results_document(rows, model=model, meta=run_meta(rows, model=model, fewshot_setting=shots, given=given))


def demo_runs() -> list[tuple[str, dict]]:
    full = {name: 40.0 + 3 * i % 37 for i, name in enumerate(CATALOG)}
    return [
        ("complete.json", _run("llm-jp/llm-jp-3-13b-instruct", full, revision="main", params_b=13.7)),
        ("complete-0shot.json", _run("llm-jp/llm-jp-3-13b-instruct", {k: v - 9 for k, v in full.items()},
                                     revision="main", shots=0, params_b=13.7)),
        ("long-name.json", _run("a-rather-long-organisation-name/日本語指示チューニング済みモデル-70b-instruct-v2.1-preview",
                                {k: v + 4 for k, v in full.items()}, params_b=70.6,
                                revision="0123456789abcdef0123456789abcdef01234567")),
        ("partial-better.json", _run("tiny-ja-weak", {"jnli": 93.3, "jcommonsenseqa": 95.0}, revision="local-sha256:1efd5f05",
                                     shots=0, failed=("jnli",))),
        ("with-errors.json", _run("org/errors-13b", {k: v + 10 for k, v in full.items() if k not in ("jsquad", "wiki_ner")},
                                  revision="v1.0", errors=("jsquad", "wiki_ner"), params_b=13.0)),
    ]


def screenshot(html_file: Path, png: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium fonts-noto-cjk")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-extensions", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png}",
                        html_file.as_uri()], check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="results JSON files (else --demo)")
    parser.add_argument("--demo", action="store_true", help="made-up runs that stress the layout")
    parser.add_argument("-o", "--output", default="leaderboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    parser.add_argument("--charts", action="store_true", help="include the charts (off by default: the tables matter)")
    args = parser.parse_args(argv)
    docs = demo_runs() if args.demo or not args.files else [(f, read_results(Path(f))) for f in args.files]
    entries = leaderboard.build(docs)
    page = leaderboard.render_html(entries, title="pytest-jallm leaderboard", charts=args.charts)
    out = Path(args.output).resolve()
    html_file = out.with_suffix(".html")
    html_file.write_text(page, encoding="utf-8")
    screenshot(html_file, out, args.width, args.height)
    print(f"{out} ({args.width}x{args.height}) from {html_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
