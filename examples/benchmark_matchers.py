"""Benchmark matchers on labelled event pairs: precision, recall, F1, ROC AUC, pairs/s, and
accuracy on each kind of hard negative (antonyms, swapped entities, changed numbers...).

    python examples/benchmark_matchers.py                          # exact, fuzzy, embedding, cascade
    python examples/benchmark_matchers.py --no-embedding           # string matchers only (fast)
    python examples/benchmark_matchers.py --matcher my-matcher     # any registered name
    python examples/benchmark_matchers.py --pairs my_pairs.jsonl   # your own labelled pairs
    python examples/benchmark_matchers.py --sweep fuzzy            # F1 by threshold

A pairs file is JSONL with ``predicted``/``actual`` (or ``left``/``right``), a 0/1 ``label`` and
an optional ``kind``, or a CSV with the same columns. The bundled pairs are split in halves:
defaults were tuned on ``dev``, so report ``test``. ``psychohistory bench matchers`` and
``benchmarks/bench_matchers.py`` are the full benchmark; this is the part to copy.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

import psychohistory as ph
from psychohistory.bench.matchers import evaluate_matcher, load_pairs, results_table


def build(name: str, *, embedding: bool) -> object:
    # the cascade's embedding stage needs sentence-transformers (pip install 'psychohistory[embed]')
    return ph.get_matcher(name, embedding=embedding) if name == "cascade" else ph.get_matcher(name)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matcher", dest="matchers", action="append", default=None,
                        help="registered matcher (repeatable; default: exact, fuzzy, "
                             "embedding, cascade)")
    parser.add_argument("--no-embedding", action="store_true",
                        help="leave out sentence embeddings (the embedding matcher and the "
                             "cascade's embedding stage)")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="labelled pairs, JSONL or CSV (default: bundled event pairs)")
    parser.add_argument("--split", choices=["dev", "test"], default="test",
                        help="half of the bundled pairs (ignored with --pairs)")
    parser.add_argument("--sweep", default=None, metavar="MATCHER",
                        help="also print F1 at thresholds 0.5-0.95 for this matcher")
    parser.add_argument("--tiny", action="store_true",
                        help="the first 60 pairs, no embeddings (for tests)")
    parser.add_argument("--out", type=Path, default=None, help="write matchers.json and .md")
    args = parser.parse_args(argv)

    pairs = load_pairs(args.pairs, split=None if args.pairs else args.split)
    if args.tiny:
        pairs = pairs[:60]
    dataset = args.pairs.name if args.pairs else f"event-pairs {args.split}"
    print(f"{len(pairs)} pairs ({sum(p.label for p in pairs)} positive) from {dataset}")

    embedding = not (args.no_embedding or args.tiny)
    default = ["exact", "fuzzy", "embedding", "cascade"] if embedding else [
        "exact", "fuzzy", "cascade"]
    results = []
    for name in args.matchers or default:
        matcher = build(name, embedding=embedding)
        matcher.score_pairs([pairs[0].left], [pairs[0].right])  # load models before timing
        results.append(evaluate_matcher(matcher, pairs, name=name, dataset=dataset))
    table = results_table(results)
    print(table)

    if args.sweep:
        matcher = build(args.sweep, embedding=embedding)
        scores = np.asarray(matcher.score_pairs([p.left for p in pairs],
                                                [p.right for p in pairs]))
        labels = np.array([p.label for p in pairs]) == 1
        print(f"\n{args.sweep}: F1 by threshold (its own: {matcher.threshold})")
        for threshold in np.arange(0.5, 0.96, 0.05):
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
