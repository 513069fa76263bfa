"""Real trees for the resolution audit: the bundled SmolLM2 before and after the demo's SFT.

The larger share of the audit's trees came from the results table's GPU run
(``benchmarks/gpu/results_table.sh``: greedy and two sampled trees per test case, from the base
model and after its SFT), copied here as ``trees_h200_*.jsonl``; ``--rebuild`` only rebuilds
the pairs from the trees files.

    .venv/bin/python scripts/make_audit_trees.py --start 0 --end 36            # first batch
    .venv/bin/python scripts/make_audit_trees.py --start 36 --samples 2 --adapter data/audit/.sft/final

For the bank's test cases ``[start:end]``, writes (appending) ``data/audit/trees_baseline.jsonl`` and
``trees_sft.jsonl`` (the greedy completions, for ``psychohistory evaluate``) and, with
``--samples`` K > 1, K - 1 sampled completions per case and stage in ``trees_*_sampled.jsonl``.
Then it rebuilds ``data/audit/pairs_unlabelled.jsonl`` from every trees file there: each node of
each tree that parses against every outcome of its case, and against the case's seed and context
(``anchor``: was it a restatement?), each distinct pair once, with no matcher score anywhere,
for an author to label (``data/audit/README.md``). The demo's SFT (8 steps, LoRA r64, the
bank's train split) runs once; ``--adapter`` reuses its output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT = ROOT / "data" / "audit"


def append_trees(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


# Share of a stage's parsed trees whose pairs are all audited: the SFT model's trees (333 from
# the H200 run) hold ~18 outcome pairs each, far more than can be labelled; a tree is in or out
# by a hash of its file and line, so the choice never looks at a node's text or a score.
TREE_SHARE = {"h200_sft": 0.25}


def kept(stage: str, file_name: str, line_no: int) -> bool:
    import hashlib

    share = TREE_SHARE.get(stage, 1.0)
    digest = hashlib.sha256(f"{file_name}:{line_no}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def rebuild_pairs(out: Path) -> tuple[int, int]:
    """Every (node, outcome) and (node, seed/context) pair of the kept trees, once each."""
    from psychohistory.datasets import load_dataset
    from psychohistory.errors import TreeParseError
    from psychohistory.tree import parse_tree

    cases = {c.id: c for c in load_dataset("historical", split="test")}
    rows: dict[tuple[str, str], dict[str, str]] = {}
    trees = 0
    for path in sorted(out.glob("trees_*.jsonl")):
        stage = path.stem.removeprefix("trees_").removesuffix("_sampled")
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not kept(stage, path.name, line_no):
                continue
            record = json.loads(line)
            case = cases.get(record["case_id"])
            if case is None:  # no longer a test case: not audited
                continue
            try:
                tree = parse_tree(record["completion"], seed=case.seed)
            except TreeParseError:
                continue
            trees += 1
            anchors = [("seed", case.seed)] + ([("context", case.context)] if case.context else [])
            for view in tree.iter_nodes():
                targets = [(o.id, o.event, "outcome") for o in case.outcomes]
                targets += [(name, text, "anchor") for name, text in anchors]
                for target_id, text, role in targets:
                    rows.setdefault((view.node.event, text), {
                        "case_id": case.id, "stage": stage, "node": view.path_str,
                        "seed": case.seed, "predicted": view.node.event, "target": target_id,
                        "role": role, "actual": text})
    with (out / "pairs_unlabelled.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows.values():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return trees, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--end", type=int, default=None)
    parser.add_argument("--samples", type=int, default=1, help="draws per case and stage")
    parser.add_argument("--sft-steps", type=int, default=8)
    parser.add_argument("--adapter", type=Path, default=None, help="reuse this SFT adapter")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rebuild", action="store_true", help="only rebuild the pairs")
    args = parser.parse_args(argv)
    if args.rebuild:
        trees, pairs = rebuild_pairs(args.out)
        print(f"{trees} trees kept; {pairs} distinct pairs in {args.out / 'pairs_unlabelled.jsonl'}")
        return 0

    import torch

    from psychohistory.datasets import load_dataset
    from psychohistory.demo import DemoConfig
    from psychohistory.inference import ProbabilityTreeInference
    from psychohistory.training.config import SFTSettings
    from psychohistory.training.models import load_model
    from psychohistory.training.prompts import build_prompt
    from psychohistory.training.sft import sft

    config = DemoConfig()
    cases = load_dataset("historical", split="test")[args.start:args.end]
    args.out.mkdir(parents=True, exist_ok=True)
    adapter = args.adapter
    if adapter is None:
        adapter = sft(config.model, load_dataset("historical", split="train"), settings=SFTSettings(
            output_dir=str(args.out / ".sft"), max_steps=args.sft_steps, max_length=768,
            per_device_train_batch_size=config.sft_batch_size, save_steps=args.sft_steps,
            logging_steps=4)).adapter_path
    model, tokenizer = load_model(config.model)
    inference = ProbabilityTreeInference(model, tokenizer=tokenizer,
                                         max_new_tokens=config.max_new_tokens, retries=0)
    for stage, path in (("baseline", None), ("sft", str(adapter))):
        inference.load_adapter(path, None if path is None else "sft")  # None: the base model
        for start in range(0, len(cases), config.batch_size):
            batch = cases[start:start + config.batch_size]
            greedy = inference.generate_trees([c.seed for c in batch], [c.context for c in batch],
                                              batch_size=config.batch_size)
            append_trees(args.out / f"trees_{stage}.jsonl",
                         [{"case_id": c.id, "completion": g.text} for c, g in zip(batch, greedy,
                                                                                  strict=True)])
            prompts = [build_prompt(tokenizer, c.seed, c.context) for c in batch]
            for draw in range(1, args.samples):
                torch.manual_seed(draw)
                texts = inference.generate_text(prompts, sample=True)
                append_trees(args.out / f"trees_{stage}_sampled.jsonl",
                             [{"case_id": c.id, "completion": t} for c, t in zip(batch, texts,
                                                                                 strict=True)])
            print(f"{stage}: {start + len(batch)} of {len(cases)} cases", flush=True)
    trees, pairs = rebuild_pairs(args.out)
    print(f"{trees} trees parse; {pairs} distinct pairs in {args.out / 'pairs_unlabelled.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
