#!/usr/bin/env python
"""Tokenising a GRPO step's verifier pairs: each text once, joined, against each pair's whole string.

The pairs are what a step of 64 completions x ~15 nodes asks of the verifier: every node
against every outcome, seed and context of its case (``step_group`` of
``benchmarks/bench_matchers.py``; the cascade sends a subset of these). Both ways are timed
alternately with a cold cache, in batches of 1,024 as the verifier sends them on a GPU, and
checked to give the same tensors.

Usage::

    python benchmarks/bench_pair_tokens.py                # writes benchmarks/results/pair_tokens.*
    python benchmarks/bench_pair_tokens.py --cases 1 --repeats 1 --out /tmp/b
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime as dt
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_OUT = ROOT / "benchmarks" / "results"
BATCH = 1024


def step_pairs(case: object, seed: int) -> list[tuple[str, str]]:
    from bench_matchers import step_group

    from psychohistory.tree import parse_tree

    anchors = [o.event for o in case.outcomes] + [case.seed, case.context]  # type: ignore[attr-defined]
    pairs = []
    for completion in step_group(case, 64, seed=seed):
        tree = parse_tree(completion, seed=case.seed)  # type: ignore[attr-defined]
        pairs += [(v.node.event, a) for v in tree.iter_nodes() for a in anchors]
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from psychohistory.datasets import load_dataset
    from psychohistory.matching.pair_tokens import PairTokens
    from psychohistory.matching.verifier import DECODER_BASE, DECODER_TEMPLATE, decoder_inputs
    from psychohistory.training.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DECODER_BASE)[0])
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    times: dict[str, list[float]] = {"whole string per pair (before)": [],
                                     "each text once, joined (now)": []}
    counts = []
    for k, case in enumerate(load_dataset("historical", split="test")[: args.cases]):
        pairs = step_pairs(case, k)
        counts.append(len(pairs))
        chunks = [pairs[i:i + BATCH] for i in range(0, len(pairs), BATCH)]
        for _ in range(args.repeats):
            start = time.perf_counter()
            before = [decoder_inputs(tokenizer, c, 64) for c in chunks]
            times["whole string per pair (before)"].append(time.perf_counter() - start)
            tokens = PairTokens(tokenizer, DECODER_TEMPLATE)  # a cold cache
            start = time.perf_counter()
            now = [tokens.batch(c, 64) for c in chunks]
            times["each text once, joined (now)"].append(time.perf_counter() - start)
            for a, b in zip(before, now, strict=True):
                if a["input_ids"].tolist() != b["input_ids"].tolist():
                    raise SystemExit(f"{case.id}: the joined ids differ from the whole strings'")
    median = {k: statistics.median(v) for k, v in times.items()}
    old, new = median.values()
    command = "python benchmarks/bench_pair_tokens.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    result = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": command,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "pairs_per_step_median": statistics.median(counts), "median_s": median,
              "speedup": old / new, "runs": times}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pair_tokens.json").write_text(json.dumps(result, indent=1) + "\n",
                                               encoding="utf-8")
    lines = ["# Tokenising a step's verifier pairs", "", f"- command: `{command}`",
             f"- date: {result['date']}", f"- machine: {result['machine']} (tokenising is CPU "
             "work on any device; `TOKENIZERS_PARALLELISM=false`)",
             f"- {len(counts)} test cases x {args.repeats} repeats, alternately; a median "
             f"{result['pairs_per_step_median']:.0f} pairs a step, batches of {BATCH}; the "
             "tensors checked equal", "", "| way | median s a step |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in median.items()]
    lines += ["", f"Each text tokenised once: **{old / new:.1f}x** faster in the same run.", ""]
    (args.out / "pair_tokens.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
