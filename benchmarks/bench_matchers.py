#!/usr/bin/env python
"""The matcher benchmark: is a predicted event the event that happened?

Writes ``matchers.md`` (for people) and ``matchers.json`` (for tools) to ``--out``:

1. **Accuracy** on labelled pairs the verifier was neither trained nor tuned on, headline first:
   the blind pairs (``event_pairs_blind``), the resolution audit (real SmolLM2 trees against
   their cases, ``event_pairs_audit``), and the within-case pairs of the bank's test split
   (two different outcomes of one story, and their paraphrases). Then the bank's whole test
   split, and DBLP-ACM titles (for plain ``fuzzy``). Every registered matcher but ``llm`` with
   the raw rapidfuzz and raw MiniLM baselines: precision, recall, F1, ROC AUC, ECE of the match
   probability, accuracy by kind, 95% bootstrap intervals, pairs/s. What the shipped verifier
   was trained on is named beside the figures.
2. **Plain fuzzy** against bare ``rapidfuzz.process.cdist`` (the same scorer): throughput in
   the same run and F1 on DBLP-ACM.
3. **Speed of resolution** with the default cascade: a GRPO step's group of completions
   (about 15 nodes each) resolved against a case, against scoring every pair with the bare
   cross-encoder in the same run; the verifier's load time.

Usage::

    python benchmarks/bench_matchers.py                        # full: ~10 minutes on 2 cores
    python benchmarks/bench_matchers.py --quick --out /tmp/b   # small and fast (tests)
    python benchmarks/bench_matchers.py --speed-only --out D   # fuzzy and speed alone
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import datetime as dt
import json
import math
import platform
import shlex
import statistics
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DBLP_ACM = ROOT / "benchmarks" / "data" / "third_party" / "dblp_acm_demo_labels.csv"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
HEADLINE = ("blind", "audit", "audit anchors", "test within-case")


def log(message: str) -> None:
    print(f"[bench_matchers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    import psychohistory

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        threads: int | None = torch.get_num_threads()
    except ImportError:
        threads = None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads,
            "platform": platform.platform(), "python": platform.python_version(),
            "psychohistory": psychohistory.__version__,
            "packages": {name: _version(name) for name in (
                "rapidfuzz", "numpy", "sentence-transformers", "transformers", "torch")}}


def command_line() -> str:
    exe = Path(sys.executable)
    try:
        exe_text = str(exe.relative_to(Path.cwd()))
    except ValueError:
        exe_text = "python"
    return shlex.join([exe_text, *sys.argv])


# ---------------------------------------------------------------------------- 1. accuracy


def pair_sets(quick: bool) -> dict[str, tuple[str, list[Any]]]:
    """name -> (where the pairs come from, pairs); missing optional sets are left out."""
    from psychohistory.bench.matchers import BANK, load_pairs

    limit = 40 if quick else None

    def cut(pairs: list[Any]) -> list[Any]:
        if limit is None or len(pairs) <= limit:
            return pairs
        step = len(pairs) / limit
        return [pairs[int(k * step)] for k in range(limit)]

    bank_test = load_pairs(BANK, split="test")
    out: dict[str, tuple[str, list[Any]]] = {}
    for name, file in (("blind", "event-pairs-blind"), ("audit", "event-pairs-audit")):
        try:
            pairs = load_pairs(file)
        except (ValueError, FileNotFoundError):
            log(f"no {name} pair set in this checkout: left out")
            continue
        source = f"{file.replace('-', '_')}.jsonl"
        if name == "audit":  # nodes against outcomes (what a reward resolves), and against
            # the seed and context (what the seed guard must catch), apart
            out[name] = (source + ", nodes against outcomes",
                         cut([p for p in pairs if not p.kind.startswith("anchor_")]))
            out["audit anchors"] = (source + ", nodes against their seed and context (the cascade "
                                    "judges them as the seed guard does)",
                                    cut([p for p in pairs if p.kind.startswith("anchor_")]))
        else:
            out[name] = (source, cut(pairs))
    out["test within-case"] = ("historical.jsonl, test split: two different outcomes of one "
                               "case, and their paraphrases",
                               cut([p for p in bank_test if p.kind == "within_case"]))
    out["bank test"] = ("historical.jsonl, test split: every pair kind", cut(bank_test))
    if DBLP_ACM.exists():
        out["dblp-acm"] = (str(DBLP_ACM.relative_to(ROOT)), cut(load_pairs(DBLP_ACM)))
    return out


def matchers() -> dict[str, Any]:
    """The raw baselines and every registered matcher but ``llm`` (it needs a judge)."""
    from psychohistory.bench.matchers import baseline_matchers
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.plugins import get_matcher, list_registered

    built = dict(baseline_matchers())
    for name in list_registered("matcher"):
        if name not in ("llm", "cascade"):
            built[name] = get_matcher(name)
    # the cascade's verifier is the verifier row's own instance: each distinct pair is scored
    # once (its cache), so the cascade's pairs/s here counts cache hits; section 3 times it cold
    built["cascade"] = CascadeMatcher(verifier=built["verifier"])
    return built


def f1_of(labels: np.ndarray, decided: np.ndarray) -> float:
    tp = int(np.sum(decided & (labels == 1)))
    fp = int(np.sum(decided & (labels == 0)))
    fn = int(np.sum(~decided & (labels == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def bootstrap(labels: np.ndarray, scores: np.ndarray, threshold: float, *, resamples: int,
              seed: int = 0) -> dict[str, list[float] | None]:
    """95% percentile intervals of F1, ROC AUC and accuracy over pairs drawn with replacement."""
    from psychohistory.bench.matchers import roc_auc

    rng = np.random.default_rng(seed)
    f1s, aucs, accs = [], [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        y, s = labels[idx], scores[idx]
        f1s.append(f1_of(y, s >= threshold))
        accs.append(float(np.mean((s >= threshold) == (y == 1))))
        auc = roc_auc(y, s)
        if not math.isnan(auc):
            aucs.append(auc)

    def interval(values: list[float]) -> list[float] | None:
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] \
            if values else None

    return {"f1_ci95": interval(f1s), "roc_auc_ci95": interval(aucs),
            "accuracy_ci95": interval(accs)}


class Recorder:
    """Passes ``score_pairs`` to ``matcher`` and keeps the scores, for the intervals."""

    def __init__(self, matcher: Any, *, anchors: bool = False) -> None:
        self.matcher = matcher
        self.threshold = matcher.threshold
        self.scores = np.zeros(0)
        # nodes against their seed: judged the way resolution's seed guard judges them
        self.score = (getattr(matcher, "score_anchor_pairs", None) if anchors else None) \
            or matcher.score_pairs

    def score_pairs(self, left: Any, right: Any) -> np.ndarray:
        self.scores = np.asarray(self.score(left, right), dtype=float)
        return self.scores


def run_accuracy(quick: bool) -> dict[str, Any]:
    from psychohistory.bench.matchers import evaluate_matcher
    from psychohistory.metrics import expected_calibration_error

    built = matchers()
    results: dict[str, Any] = {}
    for dataset, (source, pairs) in pair_sets(quick).items():
        log(f"accuracy on {dataset} ({len(pairs)} pairs)")
        labels = np.array([p.label for p in pairs])
        rows = []
        for name, matcher in built.items():
            if dataset == "dblp-acm" and name in ("verifier", "verifier-minilm", "cascade"):
                continue  # event matchers: titles are not events
            matcher.score_pairs([pairs[0].left], [pairs[0].right])  # load before the clock
            recorder = Recorder(matcher, anchors=dataset == "audit anchors")
            row = evaluate_matcher(recorder, pairs, name=name, dataset=dataset).__dict__
            s = recorder.scores
            row["accuracy"] = float(np.mean((s >= row["threshold"]) == (labels == 1)))
            if name in ("verifier", "verifier-minilm", "cascade"):
                row["ece"] = expected_calibration_error(labels.astype(float), s)
            row.update(bootstrap(labels, s, row["threshold"], resamples=100 if quick else 1000))
            rows.append(row)
        results[dataset] = {"source": source, "n_pairs": len(pairs),
                            "n_positive": int(labels.sum()),
                            "pairs_by_kind": dict(sorted(Counter(p.kind for p in pairs).items())),
                            "results": rows}
    return results


# ---------------------------------------------------------------------------- 2. fuzzy


def run_fuzzy(quick: bool) -> dict[str, Any]:
    from rapidfuzz import process
    from rapidfuzz.utils import default_process

    from psychohistory.bench.matchers import load_pairs
    from psychohistory.matching.fuzzy import FuzzyMatcher

    fuzzy = FuzzyMatcher()
    texts = list(dict.fromkeys(t for p in load_pairs("event-pairs") for t in (p.left, p.right)))
    n = 200 if quick else 1000
    texts = (texts * (n // len(texts) + 1))[:n]
    left = [f"{t} ({k})" for k, t in enumerate(texts)]
    right = [f"{t} [{k}]" for k, t in enumerate(texts)]
    times: dict[str, list[float]] = {"cdist": [], "fuzzy": []}
    for _ in range(3 if quick else 7):  # interleaved, so load changes hit both alike
        start = time.perf_counter()
        process.cdist(left, right, scorer=fuzzy.scorer)
        times["cdist"].append(time.perf_counter() - start)
        start = time.perf_counter()
        fuzzy.score(left, right)
        times["fuzzy"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    out: dict[str, Any] = {"n": n, "pairs": n * n, "scorer": fuzzy.scorer_name,
                           "best_s": best, "ratio_vs_cdist": best["cdist"] / best["fuzzy"]}
    if DBLP_ACM.exists():
        pairs = load_pairs(DBLP_ACM)
        labels = np.array([p.label for p in pairs])
        ours = np.asarray(fuzzy.score_pairs([p.left for p in pairs], [p.right for p in pairs]))
        # rapidfuzz at its best: the same scorer with its own text processor
        bare = np.array([fuzzy.scorer(p.left, p.right, processor=default_process) / 100
                         for p in pairs])
        out["dblp_acm_f1"] = {"fuzzy": f1_of(labels, ours >= fuzzy.threshold),
                              "bare scorer": f1_of(labels, bare >= fuzzy.threshold)}
    return out


# ---------------------------------------------------------------------------- 3. speed


def step_group(case: Any, n: int, *, seed: int) -> list[str]:
    """``n`` distinct completions of ~15 nodes: paraphrases, near-misses and invented events."""
    import random

    from psychohistory.tree import EventNode, ProbabilityTree

    rng = random.Random(seed)
    pool = [t for o in case.outcomes for t in (o.event, *o.paraphrases,
                                                 *(m.event for m in o.near_misses))]
    pool += [f"{case.seed.split()[0]} announces measure number {k} ({seed})" for k in range(20)]
    out = []
    for g in range(n):
        events = rng.sample(pool, k=min(15, len(pool)))
        events = [f"{e} ({seed}.{g})" if k % 3 == 0 else e for k, e in enumerate(events)]
        top = [EventNode(event=e, probability=round(rng.random(), 2)) for e in events[:5]]
        for k, e in enumerate(events[5:]):
            top[k % len(top)].children.append(EventNode(event=e, probability=0.5))
        out.append(ProbabilityTree(seed=case.seed, children=top).to_json())
    return out


def timed(spent: dict[str, float], label: str, method: Any, *, counts: dict[str, int] | None = None,
          count: Any = None, sync: Any = None) -> Any:
    """``method``, adding the seconds each call takes to ``spent[label]`` (after ``sync()``
    both sides, for asynchronous GPU work) and, with ``counts``, what it handled to
    ``counts[label]`` (``count(*args)``, else 1 a call)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        if sync:
            sync()
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            if sync:
                sync()
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
            if counts is not None:
                counts[label] = counts.get(label, 0) + (count(*args) if count else 1)
    return call


