"""Evaluate a JSONL file of model completions against cases and write a report folder.

    python examples/evaluate_trees.py TREES.jsonl --cases historical --out runs/eval
    python examples/evaluate_trees.py --out runs/eval      # makes a sample TREES file first

TREES.jsonl holds one record per line, either ``{"case_id": ..., "completion": "<raw model
text>"}`` (what ``psychohistory generate --out`` writes) or a tree with a ``case_id``. A
completion that does not parse is the model's failure and scores as "every outcome missed";
a record that names no known case is skipped and reported, never silently dropped.

The report folder gets report.json, report.md, reliability.png and per_depth.png (the same
as ``psychohistory evaluate TREES CASES --out DIR``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import psychohistory as ph
from psychohistory.evaluation import load_trees


def write_sample_trees(cases: list[ph.Case], path: Path, *, seed: int = 0) -> Path:
    """A stand-in for a model's output: each case's real tree, pruned and with noisy numbers,
    plus one invented event, one unparsable completion and one unknown case id."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            tree = case.to_tree(probability=0.7)
            tree.children = [c for c in tree.children if rng.random() < 0.7]
            for view in tree.iter_nodes():
                view.node.probability = round(rng.uniform(0.3, 0.95), 2)
            tree.children.append(ph.EventNode(event="A general strike paralyses the capital",
                                              probability=0.2))
            text = "Forecast:\n```json\n" + tree.to_json() + "\n```"
            handle.write(json.dumps({"case_id": case.id, "completion": text}) + "\n")
        handle.write(json.dumps({"case_id": cases[0].id, "completion": "I cannot say."}) + "\n")
        handle.write(json.dumps({"case_id": "no-such-case", "completion": "{}"}) + "\n")
    return path


def main(argv: list[str] | None = None) -> ph.EvaluationReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="?", type=Path, default=None,
                        help="JSONL of {case_id, completion} (default: write a sample)")
    parser.add_argument("--cases", default="historical",
                        help="a cases .jsonl file or a bundled dataset name")
    parser.add_argument("--split", choices=["train", "dev", "test"], default="test",
                        help="split of a bundled dataset (default: test)")
    parser.add_argument("--matcher", default="cascade", help="a registered matcher name")
    parser.add_argument("--tiny", action="store_true", help="a few cases only")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"))
    args = parser.parse_args(argv)

    cases = ph.load_dataset(args.cases, split=args.split if Path(args.cases).suffix != ".jsonl"
                            else None)
    if args.tiny:
        cases = cases[:4]
    args.out.mkdir(parents=True, exist_ok=True)
    trees_path = args.trees or write_sample_trees(cases, args.out / "sample_trees.jsonl")

    trees, matched_cases, skipped, errors = load_trees(trees_path, cases)
    for message in skipped:
        print("skipped:", message)
    evaluator = ph.TreeEvaluator(matcher=args.matcher)
    report = evaluator.evaluate_many(trees, matched_cases, skipped=skipped, parse_errors=errors,
                                     label=trees_path.stem)
    report.print_table()
    print(report.to_markdown())
    for path in report.write(args.out):
        print("wrote", path)
    return report


if __name__ == "__main__":
    main()
