"""Command line: `python -m pytest_jallm merge|leaderboard|schema|cache|prompts|data ...`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from .atomic import atomic_file, atomic_write_text
from .reporting.html import render_html
from .reporting.markdown import render_markdown
from .reporting.results_json import (
    ResultsError,
    merge_documents,
    other_failures_of,
    read_results,
    results_json_schema,
    rows_of,
    write_results,
)
from .reporting.terminal import render_terminal, run_status


def _read_all(files: list[str]) -> list[tuple[str, dict]]:
    return [(path, read_results(Path(path))) for path in files]


def _merge(args: argparse.Namespace) -> int:
    """Shard files -> one table and one verdict. Exit 1 when the gate failed, 2 when the files do not make one run."""
    try:
        doc = merge_documents(_read_all(args.files))
    except ResultsError as e:
        print(f"pytest-jallm merge: {e}", file=sys.stderr)
        return 2
    rows = rows_of(doc)
    model = doc.get("model")
    other = other_failures_of(doc)
    title = f"pytest-jallm: {model}"
    print(render_terminal(rows))
    ok, headline = run_status(rows, other)
    print(f"pytest-jallm: {'gate passed' if ok else 'gate failed'} — {headline}")
    if args.output:
        write_results(Path(args.output), rows, model=model, meta=doc["meta"], other_failures=other)
    if args.markdown:
        atomic_write_text(Path(args.markdown), render_markdown(rows, title=title, meta=doc["meta"], other_failures=other))
    if args.html:
        atomic_write_text(Path(args.html), render_html(rows, title=title, meta=doc["meta"], other_failures=other))
    failed = sorted(r.name for r in rows if r.failed)
    if failed or other:
        print(f"gate failed: {', '.join(failed + other.lines())}", file=sys.stderr)
        return 1
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from .reporting import leaderboard

    try:
        entries = leaderboard.build(_read_all(args.files))
    except ResultsError as e:
        print(f"pytest-jallm leaderboard: {e}", file=sys.stderr)
        return 2
    print(leaderboard.render_terminal(entries))
    if args.markdown:
        atomic_write_text(Path(args.markdown), leaderboard.render_markdown(entries, title=args.title))
    if args.html:
        atomic_write_text(Path(args.html), leaderboard.render_html(entries, title=args.title))
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(results_json_schema(), indent=2, ensure_ascii=False))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from .cache import CacheError, GenerationCache

    try:
        cache = GenerationCache(Path(args.path))
    except CacheError as e:  # damaged or unusable: the message says what to do
        print(f"pytest-jallm cache: {e}", file=sys.stderr)
        return 2
    try:
        if args.action == "clear":
            print(f"deleted {cache.clear(model=args.model)} cached generations from {args.path}")
        else:
            for key, value in cache.stats().items():
                print(f"{key}: {value}")
    finally:
        cache.close()
    return 0


def _spec_files(args: list[str]) -> list[Path]:
    """Spec files in the order a pytest run collects them: explicit files as given, a
    directory's entries sorted by name (files and subdirectories interleaved, as pytest does)."""
    out: list[Path] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):  # pytest does not recurse into these either
                continue
            if entry.is_dir():
                walk(entry)
            elif entry.suffix in (".yaml", ".yml"):
                out.append(entry)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            walk(path)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{arg}: no such spec file or directory")
    return out


