"""Real trees for the resolution audit: the bundled SmolLM2 before and after the demo's SFT.

    .venv/bin/python scripts/make_audit_trees.py --cases 30     # ~20 minutes on the 2-core CPU

Writes ``data/audit/trees_baseline.jsonl`` and ``data/audit/trees_sft.jsonl`` (the raw
completions, for ``psychohistory evaluate``) and ``data/audit/pairs_unlabelled.jsonl``: every
predicted node of every tree that parsed against every outcome of its case, with no matcher
score anywhere, for an author to label (``data/audit/README.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT = ROOT / "data" / "audit"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=30, help="test-split cases to forecast")
    parser.add_argument("--sft-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from psychohistory.datasets import load_dataset
    from psychohistory.demo import DemoConfig, generate_for_cases, write_generations
    from psychohistory.inference import ProbabilityTreeInference
    from psychohistory.training.config import SFTSettings
    from psychohistory.training.models import load_model
    from psychohistory.training.sft import sft

    config = DemoConfig()
    cases = load_dataset("historical", split="test")[: args.cases]
    args.out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(config.model)
    inference = ProbabilityTreeInference(model, tokenizer=tokenizer,
                                         max_new_tokens=config.max_new_tokens, retries=0)
    stages = {"baseline": generate_for_cases(inference, cases, label="baseline",
                                             batch_size=config.batch_size)}
    adapter = sft(config.model, load_dataset("historical", split="train"), settings=SFTSettings(
        output_dir=str(args.out / ".sft"), max_steps=args.sft_steps, max_length=768,
        per_device_train_batch_size=config.sft_batch_size, save_steps=args.sft_steps,
        logging_steps=4)).adapter_path
    inference.load_adapter(adapter, "sft")
    stages["sft"] = generate_for_cases(inference, cases, label="sft", batch_size=config.batch_size)

    rows = []
    for stage, generations in stages.items():
        write_generations(args.out / f"trees_{stage}.jsonl", cases, generations)
        for case, gen in zip(cases, generations, strict=True):
            if gen.tree is None:
                continue
            for view in gen.tree.iter_nodes():
                for outcome in case.outcomes:
                    rows.append({"case_id": case.id, "stage": stage, "node": view.path_str,
                                 "seed": case.seed, "predicted": view.node.event,
                                 "outcome": outcome.id, "actual": outcome.event})
    unique = list({(r["predicted"], r["actual"]): r for r in rows}.values())
    with (args.out / "pairs_unlabelled.jsonl").open("w", encoding="utf-8") as handle:
        for row in unique:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    parsed = {s: sum(g.tree is not None for g in gens) for s, gens in stages.items()}
    print(f"{len(cases)} cases; trees that parsed: {parsed}; "
          f"{len(rows)} node-outcome pairs, {len(unique)} distinct")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
