#!/usr/bin/env python
"""Fuzz every entry point that reads text we do not control, with the property tests' checks.

For each target the script draws ``--examples`` inputs (default 10,000) from the hypothesis
strategies of ``tests/test_properties.py`` and runs the same ``check_*`` function the tests
run, but records every outcome instead of stopping at the first failure:

* **crash**: an exception other than the documented error escaped the entry point
  (``TreeParseError`` for ``parse_tree``, ``CaseFormatError`` for ``load_cases``, nothing for
  ``repair_truncated`` and the rewards);
* **violation**: the entry point returned, but a property failed (an ``AssertionError`` raised
  by the check itself, e.g. a reward that is not the penalty for a non-tree);
* **hang**: one input whose check took longer than ``--budget`` seconds (default 1 s; the
  time covers the entry point and the check's own verification, e.g. a re-parse), and
  again when re-run twice with the library's caches emptied;
* **pause**: an input over the budget once but under it on re-run: the garbage collector
  or other jobs on the machine, not the input (the report says how much was collection).

Targets: ``parse_tree`` (text and bytes), ``repair_truncated`` (``repair_truncated_report``),
``load_cases`` (files of 1-3 lines; here the lines also include deeply nested JSON and
integers past Python's digit limit, which the test suite pins as known bugs instead), each
built-in reward (``calibration``, ``sharpness``, ``diversity``, ``format``) built by
``get_reward`` with the exact matcher, the default ``composite``, and ``resolution``
(generated trees against generated cases, exact matcher).

Writes ``fuzz.md`` (for people) and ``fuzz.json`` (for tools) to ``--out``.

Usage::

    python benchmarks/fuzz.py                                  # 10,000 inputs per target
    python benchmarks/fuzz.py --examples 200 --out /tmp/fuzz   # small and fast
    python benchmarks/fuzz.py --targets parse_tree load_cases  # some targets only
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import contextlib
import datetime as dt
import functools
import gc
import json
import logging
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

import test_properties as props  # noqa: E402  (the checks and strategies live with the tests)

REWARD_TARGETS = ("calibration", "sharpness", "diversity", "format", "composite")
MAX_EXAMPLES_KEPT = 3  # per distinct failure


def log(message: str) -> None:
    print(f"[fuzz {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Lines that make ``load_cases`` crash today (see the xfail tests in tests/test_properties.py).
hostile_case_line = st.one_of(
    st.tuples(st.sampled_from(["[", "{\"a\": ", "[{\"id\": "]), st.integers(500, 50_000)).map(
        lambda t: t[0] * t[1]),
    st.integers(4_301, 20_000).map(lambda n: '{"id": "c", "seed": "S", "x": 1' + "0" * n + "}"),
)


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Any]
    what: str


def targets(cases_path: Path) -> list[Target]:
    found = [
        Target("parse_tree", props.model_output | st.binary(max_size=300), props.check_parse_tree,
               "any text or bytes gives a valid tree within the limits or a TreeParseError"),
        Target("repair_truncated", props.model_output, props.check_repair,
               "never raises; a repair's record reproduces its tree"),
        Target("load_cases",
               st.lists(st.integers(0, 19).flatmap(  # one line in 20 is hostile
                lambda i: hostile_case_line if i == 0 else props.case_line),
                min_size=1, max_size=3),
               lambda lines: props.check_load_cases(lines, cases_path),
               "any 1-3 lines give cases or a CaseFormatError with .line on a non-blank line"),
    ]
    for name in REWARD_TARGETS:
        found.append(Target(name, props.model_output, functools.partial(props.check_reward, name),
                            "any completion gives a finite float, the penalty for a non-tree"))
    found.append(Target("resolution", props.resolution_inputs,
                        lambda pair: props.check_resolution(*pair),
                        "outcomes matched at most once, children scored iff the parent came "
                        "true, unmatched outcomes missed, missed + matched = all outcomes"))
    return found


@dataclass
class Tally:
    inputs: int = 0
    crashes: int = 0
    violations: int = 0
    hangs: int = 0
    pauses: int = 0
    pause_s: float = 0.0
    pause_gc_s: float = 0.0
    seconds: list[float] = field(default_factory=list)
    input_chars: int = 0
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, kind: str, key: str, example: Any, detail: str) -> None:
        entry = self.failures.setdefault(f"{kind}: {key}", {
            "kind": kind, "key": f"{kind}: {key}", "count": 0, "detail": detail, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < MAX_EXAMPLES_KEPT:
            entry["examples"].append(_show(example))


def _show(example: Any, limit: int = 160) -> str:
    text = ascii(example)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _size(example: Any) -> int:
    if isinstance(example, str | bytes):
        return len(example)
    if isinstance(example, list | tuple):
        return sum(_size(e) for e in example)
    return 0


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "psychohistory" in f.filename or "site-packages" in f.filename]
    frame = (ours or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})"


def _is_violation(exc: BaseException) -> bool:
    """An AssertionError raised by a check in test_properties.py, not by the library."""
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, AssertionError) and bool(frames) and \
        Path(frames[-1].filename).name == "test_properties.py"


class GcClock:
    """Seconds spent in the cyclic garbage collector, to tell a pause from a slow input."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


