"""Quick start: load cases, parse a model's tree, evaluate it, and score it with the rewards.

    python examples/quickstart.py                 # fuzzy + exact matching (fast)
    python examples/quickstart.py --embedding     # the full cascade, with sentence embeddings
    python examples/quickstart.py --out runs/quickstart

No model is loaded: the "model output" below is a string, as a model would write it (prose
around a fenced JSON block). Swap in your own model's text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import psychohistory as ph

# What a model might write for the Brexit case: prose, then the tree in a fenced block.
MODEL_OUTPUT = """Here is my forecast.
```json
{"seed": "United Kingdom votes to leave the European Union",
 "children": [
   {"event": "David Cameron announces he will resign as prime minister", "probability": 0.8,
    "children": [{"event": "Theresa May becomes prime minister", "probability": 0.5}]},
   {"event": "The pound falls to a 31-year low against the dollar", "probability": 0.7},
   {"event": "Scotland holds a second independence referendum", "probability": 0.3}]}
```
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding", action="store_true",
                        help="add the sentence-embedding stage to the cascade matcher")
    parser.add_argument("--out", type=Path, default=None, help="write tree.json and metrics.json")
    args = parser.parse_args(argv)

    # 1. Cases: a seed event and what really followed (bundled, or load_cases("file.jsonl")).
    cases = {case.id: case for case in ph.load_dataset("historical")}
    case = cases["brexit-2016"]
    print(f"case {case.id}: {len(case.outcomes)} real outcomes")
    for outcome in case.outcomes:
        print(f"  depth {case.depth_of(outcome.id)}  {outcome.event}")

    # 2. Parse the model's raw text; TreeParseError says what is wrong and where.
    tree = ph.parse_tree(MODEL_OUTPUT, seed=case.seed)
    print(f"\nparsed tree: {len(tree)} nodes, depth {tree.depth}")
    try:
        ph.parse_tree('{"seed": "S", "children": [{"event": "E", "probability": 1.7}]}')
    except ph.TreeParseError as exc:
        print(f"a bad tree is refused with: {exc}")

    # 3. Evaluate: match predicted events to real ones, then score the probabilities.
    evaluator = ph.TreeEvaluator(matcher="cascade", embedding=args.embedding)
    metrics = evaluator.evaluate(tree, case)
    print(f"\nBrier {metrics.brier:.3f}  log score {metrics.log_score:.3f}  "
          f"coverage {metrics.coverage:.2f}  precision {metrics.precision:.2f}")
    print("matched by:", {k: round(v, 2) for k, v in metrics.coverage_by_method.items() if v})
    for node in metrics.resolution.nodes:
        status = (f"matched {node.outcome} by {node.method}" if node.happened
                  else "did not happen" if node.scored else "not scored (parent false)")
        print(f"  p={node.probability:.2f}  {node.event}: {status}")
    print("missed outcomes (scored as p=0):", [o.id for o in metrics.resolution.missed])

    # 4. Rewards: TRL's contract, reward(completions, case=[...]) -> list of floats.
    rewards = {}
    for name in ("calibration", "sharpness", "diversity", "format"):
        options = {} if name == "format" else {"matcher": evaluator.matcher}
        reward = ph.get_reward(name, **options)
        rewards[name] = reward([MODEL_OUTPUT, "no tree here"], case=[case, case])
    print("\nrewards for [the tree, an unparsable completion]:")
    for name, values in rewards.items():
        print(f"  {name:12s} {values}")

    result = {"metrics": metrics.to_dict(), "rewards": rewards}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tree.json").write_text(tree.to_json(indent=2) + "\n", encoding="utf-8")
        (args.out / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n",
                                               encoding="utf-8")
        print(f"\nwrote {args.out / 'tree.json'} and {args.out / 'metrics.json'}")
    return result


if __name__ == "__main__":
    main()