def run_speed(quick: bool) -> dict[str, Any]:
    from psychohistory.datasets import load_dataset
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.matching.verifier import VerifierMatcher
    from psychohistory.plugins import get_reward
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward
    from psychohistory.tree import parse_tree

    # the imports of torch and transformers' model code are timed apart: any user of torch
    # pays them once per process (~6 s on the 2-core CPU), and in a full run the accuracy
    # stage has made them already (then ~0 s)
    start = time.perf_counter()
    import torch  # noqa: F401
    from transformers import AutoModelForSequenceClassification  # noqa: F401
    import_s = time.perf_counter() - start
    start = time.perf_counter()
    verifier = VerifierMatcher()
    verifier.load()
    load_s = time.perf_counter() - start
    # the classifier's construction with and without the random initialisation that the
    # shipped weights overwrite (skipped since 2026-12-03), in the same run
    from bench_verifier_load import measure as measure_load

    build = measure_load(3)
    cascade = CascadeMatcher(verifier=verifier)
    cascade.embedding.score(["warm"], ["up"])
    # one case in a quick run: on the 2-core CPU a case's bare baseline alone takes minutes
    cases = load_dataset("historical", split="test")[: 1 if quick else 10]
    # the two targets: a default step (4 completions) on a CPU, a group of 64 on a GPU
    size = 64 if verifier.device.startswith("cuda") else 4
    bare = VerifierMatcher()
    bare.load()
    dtype = str(next(verifier.load()[1].parameters()).dtype).removeprefix("torch.")
    fp32_label = "baseline: the cascade, verifier in float32, batch 128"
    compared = [("composite reward (default cascade)", cascade)]
    if verifier.device.startswith("cuda"):  # on a CPU the default already is float32 at 128
        # the same cascade with the verifier as it ran before it chose its precision and batch
        # by device (float32, batches of 128): a baseline measured in this run
        fp32 = VerifierMatcher(dtype="float32", batch_size=128)
        fp32.load()
        fp32_cascade = CascadeMatcher(verifier=fp32)  # its own embedding cache, as fair
        fp32_cascade.embedding.score(["warm"], ["up"])
        compared.append((fp32_label, fp32_cascade))
    timings: dict[str, list[float]] = {label: [] for label, _ in compared}
    timings["baseline: bare cross-encoder on every pair"] = []
    pairs_scored = []
    # where the default cascade's time goes: the verifier's forward passes (tokenising
    # included) and the embedding encoder's, the rest being parsing, candidates and scoring
    spent = {"verifier forward": 0.0, "embedding encode": 0.0}
    stages: dict[str, list[float]] = {k: [] for k in spent}
    verifier.logits = timed(spent, "verifier forward", verifier.logits)  # type: ignore[method-assign]
    cascade.embedding.encode = timed(  # type: ignore[attr-defined]
        spent, "embedding encode", cascade.embedding.encode)
    for k, case in enumerate(cases):
        group = step_group(case, size, seed=k)
        before = len(verifier._cache)
        for label, matcher in compared:
            rewards = [get_reward(name, **({} if name == "format" else {"matcher": matcher}))
                       for name in DEFAULT_WEIGHTS]
            composite = CompositeReward(rewards, list(DEFAULT_WEIGHTS.values()))
            spent.update(dict.fromkeys(spent, 0.0))
            start = time.perf_counter()
            composite(group, case=[case] * len(group))
            timings[label].append(time.perf_counter() - start)
            if matcher is cascade:
                for stage, seconds in spent.items():
                    stages[stage].append(seconds)
        pairs_scored.append(len(verifier._cache) - before)
        trees = [parse_tree(c, seed=case.seed) for c in group]
        texts = list(dict.fromkeys(v.node.event for t in trees for v in t.iter_nodes()))
        anchors = [o.event for o in case.outcomes] + [case.seed, case.context]
        bare._cache.clear()
        start = time.perf_counter()
        bare.score(texts, anchors)
        # and what diversity asks the cascade: each tree's texts against each other (before
        # 2026-12-03 the baseline skipped these, so it did less work than the composite)
        for tree in trees:
            own = list(dict.fromkeys(v.node.event for v in tree.iter_nodes()))
            bare.score(own, own)
        timings["baseline: bare cross-encoder on every pair"].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in timings.items()}
    return {"verifier_load_s": load_s, "imports_before_load_s": import_s,
            "device": verifier.device, "group": size,
            "classifier_build_s_median": build["median_s"],
            "default_cascade_stage_s_median": {k: statistics.median(v) for k, v in stages.items()},
            "nodes_per_completion": 15, "cases": len(cases), "median_s": median,
            "verifier_pairs_per_step_median": statistics.median(pairs_scored),
            "speedup_vs_bare": median["baseline: bare cross-encoder on every pair"]
            / median["composite reward (default cascade)"],
            "speedup_vs_fp32": median[fp32_label] / median["composite reward (default cascade)"]
            if fp32_label in median else None, "verifier_dtype": dtype}