def clear_caches() -> None:
    """Empty the library's memo tables, so a re-run pays what the first run paid."""
    from psychohistory.matching.exact import normalize
    from psychohistory.rewards import base, tree_reward

    base._parse_cached.cache_clear()
    with tree_reward._MEMO_LOCK:
        tree_reward._MEMO.clear()
    normalize.cache_clear()


def timed(check: Callable[[Any], Any], example: Any) -> float:
    start = time.perf_counter()
    with contextlib.suppress(Exception):
        check(example)
    return time.perf_counter() - start


def fuzz(target: Target, examples: int, budget: float, random_seed: int,
         gc_clock: GcClock) -> Tally:
    tally = Tally()

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def run(example: Any) -> None:
        tally.inputs += 1
        tally.input_chars += _size(example)
        gc_before = gc_clock.total
        start = time.perf_counter()
        try:
            target.check(example)
        except Exception as exc:
            message = str(exc).splitlines()[0][:160] if str(exc) else ""
            if _is_violation(exc):
                tally.violations += 1
                tally.record("violation", f"{_where(exc)}", example, message)
            else:
                tally.crashes += 1
                tally.record("crash", f"{type(exc).__name__} at {_where(exc)}", example,
                             f"{type(exc).__name__}: {message}")
        elapsed = time.perf_counter() - start
        tally.seconds.append(elapsed)
        if elapsed <= budget:
            return
        # Over budget: the input, or a pause (the collector, other jobs on the machine)?
        # Run it again twice with cold caches; a hang is an input slow every time.
        in_gc = gc_clock.total - gc_before
        clear_caches()
        again = min(timed(target.check, example), timed(target.check, example))
        detail = f"{elapsed:.2f} s ({in_gc:.2f} s of it in the garbage collector), {again:.3f} s re-run"
        if again > budget:
            tally.hangs += 1
            tally.record("hang", f"over {budget:g} s", example, detail)
        else:
            tally.pauses += 1
            tally.pause_s += elapsed
            tally.pause_gc_s += in_gc
            tally.record("pause", f"over {budget:g} s once, under it re-run", example, detail)

    run()
    return tally


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "platform": platform.platform(), "python": platform.python_version()}


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, check=True,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def summarise(name: str, target: Target, tally: Tally, elapsed: float) -> dict[str, Any]:
    seconds = sorted(tally.seconds) or [0.0]
    return {
        "target": name, "property": target.what, "inputs": tally.inputs,
        "crashes": tally.crashes, "violations": tally.violations, "hangs": tally.hangs,
        "pauses": tally.pauses, "pause_s": round(tally.pause_s, 3),
        "pause_gc_s": round(tally.pause_gc_s, 3),
        "mean_ms": round(1000 * statistics.fmean(seconds), 3),
        "p99_ms": round(1000 * seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))], 3),
        "max_ms": round(1000 * seconds[-1], 3),
        "mean_input_chars": round(tally.input_chars / max(1, tally.inputs)),
        "wall_s": round(elapsed, 1),
        "failures": sorted(tally.failures.values(), key=lambda f: -f["count"]),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Fuzzing the entry points",
        "",
        f"Date: {report['date']}. Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} "
        f"usable, shared with other jobs; load average {m['load_average_before']} before, "
        f"{m['load_average_after']} after), {m['platform']}, Python {m['python']}. "
        f"psychohistory {report['versions']['psychohistory']} at {report['commit']}, "
        f"hypothesis {report['versions']['hypothesis']}.",
        "",
        f"Command: `{report['command']}` (seed {report['seed']}, {report['examples']:,} inputs "
        f"asked per target, hang budget {report['budget_s']:g} s per input).",
        "",
        "Each target runs the `check_*` function of `tests/test_properties.py` on inputs drawn "
        "from its strategies (arbitrary Unicode with lone surrogates, JSON-token soup, generated "
        "trees wrapped in prose and fences and then cut, spliced or repeated, inputs near the "
        "200,000-character limit, and deep nesting). A *crash* is an exception other than the "
        "documented error escaping the entry point; a *violation* is a failed property; a "
        "*hang* is an input whose check took longer than the budget, and again when re-run "
        "twice with the library's caches emptied; a *pause* is one that was over the budget "
        "once but under it on re-run (the garbage collector, or other jobs on the machine).",
        "",
        "| target | inputs | crashes | violations | hangs | pauses | mean ms | p99 ms | max ms | "
        "mean input chars | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["targets"]:
        chars = f"{row['mean_input_chars']:,}" if row["mean_input_chars"] else "n/a"
        lines.append(
            f"| {row['target']} | {row['inputs']:,} | {row['crashes']:,} | {row['violations']:,} "
            f"| {row['hangs']:,} | {row['pauses']:,} | {row['mean_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['max_ms']:.1f} | {chars} | {row['wall_s']:,.0f} |")
    lines += ["", "## Properties", ""]
    lines += [f"- **{row['target']}**: {row['property']}." for row in report["targets"]]
    failing = [row for row in report["targets"] if row["failures"]]
    lines += ["", "## Failures", ""]
    if not failing:
        lines.append("None.")
    for row in failing:
        for failure in row["failures"]:
            lines.append(f"- **{row['target']}**, {failure['key']} (x{failure['count']:,}): "
                         f"{failure['detail']}")
            for example in failure["examples"]:
                lines.append(f"  - `{example.replace('`', chr(0x2035))}`")
    notes = list(report["notes"])
    pauses = sum(row["pauses"] for row in report["targets"])
    if pauses:
        paused = sum(row["pause_s"] for row in report["targets"])
        in_gc = sum(row["pause_gc_s"] for row in report["targets"])
        notes.append(f"{pauses} pauses took {paused:.1f} s, {in_gc:.1f} s of it ({in_gc / paused:.0%}) "
                     "in Python's cyclic garbage collector; each input re-ran under the budget.")
    lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


