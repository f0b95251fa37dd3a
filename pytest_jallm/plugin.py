"""pytest hooks. Thin on purpose: each hook calls plain code elsewhere.

pytest imports this module in every session of an environment where the plugin is installed, most of
which run no benchmark. So it imports only what declaring the options and markers and recognising a
spec file need (`backend_options`, `markers`, `keys`, `scale`: no pydantic, no backend); the session
and everything it builds on (`session.py`: the engine, the gate, the reports) is imported when a run
uses a jallm option or collects a benchmark spec (`_session`). tests/test_startup.py keeps it so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import failure_summary, scale
from .backend_options import BackendOptionError, add_flags, builtin_cli_options, flagged, is_installed_backend_name
from .chatjudge.judge import add_judge_copies, add_judge_options
from .keys import SESSION_KEY
from .markers import CATEGORIES, LICENSE_MARKERS

if TYPE_CHECKING:
    from .session import JallmSession

WORKER_COLLECTED = "jallm_collected"  # workeroutput key: the benchmarks an xdist worker collected
WORKER_BENCHMARK_TESTS = "jallm_benchmark_tests"  # workeroutput key: its selected benchmark tests (the report's rows)
_START_ERROR = pytest.StashKey[pytest.UsageError]()  # why the session could not start when a spec was collected
_OPTION_DEFAULTS: dict[str, Any] = {}  # dest -> default of every option in the jallm group (a run "uses" one that differs)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("jallm", "pytest-jallm: Japanese LLM benchmarks")
    g.addoption("--model", "--jallm-model", dest="jallm_model", default=None,
                help="Hugging Face model id or local model directory to evaluate")
    g.addoption("--jallm-backend", default="auto",
                help="hf | vllm | openai | replay (recorded outputs: --model FILE_OR_DIR) | auto (vllm if installed and a "
                     "GPU is present, else hf) | package.module:Factory")
    g.addoption("--jallm-revision", default=None, help="model revision (hub branch, tag or commit)")
    g.addoption("--jallm-items", action="store_true", help="also collect one test per benchmark example")
    g.addoption("--jallm-limit", type=int, default=None, help="evaluate only the first N examples of each benchmark")
    g.addoption("--jallm-data-dir", default=None,
                help="directory of local mirrors of remote sources (env JALLM_DATA_DIR); see each spec's 'mirror' "
                     "and `python -m pytest_jallm data fetch`")
    g.addoption("--jallm-data-cache", default=None,
                help="where downloaded benchmark files are kept (env JALLM_DATA_CACHE; default ~/.cache/pytest-jallm/data)")
    g.addoption("--jallm-url-map", action="append", default=[], metavar="PREFIX=REPLACEMENT",
                help="download URLs starting with PREFIX from REPLACEMENT instead (an internal mirror or proxy; "
                     "repeatable; env JALLM_URL_MAP, rules separated by spaces). Files must be identical: pins still apply")
    g.addoption("--jallm-download-timeout", type=float, default=None, metavar="S",
                help="seconds one benchmark file's download may take in all (default 600)")
    g.addoption("--jallm-download-stall-timeout", type=float, default=None, metavar="S",
                help="a download fails when no data arrives for this many seconds (default 60)")
    g.addoption("--jallm-download-max-mb", type=float, default=None, metavar="MB",
                help="a download larger than this fails, and is not kept (default 1024)")
    g.addoption("--jallm-allow-file-urls", action="store_true",
                help="read file:// URLs of specs and --jallm-url-map (refused by default)")
    g.addoption("--jallm-thresholds-dir", default=None, help="directory of threshold files (ini jallm_thresholds_dir)")
    g.addoption("--jallm-baseline", default=None,
                help="threshold/baseline file name under the thresholds dir (default: the model's name)")
    g.addoption("--jallm-update-baseline", action="store_true",
                help="accept this run as the new baseline: writes thresholds/<name>/<benchmark>.baseline.jsonl "
                     "atomically (the hand-written thresholds YAML is never touched)")
    g.addoption("--jallm-accept-partial", action="store_true",
                help="with --jallm-update-baseline and --jallm-limit: accept baselines of the first N items anyway "
                     "(marked partial in their header and in every comparison)")
    g.addoption("--jallm-strict", action="store_true", default=False,
                help="fail a benchmark that no baseline gates (no baseline and no thresholds, stale or unpaired "
                     "baseline), and the run when a threshold entry or baseline file matches no collected "
                     "benchmark; ini jallm_strict")
    g.addoption("--jallm-family", default=None, choices=["holm", "bonferroni", "none"],
                help="family-wise correction of the paired tests over the session's benchmarks (default holm; "
                     "none = each benchmark at its own alpha); ini jallm_family")
    g.addoption("--jallm-enforce-min-score", action="store_true",
                help="with --jallm-limit: enforce min_score on the smoke run (by default it is reported only)")
    g.addoption("--jallm-diff-items", type=int, default=10, metavar="K",
                help="flipped items shown with their answers in a regression's failure message (the HTML report lists all)")
    g.addoption("--jallm-cache", default=None, help="generation cache file (default .jallm/generations.sqlite; env JALLM_CACHE)")
    g.addoption("--jallm-no-cache", action="store_true", help="neither read nor write the generation cache")
    g.addoption("--jallm-cache-clear", action="store_true", help="delete this model's cached generations before running")
    g.addoption("--jallm-seed", type=int, default=0, help="random seed (decoding is greedy)")
    g.addoption("--jallm-chat", action="store_true", help="use the model's chat template instead of the raw prompt")
    g.addoption("--jallm-strip-think", action="store_true",
                help="remove a leading <think>…</think> block (reasoning models) before answer extraction; an "
                     "unclosed one means no answer (out of format). Scoring only: cached generations are reused")
    g.addoption("--jallm-reasoning-start", default=None, metavar="TEXT",
                help="where a model's reasoning starts (default <think>); empty: the chat template opened it, so "
                     "everything up to the end marker is reasoning. Implies reasoning removal")
    g.addoption("--jallm-reasoning-end", default=None, metavar="TEXT",
                help="where a model's reasoning ends (default </think>). Implies reasoning removal")
    g.addoption("--jallm-mode", default=None, metavar="NAME",
                help="a run mode: apply the specs' `modes.NAME` overrides. `reasoning` also uses the chat template, "
                     "zero-shot, and removes the reasoning before scoring (as Nejumi 4 / Swallow v2 evaluate "
                     "reasoning models)")
    g.addoption("--jallm-reasoning-max-new-tokens", type=int, default=4096, metavar="N",
                help="with --jallm-mode reasoning: the least max_new_tokens of a spec whose modes.reasoning sets none "
                     "(default 4096)")
    g.addoption("--jallm-context-policy", default="fewer-shots", choices=["fewer-shots", "error"],
                help="a prompt longer than the model's context minus max_new_tokens: fewer-shots (default) renders "
                     "that item with fewer few-shot examples until it fits; error fails that item alone. Recorded in "
                     "every result's provenance")
    g.addoption("--jallm-answer-preset", default=None, metavar="PRESET",
                help="answer extraction preset for every spec of this run (answer_tags, choice_only, json_output, "
                     "code_output, latex_boxed, first_paragraph); scoring only")
    g.addoption("--jallm-num-fewshot", type=int, default=None, help="override every spec's few-shot count (leaderboard: 4 and 0)")
    g.addoption("--jallm-engine-arg", action="append", default=[], metavar="KEY=VALUE",
                help="extra engine argument passed through to the backend (repeatable)")
    builtin = builtin_cli_options()  # hf, vllm, openai, replay: declared in a table (an installed backend's: below)
    add_flags(g, builtin)
    add_judge_options(g, builtin)  # the LLM judge of judged benchmarks: --jallm-judge-model, --jallm-judge-base-url …
    g.addoption("--jallm-max-backend-errors", type=float, default=0.0, metavar="PERCENT",
                help="share of a benchmark's requests that may fail in the backend on their own (a malformed "
                     "response, a request the server rejects); they are left out of the score. Above it the "
                     "benchmark fails with the count and the first error (default 0)")
    g.addoption("--jallm-save-outputs", default=None, metavar="FILE",
                help="write every request's raw output as JSON lines (benchmark, id, turn, prompt, messages, output) "
                     "as it arrives, cache hits included; replay them with --jallm-backend replay --model FILE")
    g.addoption("--jallm-report-md", default=None, help="write the results table as Markdown (e.g. $GITHUB_STEP_SUMMARY)")
    g.addoption("--jallm-results-json", default=None, help="write every score, verdict and provenance as JSON")
    g.addoption("--jallm-report-html", default=None, help="write an HTML report (tables, category radar, deltas vs baseline)")
    g.addoption("--jallm-meta", action="append", default=[], metavar="KEY=VALUE",
                help="run metadata for reports and the leaderboard (params_b=7.2, type=pretrained, license=…; repeatable)")
    g.addoption("--jallm-shard", default=None, metavar="INDEX/COUNT",
                help="run one shard of the benchmarks, numbered from 1 (1/3, 2/3, 3/3); merge the results files with "
                     "`python -m pytest_jallm merge`")
    g.addoption("--jallm-gpus-per-worker", type=int, default=None, metavar="K",
                help="with -n: give xdist worker gwI the GPUs I*K..I*K+K-1 (sets CUDA_VISIBLE_DEVICES on the worker)")
    g.addoption("--jallm-variants", type=int, default=0, metavar="N",
                help="also check prompt-format sensitivity: each benchmark under N drawn equivalent formats "
                     "(one `name[variants]` test each; thresholds max_spread / min_variant_score)")
    g.addoption("--jallm-variant-sample", type=int, default=50, metavar="K",
                help="--jallm-variants: items per benchmark (a fixed, seeded sample; 0 = all)")
    g.addoption("--jallm-shuffle-choices", type=int, default=None, metavar="SEED",
                help="shuffle every item's choices with this seed, as japanese-lm-med-harness's --shuffle "
                     "(gold follows; recorded in produced_by and the prompt hash)")
    g.addoption("--jallm-med-template", default=None, metavar="NAME",
                help="prompt every MED benchmark with this japanese-lm-med-harness template "
                     "(alpaca_ja, medpalm_five_choice_cot_ja, meditron_five_choice, …)")
    g.addoption("--jallm-variants-json", default=None, help="--jallm-variants: write every format and score as JSON")
    parser.addini("jallm_benchmark_dirs", "directory names whose *.yaml files are benchmark specs", type="args",
                  default=["benchmarks"])
    parser.addini("jallm_thresholds_dir", "directory of threshold/baseline files", default="thresholds")
    parser.addini("jallm_strict", "fail benchmarks that no baseline gates (as --jallm-strict)", type="bool", default=False)
    parser.addini("jallm_family", "family-wise correction: holm (default), bonferroni or none", default="holm")
    _OPTION_DEFAULTS.update((attrs["dest"], attrs.get("default")) for attrs in (o.attrs() for o in g.options))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """An installed backend's own options, registered when the run selects it (and for --help): so
    that start-up imports no backend, and one that cannot be imported fails only the runs selecting it."""
    ns = early_config.known_args_namespace
    selected = {"--jallm-backend": getattr(ns, "jallm_backend", None),
                "--jallm-judge-backend": getattr(ns, "jallm_judge_backend", None)}
    every = bool(getattr(ns, "help", False))
    if not every and not any(is_installed_backend_name(name) for name in selected.values()):
        return
    from .backends import installed_cli_options

    try:
        options = installed_cli_options(selected, every=every)
    except BackendOptionError as e:
        raise pytest.UsageError(str(e)) from None
    group = parser.getgroup("jallm")
    taken = {name for o in group.options for name in o.names()}
    new = flagged(o for o in options if o.flag not in taken)
    add_flags(group, new)
    add_judge_copies(group, new)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    # A wrapper runs before every plain implementation, so before xdist's own (tryfirst too), which
    # turns `-n N` with no --dist into "load": each worker must get whole benchmarks instead.
    scale.prefer_whole_benchmarks(config.option)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    scale.configure_worker_gpus(config)  # first: nothing may have touched CUDA yet
    scale.parse_shard(config.getoption("jallm_shard"))  # a bad value is a usage error before collection
    config.addinivalue_line("markers", "jallm: a pytest-jallm benchmark test")
    for cat, desc in CATEGORIES.items():
        config.addinivalue_line("markers", f"{cat.lower()}: {cat} benchmarks ({desc})")
    for mark, desc in LICENSE_MARKERS.items():
        config.addinivalue_line("markers", f"{mark}: {desc} (from the spec's license field)")
    config.pluginmanager.register(_SummaryCollector(config), "jallm-summaries")
    if any(config.getoption(dest) != default for dest, default in _OPTION_DEFAULTS.items()):
        _session(config)  # a jallm option is used: its errors are usage errors now, before collection


def _session(config: pytest.Config) -> JallmSession:
    """The run's benchmark session, started at the first need: importing it imports the engine."""
    jallm = _started(config)
    if jallm is not None:
        return jallm
    from .items import EXTRA_ITEMS_KEY
    from .reporting.results_json import parse_meta_pairs
    from .session import JallmSession
    from .variants.items import Reporter, collect_item

    try:
        parse_meta_pairs(config.getoption("jallm_meta"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    jallm = config.stash[SESSION_KEY] = JallmSession(config)
    config.stash[EXTRA_ITEMS_KEY] = [collect_item]
    config.pluginmanager.register(Reporter(config), "jallm-variants")
    return jallm


def _started(config: pytest.Config) -> JallmSession | None:
    """The session if this run started one (a run without benchmarks never does)."""
    return config.stash.get(SESSION_KEY, None)


def is_spec_file(path: Path, benchmark_dirs: list[str], explicit: bool) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    return explicit or any(part in benchmark_dirs for part in path.parent.parts)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    config = parent.config
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    explicit = any(Path(a.split("::")[0]).resolve() == file_path.resolve() for a in config.args if not a.startswith("-"))
    if is_spec_file(file_path, config.getini("jallm_benchmark_dirs"), explicit):
        try:
            _session(config)
        except pytest.UsageError as e:  # a bad ini key or environment variable: a usage error once collection ends
            config.stash[_START_ERROR] = e
            return None
        from .items import BenchmarkFile

        return BenchmarkFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scale.apply_shard(config, items)  # after -k/-m, so shards balance what is actually selected


def pytest_collection_finish(session: pytest.Session) -> None:
    if _START_ERROR in session.config.stash:  # raised here, outside a collector, pytest reports it as one line
        raise session.config.stash[_START_ERROR]
    jallm = _started(session.config)
    if jallm is None:
        return  # no benchmark collected, no jallm option used
    from .items import BenchmarkItem, _JallmItem, selected_benchmarks

    jallm.selected = selected_benchmarks(session.items)  # after -k/-m and shards deselected
    from .session import SelectedBenchmark

    # each is a report row
    jallm.benchmark_tests = [SelectedBenchmark.of(it.spec) for it in session.items if isinstance(it, BenchmarkItem)]
    selected = any(isinstance(it, _JallmItem) for it in session.items)
    if selected and not jallm.model and not session.config.option.collectonly:
        raise pytest.UsageError("benchmark tests were collected but no model was given: pass --model <hf-id-or-local-dir>")
    if selected and session.config.getoption("jallm_cache_clear") and jallm.settings.cache_path is not None:
        from .cache import CacheError, GenerationCache

        try:
            cache = jallm.evaluation.cache()
            cache.clear(model=jallm.model)
        except CacheError:
            # A damaged file cannot be cleared row by row: remove it whole.
            GenerationCache.delete_file(jallm.settings.cache_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A benchmark test that failed before the gate recorded it (its data, spec or backend) or was
    skipped still gets its record, so every report has a row for it (verdict `error` or `skipped`)."""
    report = yield
    if _started(item.config) is None:  # no benchmark run: nothing to record
        return report
    from .items import unscored_summary

    record = unscored_summary(item, call, report)
    if record is not None:
        props = [("jallm_summary", record.model_dump_json(exclude={"outcome", "message"})),
                 ("jallm_verdict", str(record.verdict))]
        report.user_properties += props  # this report carries it to the collector (also from an xdist worker)
        item.user_properties += props  # the last report, which JUnit XML reads, too
    return report


class _SummaryCollector:
    """Gathers benchmark summaries from test reports (also those xdist workers send)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A file that could not be collected (a broken spec) failed the run: the reports say so, as pytest's
        exit status does, also under --continue-on-collection-errors (and from xdist workers)."""
        if not report.failed:
            return
        started = _started(self.config)
        if started is not None:
            from .reporting.record import collection_error_reason

            started.collection_errors[report.nodeid] = collection_error_reason(str(report.longrepr), report.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        summary = next((value for key, value in report.user_properties if key == "jallm_summary"), None)
        if report.failed and summary is None:
            started = _started(self.config)
            if started is not None:  # a benchmark run: a per-example, variants or plain test that failed
                started.other_failed.append(report.nodeid)
        # The call's record; a setup that skipped or failed has one too (an item's own properties
        # reach its teardown report as well, which is not read).
        if summary is not None and (report.when == "call" or (report.when == "setup" and not report.passed)):
            from .gate import BenchmarkRecord

            jallm = _session(self.config)  # an xdist controller that collected nothing starts it here
            record = BenchmarkRecord.model_validate_json(str(summary))
            record.outcome = report.outcome
            if report.failed:  # not longreprtext: under xdist that starts with the worker's name
                record.message = str(report.longrepr)
            jallm.summaries.append(record)
            if not jallm.is_worker:  # under xdist the controller reports each result once
                self.config.hook.pytest_jallm_result(result=record, config=self.config)
        plan = scale.plan_from_properties(report.user_properties)
        if plan is not None:  # under xdist the controller learns the shard plan from the workers' reports
            self.config.stash[scale.SHARD_KEY] = plan


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: what a worker collected (the controller collects nothing itself)."""
    output = getattr(node, "workeroutput", {})
    collected, tests = output.get(WORKER_COLLECTED, ()), output.get(WORKER_BENCHMARK_TESTS, ())
    if collected or tests:
        jallm = _session(node.config)
        jallm.worker_collected.update(collected)
        jallm.add_worker_benchmark_tests(tests)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    jallm = _started(config)
    if jallm is None:
        return
    jallm.evaluation.close()
    if jallm.is_worker:  # published as syrupy publishes its report: through workeroutput
        config.workeroutput[WORKER_COLLECTED] = sorted(jallm.spec_paths)  # type: ignore[attr-defined]
        config.workeroutput[WORKER_BENCHMARK_TESTS] = jallm.benchmark_test_rows()  # type: ignore[attr-defined]
        return
    if config.option.collectonly:
        return
    jallm.unused = jallm.unused_thresholds()
    if jallm.unused and jallm.strict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a typo in the thresholds gates nothing


# pytest only looks at names starting "pytest_"; specname makes this a second implementation.
@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_terminal_summary")
def pytest_terminal_summary_linear_failures(terminalreporter, exitstatus: int, config: pytest.Config):
    restore = failure_summary.index_teardown_reports(terminalreporter)  # pytest's summary is quadratic otherwise
    try:
        return (yield)
    finally:
        restore()


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_terminal_summary")
def pytest_terminal_summary_grouped_warnings(terminalreporter, exitstatus: int, config: pytest.Config):
    """Before pytest prints its warnings summary: data sources not pinned by sha256 are said in one line
    (pytest_terminal_summary), not in a block per source."""
    jallm = _started(config)
    if jallm is not None and not jallm.is_worker and jallm.model:  # a benchmark run (not, say, this project's own tests)
        jallm.unpinned = failure_summary.take_warnings(terminalreporter, "UnpinnedDataWarning")
    return (yield)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    jallm = _started(config)
    if jallm is None or jallm.is_worker:
        return
    from .reporting.terminal import gate_notes, render_terminal, run_status, unpinned_note

    rows = [] if config.option.collectonly else jallm.report_rows()
    if not (rows or jallm.unused or jallm.unpinned):
        return
    terminalreporter.write_sep("=", f"pytest-jallm: {jallm.model}")
    if rows:
        terminalreporter.write_line(render_terminal(rows))
    if jallm.unpinned:
        terminalreporter.write_line(unpinned_note(jallm.unpinned), yellow=True, bold=True)
    for line, warn in gate_notes(rows, unused=jallm.unused, strict=jallm.strict):
        terminalreporter.write_line(line, yellow=warn, bold=warn)
    if not rows:
        return
    other = jallm.other_failures()
    ok, headline = run_status(rows, other)
    terminalreporter.write_line(f"pytest-jallm: {'gate passed' if ok else 'gate failed'} — {headline}",
                                green=ok, red=not ok, bold=True)
    ev = jallm.evaluation
    if ev.prompts_requested:  # this process generated (not an xdist controller)
        t = ev.timings
        load = f"model load {t['load']:.1f} s" if ev.backend_loaded else "model not loaded"
        terminalreporter.write_line(
            f"pytest-jallm: {ev.prompts_requested} prompts, {ev.prompts_generated} generated, "
            f"{ev.prompts_from_cache} from the generation cache"
            + (f", {ev.prompts_repeated} repeated in this run (generated once)" if ev.prompts_repeated else "")
            + " "
            f"({load}, generation {t['generate']:.1f} s, data and prompts {t['prepare']:.1f} s, "
            f"scoring {t['score']:.1f} s)"
        )
    from .reporting import write_reports

    write_reports(rows, model=jallm.model, option=config.getoption, shard=config.stash.get(scale.SHARD_KEY, None),
                  other_failures=other)