# ---------------------------------------------------------------------------- report


def row_of(acc: dict[str, Any], dataset: str, matcher: str) -> dict[str, Any] | None:
    return next((r for r in acc.get(dataset, {}).get("results", []) if r["matcher"] == matcher),
                None)


NEGATIVE_KINDS = ("reversal", "swapped_entity", "changed_number", "stage_of_story",
                  "same_actor_other_event", "negation", "seed_restatement", "unrelated")


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    acc = report["accuracy"]
    out = []

    def add(target: str, value: float | None, limit: float, op: str) -> None:
        met = None if value is None or math.isnan(value) else (
            value >= limit if op == ">=" else value <= limit)
        out.append({"target": target, "value": value, "limit": f"{op} {limit}", "met": met})

    blind = row_of(acc, "blind", "cascade")
    add("blind pairs: cascade F1", blind and blind["f1"], 0.90, ">=")
    add("blind pairs: cascade ROC AUC", blind and blind["roc_auc"], 0.95, ">=")
    if blind:
        add("blind pairs: paraphrase recall", blind["accuracy_by_kind"].get("paraphrase"),
            0.85, ">=")
        worst = min((v, k) for k, v in blind["accuracy_by_kind"].items() if k in NEGATIVE_KINDS)
        add(f"blind pairs: worst false kind ({worst[1]})", worst[0], 0.85, ">=")
    within = row_of(acc, "test within-case", "cascade")
    add("test within-case pairs wrongly matched", within and 1 - within["accuracy"], 0.03, "<=")
    audit = row_of(acc, "audit", "cascade")
    add("audit: cascade precision", audit and audit["precision"], 0.95, ">=")
    add("audit: cascade recall", audit and audit["recall"], 0.80, ">=")
    fuzzy = report["fuzzy"]
    add("fuzzy throughput vs bare cdist", fuzzy["ratio_vs_cdist"], 0.8, ">=")
    if "dblp_acm_f1" in fuzzy:
        f1 = fuzzy["dblp_acm_f1"]
        add("fuzzy F1 on DBLP-ACM minus the bare scorer's", f1["fuzzy"] - f1["bare scorer"],
            -0.02, ">=")
    speed = report["speed"]
    on_gpu = speed["device"].startswith("cuda")
    add(f"a group of {speed['group']} x 15 nodes resolved, s, {'GPU' if on_gpu else 'CPU'}",
        speed["median_s"]["composite reward (default cascade)"], 0.1 if on_gpu else 1.0, "<=")
    add("verifier load, s", speed["verifier_load_s"], 5.0, "<=")
    return out


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def ci(row: dict[str, Any], key: str) -> str:
    interval = row.get(f"{key}_ci95")
    return f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""