NOTES = [
    "`load_cases` crashes are the two bugs pinned by the xfail tests in "
    "`tests/test_properties.py`: `cases.iter_jsonl` catches `json.JSONDecodeError` only, so a "
    "deeply nested line (`RecursionError`) or an integer past Python's 4,300-digit limit "
    "(a plain `ValueError`) escapes instead of becoming a `CaseFormatError`. The fuzzer adds "
    "such lines on purpose; the fix belongs in `cases.py`.",
    "Times are per input, for the whole check (the entry point plus the check's own "
    "verification, e.g. a re-parse or a repair), on a machine shared with other jobs.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds before an input is a hang")
    parser.add_argument("--seed", type=int, default=20240601, help="hypothesis seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where fuzz.md/json go")
    parser.add_argument("--targets", nargs="*", help="only these targets")
    args = parser.parse_args(argv)
    logging.getLogger("psychohistory").setLevel(logging.WARNING)  # rewards log each bad tree

    cases_path = Path(tempfile.mkdtemp(prefix="psychohistory-fuzz-")) / "cases.jsonl"
    chosen = [t for t in targets(cases_path) if not args.targets or t.name in args.targets]
    if args.targets and len(chosen) != len(args.targets):
        known = ", ".join(t.name for t in targets(cases_path))
        parser.error(f"unknown target in {args.targets}; targets: {known}")
    rows = []
    gc_clock = GcClock()
    load_before = _load()
    for target in chosen:
        log(f"{target.name}: {args.examples:,} inputs")
        start = time.perf_counter()
        tally = fuzz(target, args.examples, args.budget, args.seed, gc_clock)
        row = summarise(target.name, target, tally, time.perf_counter() - start)
        log(f"{target.name}: {row['inputs']:,} inputs, {row['crashes']} crashes, "
            f"{row['violations']} violations, {row['hangs']} hangs, {row['pauses']} pauses, "
            f"{row['wall_s']} s")
        rows.append(row)
    cases_path.unlink(missing_ok=True)
    cases_path.parent.rmdir()

    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "benchmarks/fuzz.py", *(argv if argv is not None
                                                                 else sys.argv[1:])]),
        "machine": {**machine(), "load_average_before": load_before,
                    "load_average_after": _load()},
        "versions": {p: _version(p) for p in ("psychohistory", "hypothesis", "pydantic")},
        "commit": _commit(),
        "seed": args.seed, "examples": args.examples, "budget_s": args.budget,
        "targets": rows, "notes": NOTES,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "fuzz.md").write_text(markdown(report))
    log(f"wrote {args.out / 'fuzz.md'} and {args.out / 'fuzz.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