def _prompts(args: argparse.Namespace) -> int:
    """The exact requests of a run, as JSON Lines, through evaluation.prepare (the run's own code)."""
    from .data import DataError, data_dir_from_env
    from .evaluation import RunSettings, prepare, request_records, resolve_mode
    from .sources import DataConfig
    from .spec import SpecError
    from .specfile import load_spec, with_harness_template

    try:
        data_config = DataConfig.from_options(None, args.data_cache, args.url_map, **_download_limits(args))
    except ValueError as e:
        print(f"pytest-jallm prompts: {e}", file=sys.stderr)
        return 2
    chat, num_fewshot, _ = resolve_mode(args.mode, chat=args.chat, num_fewshot=args.num_fewshot, reasoning=None)
    settings = RunSettings(model="", data_dir=data_dir_from_env(args.data_dir), data_config=data_config, limit=args.limit,
                           chat=chat, num_fewshot=num_fewshot, shuffle_choices=args.shuffle_choices, mode=args.mode)
    seen: set[str] = set()
    failed: list[str] = []
    try:
        paths = _spec_files(args.specs)
    except OSError as e:
        print(f"pytest-jallm prompts: {e}", file=sys.stderr)
        return 2
    try:
        with contextlib.ExitStack() as stack:
            out: Any = sys.stdout
            if args.output:  # written whole or not at all (atomic): an interrupted run leaves no half file
                out = io.TextIOWrapper(stack.enter_context(atomic_file(Path(args.output))), encoding="utf-8")
                stack.callback(out.detach)  # runs first: flushes into the temp file, which atomic_file then renames
            for path in paths:
                # One benchmark whose spec or data is broken is reported, and the others are still written.
                try:
                    spec = load_spec(path)
                    if args.med_template:
                        spec = with_harness_template(spec, args.med_template, str(path))
                    if spec.name in seen:
                        continue
                    seen.add(spec.name)
                    prep = prepare(spec, path, settings)
                except (SpecError, DataError) as e:
                    message = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
                    failed.append(path.name)
                    print(f"pytest-jallm prompts: {as_own_flags(message, args.parser)}", file=sys.stderr)
                    continue
                for record in request_records(prep):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as e:
        print(f"pytest-jallm prompts: {e}", file=sys.stderr)
        return 2
    if failed:
        print(f"pytest-jallm prompts: {len(failed)} of {len(paths)} spec(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def as_own_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """A message written for a pytest run, with a subcommand's own flags: each of its options says which
    pytest option it stands for ("as --jallm-data-dir"), so the table comes from the parser itself."""
    table = {}
    for action in parser._actions:
        match = re.match(r"as (--jallm-[a-z-]+)", action.help or "")
        if match and action.option_strings:
            table[match.group(1)] = action.option_strings[-1]
    return re.sub(r"--jallm-[a-z-]+", lambda m: table.get(m.group(0), m.group(0)), message)


def _data(args: argparse.Namespace) -> int:
    """`data fetch`: every selected source into a --jallm-data-dir layout; `data verify`: check one."""
    from . import datadir
    from .data import DataError
    from .sources import DataConfig
    from .spec import SpecError

    try:
        if args.action == "verify":
            specs = _spec_files(args.specs)
            problems = datadir.verify(Path(args.dir), specs)
            for p in problems:
                print(p, file=sys.stderr)
            if problems:
                print(f"pytest-jallm data verify: {len(problems)} problem(s) in {args.dir}", file=sys.stderr)
                return 1
            print(f"pytest-jallm data verify: {args.dir} is intact")
            return 0
        specs = _spec_files(args.specs or (["benchmarks"] if Path("benchmarks").is_dir() else []))
        if not specs:
            print("pytest-jallm data fetch: no specs given (and no benchmarks/ folder here)", file=sys.stderr)
            return 2
        config = DataConfig.from_options(None, args.cache, args.url_map, **_download_limits(args))
        count, failures = datadir.fetch(specs, Path(args.to), config)
    except (OSError, SpecError, DataError, ValueError) as e:
        print(f"pytest-jallm data {args.action}: {e}", file=sys.stderr)
        return 2
    print(f"pytest-jallm data fetch: {count} files and {datadir.MANIFEST} in {args.to}; "
          f"run with --jallm-data-dir {args.to}")
    if failures:
        print(f"pytest-jallm data fetch: {len(failures)} source(s) could not be fetched:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def _add_download_options(parser: argparse.ArgumentParser) -> None:
    from .sources import DEFAULT_DOWNLOAD_TIMEOUT_S, DEFAULT_MAX_DOWNLOAD_MB, DEFAULT_STALL_TIMEOUT_S

    parser.add_argument("--download-timeout", type=float, default=None, metavar="S",
                        help=f"as --jallm-download-timeout: seconds one file may take (default {DEFAULT_DOWNLOAD_TIMEOUT_S:g})")
    parser.add_argument("--stall-timeout", type=float, default=None, metavar="S",
                        help=f"as --jallm-download-stall-timeout (default {DEFAULT_STALL_TIMEOUT_S:g})")
    parser.add_argument("--max-mb", type=float, default=None, metavar="MB",
                        help=f"as --jallm-download-max-mb: the largest file downloaded (default {DEFAULT_MAX_DOWNLOAD_MB:g})")
    parser.add_argument("--allow-file-urls", action="store_true", help="as --jallm-allow-file-urls")


def _download_limits(args: argparse.Namespace) -> dict:
    return {"download_timeout_s": args.download_timeout, "stall_timeout_s": args.stall_timeout,
            "max_download_mb": args.max_mb, "allow_file_urls": args.allow_file_urls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_jallm")
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge shard results files into one table and one verdict (exit 1: gate failed)")
    merge.add_argument("files", nargs="+")
    merge.add_argument("-o", "--output", help="write the merged results JSON here")
    merge.add_argument("--markdown", help="write the merged report as Markdown here (e.g. $GITHUB_STEP_SUMMARY)")
    merge.add_argument("--html", help="write the merged report as HTML here")
    merge.set_defaults(func=_merge)
    board = sub.add_parser("leaderboard", help="several runs (models, 0-/4-shot) ranked by AVG among runs over the same benchmarks")
    board.add_argument("files", nargs="+")
    board.add_argument("--markdown", help="write the leaderboard as Markdown here")
    board.add_argument("--html", help="write the leaderboard as HTML (with charts) here")
    board.add_argument("--title", default="pytest-jallm leaderboard")
    board.set_defaults(func=_leaderboard)
    schema = sub.add_parser("schema", help="print the JSON Schema of results files")
    schema.set_defaults(func=_schema)
    cache = sub.add_parser("cache", help="inspect or clear the generation cache")
    cache.add_argument("action", choices=["stats", "clear"])
    cache.add_argument("--path", default=".jallm/generations.sqlite")
    cache.add_argument("--model", default=None, help="clear only this model's generations")
    cache.set_defaults(func=_cache)
    prompts = sub.add_parser("prompts", help="write the exact requests of a run as JSON Lines (benchmark, id, prompt, "
                                              "gold; messages with --chat), in evaluation order")
    prompts.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or directories of specs")
    prompts.add_argument("--num-fewshot", type=int, default=None, help="as --jallm-num-fewshot")
    prompts.add_argument("--limit", type=int, default=None, help="as --jallm-limit: the first K items of each benchmark")
    prompts.add_argument("--data-dir", default=None, help="as --jallm-data-dir (default: env JALLM_DATA_DIR)")
    prompts.add_argument("--chat", action="store_true", help="as --jallm-chat: add each request's chat messages")
    prompts.add_argument("--mode", default=None, metavar="NAME", help="as --jallm-mode (reasoning: chat, zero-shot, the "
                                                                      "specs' modes.reasoning prompts)")
    prompts.add_argument("--data-cache", default=None, help="as --jallm-data-cache (env JALLM_DATA_CACHE)")
    prompts.add_argument("--url-map", action="append", default=[], metavar="PREFIX=REPLACEMENT",
                         help="as --jallm-url-map (repeatable; env JALLM_URL_MAP)")
    prompts.add_argument("--shuffle-choices", type=int, default=None, metavar="SEED", help="as --jallm-shuffle-choices")
    prompts.add_argument("--med-template", default=None, metavar="NAME", help="as --jallm-med-template")
    prompts.add_argument("-o", "--output", help="write here instead of standard output")
    _add_download_options(prompts)
    prompts.set_defaults(func=_prompts, parser=prompts)
    data = sub.add_parser("data", help="pre-fetch benchmark data for offline runners (fetch), or check a copy (verify)")
    data_sub = data.add_subparsers(dest="action", required=True)
    fetch = data_sub.add_parser("fetch", help="download every selected source into DIR, in the layout --jallm-data-dir "
                                              "reads, with a MANIFEST.sha256 (exit 1: some source failed)")
    fetch.add_argument("specs", nargs="*", metavar="SPEC", help="spec files or directories (default: benchmarks/)")
    fetch.add_argument("--to", required=True, metavar="DIR", help="the data directory to fill")
    fetch.add_argument("--cache", default=None, help="as --jallm-data-cache (default: env JALLM_DATA_CACHE, "
                                                      "else ~/.cache/pytest-jallm/data)")
    fetch.add_argument("--url-map", action="append", default=[], metavar="PREFIX=REPLACEMENT",
                       help="as --jallm-url-map (repeatable; env JALLM_URL_MAP)")
    _add_download_options(fetch)
    fetch.set_defaults(func=_data)
    verify = data_sub.add_parser("verify", help="check DIR against its MANIFEST.sha256 and the specs' pins "
                                                "(exit 1 and the bad files' names)")
    verify.add_argument("dir", metavar="DIR")
    verify.add_argument("specs", nargs="*", metavar="SPEC",
                        help="also check that DIR holds these specs' mirrors and that they match the specs' pins")
    verify.set_defaults(func=_data)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