def render(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = ["# Matcher benchmark", ""]
    if meta["quick"]:
        lines += ["**Quick run** (small subsets; not for reporting).", ""]
    lines += [f"- date: {meta['date']}", f"- command: `{meta['command']}`",
              f"- machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
              f"torch threads {meta['machine']['torch_threads']}",
              f"- verifier: {meta['verifier']}", ""]
    lines += ["## Targets", "", "| target | value | limit | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {fmt(t['value'])} | {t['limit']} | "
                     f"{ {True: 'yes', False: '**no**', None: 'n/a'}[t['met']] } |")
    lines += ["", "## 1. Accuracy", ""]
    if not report["accuracy"]:
        lines += ["Not run (`--speed-only`).", ""]
    for dataset, block in report["accuracy"].items():
        kinds = sorted(block["pairs_by_kind"])
        lines += [f"### {dataset}" + (" (headline)" if dataset in HEADLINE else ""), "",
                  f"{block['n_pairs']} pairs ({block['n_positive']} same event) from "
                  f"{block['source']}; by kind: "
                  + ", ".join(f"{k} {v}" for k, v in block["pairs_by_kind"].items()), "",
                  "| matcher | threshold | precision | recall | F1 [95% CI] | ROC AUC [95% CI] | "
                  "accuracy | ECE | pairs/s | " + " | ".join(kinds) + " |",
                  "|" + "---|" * (9 + len(kinds))]
        for r in block["results"]:
            cells = [r["matcher"], fmt(r["threshold"], 2), fmt(r["precision"]), fmt(r["recall"]),
                     fmt(r["f1"]) + ci(r, "f1"), fmt(r["roc_auc"]) + ci(r, "roc_auc"),
                     fmt(r["accuracy"]), fmt(r.get("ece")), f"{r['pairs_per_s']:,.0f}"]
            cells += [fmt(r["accuracy_by_kind"].get(k), 2) for k in kinds]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    fz = report["fuzzy"]
    lines += ["## 2. Plain fuzzy against bare rapidfuzz", "",
              f"{fz['n']} x {fz['n']} strings, scorer `{fz['scorer']}`, best of the interleaved "
              f"runs: bare `process.cdist` {fz['best_s']['cdist']:.3f} s, `fuzzy` "
              f"{fz['best_s']['fuzzy']:.3f} s: **{fz['ratio_vs_cdist']:.2f}x** the bare speed."]
    if "dblp_acm_f1" in fz:
        lines.append(f"DBLP-ACM F1: `fuzzy` {fz['dblp_acm_f1']['fuzzy']:.3f}, bare scorer "
                     f"{fz['dblp_acm_f1']['bare scorer']:.3f}.")
    sp = report["speed"]
    lines += ["", "## 3. Speed of resolution", "",
              f"Verifier loaded in {sp['verifier_load_s']:.2f} s on {sp['device']}" + (
                  f" (before it, the imports of torch and transformers' model code: "
                  f"{sp['imports_before_load_s']:.2f} s, timed apart)"
                  if "imports_before_load_s" in sp else "") + ". A GRPO step's "
              f"group ({sp['group']} completions x ~{sp['nodes_per_completion']} nodes, new "
              f"texts every step), all four default rewards, median over {sp['cases']} test "
              "cases:", ""]
    lines += [f"- {k}: {v:.3f} s" for k, v in sp["median_s"].items()]
    for stage, seconds in sp.get("default_cascade_stage_s_median", {}).items():
        lines.append(f"- of the default cascade's step, in the {stage}: {seconds:.3f} s")
    build = sp.get("classifier_build_s_median")
    if build:
        before, now, whole = build.values()
        lines.append(f"- the classifier built from the base (median of 3): {now:.2f} s with the "
                     f"initialisation the shipped weights overwrite skipped, {before:.2f} s "
                     f"with it (**{before / now:.1f}x**); the whole load on the CPU {whole:.2f} s")
    lines += [f"- the cascade sent a median {sp['verifier_pairs_per_step_median']} new pairs to "
              f"the verifier per step; **{sp['speedup_vs_bare']:.1f}x** faster than the bare "
              "cross-encoder on every pair",
              f"- the verifier ran in {sp.get('verifier_dtype', 'float32')}; " + (
                  f"**{sp['speedup_vs_fp32']:.1f}x** faster than the same cascade with the "
                  "verifier in float32 at batch 128" if sp.get("speedup_vs_fp32") else
                  "the float32 baseline is the default here (a CPU): not timed twice"), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets (tests)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--speed-only", action="store_true",
                        help="skip the accuracy sets (hours for the SmolLM2 verifier on a "
                             "2-core CPU): fuzzy and the speed of resolution only")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    from psychohistory.matching.verifier import read_manifest, weights_dir

    hf_logging.set_verbosity_error()
    manifest = read_manifest(weights_dir() / "event_verifier.safetensors")
    minilm = read_manifest(weights_dir() / "event_verifier_minilm.safetensors")
    trained = manifest.get("trained_on", {})
    report: dict[str, Any] = {"meta": {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(), "quick": args.quick, "machine": machine_info(),
        "verifier": f"weights/event_verifier.safetensors sha256 {manifest['sha256'][:12]}..., "
                    f"trained on {', '.join(trained.get('sources', []))} "
                    f"({trained.get('pairs', '?')} pairs, both orders); calibrated on "
                    f"{manifest.get('calibration', {}).get('fitted_on', '?')}; never on the "
                    "blind or audit pairs or the test split; verifier-minilm: the same pairs on "
                    "MiniLM (weights/event_verifier_minilm.safetensors sha256 "
                    f"{minilm['sha256'][:12]}...); both chosen on dev pairs only "
                    "(verifier_selection.md)"}}
    report["accuracy"] = {} if args.speed_only else run_accuracy(args.quick)
    log("plain fuzzy against bare cdist")
    report["fuzzy"] = run_fuzzy(args.quick)
    log("speed of resolution")
    report["speed"] = run_speed(args.quick)
    report["targets"] = targets(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "matchers.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (args.out / "matchers.md").write_text(render(report), encoding="utf-8")
    log(f"wrote {args.out / 'matchers.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
