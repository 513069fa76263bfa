"""Benchmark matchers on labelled event pairs: precision, recall, F1, ROC AUC, pairs/s, and
accuracy on each kind of hard negative (reversals, swapped entities, changed numbers...).

    python examples/benchmark_matchers.py                          # exact, fuzzy, embedding, cascade
    python examples/benchmark_matchers.py --matcher my-matcher     # any registered name
    python examples/benchmark_matchers.py --pairs my_pairs.jsonl   # your own labelled pairs
    python examples/benchmark_matchers.py --sweep cascade          # F1 by threshold

A pairs file is JSONL with ``predicted``/``actual`` (or ``left``/``right``), a 0/1 ``label`` and
an optional ``kind``, or a CSV with the same columns. By default the pairs are the blind set
(``event_pairs_blind``), which the shipped verifier was never trained or tuned on.
``psychohistory bench matchers`` and ``benchmarks/bench_matchers.py`` are the full benchmark;
this is the part to copy.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

import psychohistory as ph
from psychohistory.bench.matchers import evaluate_matcher, load_pairs, results_table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matcher", dest="matchers", action="append", default=None,
                        help="registered matcher (repeatable; default: exact, fuzzy, "
                             "embedding, cascade)")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="labelled pairs, JSONL or CSV (default: the bundled blind pairs)")
    parser.add_argument("--sweep", default=None, metavar="MATCHER",
                        help="also print F1 at thresholds 0.1-0.9 for this matcher")
    parser.add_argument("--tiny", action="store_true", help="the first 60 pairs (for tests)")
    parser.add_argument("--out", type=Path, default=None, help="write matchers.json and .md")
    args = parser.parse_args(argv)

    pairs = load_pairs(args.pairs or "event-pairs-blind")
    if args.tiny:
        pairs = pairs[:60]
    dataset = args.pairs.name if args.pairs else "event-pairs-blind"
    print(f"{len(pairs)} pairs ({sum(p.label for p in pairs)} positive) from {dataset}")

    results = []
    built = {}
    for name in args.matchers or ["exact", "fuzzy", "embedding", "cascade"]:
        matcher = built[name] = ph.get_matcher(name)
        matcher.score_pairs([pairs[0].left], [pairs[0].right])  # load models before timing
        results.append(evaluate_matcher(matcher, pairs, name=name, dataset=dataset))
    table = results_table(results)
    print(table)

    if args.sweep:
        matcher = built.get(args.sweep) or ph.get_matcher(args.sweep)
        scores = np.asarray(matcher.score_pairs([p.left for p in pairs],
                                                [p.right for p in pairs]))
        labels = np.array([p.label for p in pairs]) == 1
        print(f"\n{args.sweep}: F1 by threshold (its own: {matcher.threshold})")
        for threshold in np.arange(0.1, 0.91, 0.1):
            hit = scores >= threshold
            tp, fp, fn = (hit & labels).sum(), (hit & ~labels).sum(), (~hit & labels).sum()
            f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            print(f"  {threshold:.2f}  F1 {f1:.3f}")

    rows = [asdict(r) for r in results]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "matchers.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "matchers.md").write_text(table + "\n")
        print("wrote", args.out / "matchers.json", "and", args.out / "matchers.md")
    return rows


if __name__ == "__main__":
    main()
