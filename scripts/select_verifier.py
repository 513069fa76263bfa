"""Choose which trained verifier ships: score candidate weight files on the dev pairs only.

    .venv/bin/python scripts/select_verifier.py /tmp/cands/*/ --out benchmarks/results/verifier_selection.md

Each candidate is a folder holding one ``.safetensors`` verifier file and its manifest. Scored on
one set of dev pairs other authors wrote for the bank's dev cases (``--set``: ``pairs_dev4``,
``pairs_dev3``'s recipe with near copies of every outcome and seed, the default for round 5;
``pairs_dev3``, free-form pairs with seed restatements and fragments that are not events, which
chose round 4; ``pairs_dev2``, the same without fragments, which chose round 3; ``pairs_dev``,
the first set, which chose round 2 and now calibrates),
both orders averaged, and, from each manifest, the bank dev split. The blind pairs, the resolution
audit and the test split are never read here: they measure the choice, they do not make it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from train_verifier import extra_pairs, free_pairs, pair_metrics  # noqa: E402

from psychohistory.matching.verifier import VerifierMatcher  # noqa: E402

SETS = {
    "pairs_dev4": lambda: free_pairs(ROOT / "data" / "pairs_dev4", split="dev", training=False),
    "pairs_dev3": lambda: free_pairs(ROOT / "data" / "pairs_dev3", split="dev", training=False),
    "pairs_dev2": lambda: free_pairs(ROOT / "data" / "pairs_dev2", split="dev", training=False),
    "pairs_dev": lambda: extra_pairs(ROOT / "data" / "pairs_dev", split="dev"),
}


def score_candidate(folder: Path, pairs: list) -> dict:
    found = sorted(folder.glob("*.safetensors"))
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one .safetensors file, found {len(found)}")
    weights = found[0]
    verifier = VerifierMatcher(weights=weights)
    manifest = verifier.manifest  # loads (and hash-checks) before the clock starts
    started = time.perf_counter()
    forward = verifier.score_pairs([p.left for p in pairs], [p.right for p in pairs])
    seconds = time.perf_counter() - started
    backward = verifier.score_pairs([p.right for p in pairs], [p.left for p in pairs])
    probabilities = (forward + backward) / 2
    labels = np.array([p.label for p in pairs], dtype=float)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for pair, probability in zip(pairs, probabilities, strict=True):
        by_kind[pair.kind.removeprefix("extra_").removeprefix("free_")].append((probability >= 0.5) == bool(pair.label))
    return {
        "candidate": folder.name, "sha256": manifest["sha256"],
        "base": manifest.get("base_model", "all-MiniLM-L6-v2"),
        "size_mb": round(weights.stat().st_size / 1e6, 1),
        "bank_dev_auc": manifest.get("bank_dev_metrics", manifest["dev_metrics"])["auc"],
        "pairs_dev": pair_metrics(probabilities, labels),
        "accuracy_by_kind": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
        "pairs_per_s": len(pairs) / seconds,
        "command": manifest.get("training", {}).get("command", "(shipped)"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="a .md table (and .json beside it)")
    parser.add_argument("--set", choices=sorted(SETS), default="pairs_dev4")
    args = parser.parse_args(argv)
    import torch

    pairs = SETS[args.set]()
    rows = []
    for folder in args.candidates:
        rows.append(score_candidate(folder, pairs))
        print(json.dumps(rows[-1]), flush=True)
    kinds = sorted({k for r in rows for k in r["accuracy_by_kind"]})
    lines = [
        "# Choosing the verifier on dev pairs", "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- command: `.venv/bin/python scripts/select_verifier.py {' '.join(map(str, args.candidates))}"
        f" --set {args.set} --out {args.out}`",
        f"- machine: {torch.get_num_threads()} torch threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'} (pairs/s on this machine, one order)",
        f"- data/{args.set}: {len(pairs)} pairs ({sum(p.label for p in pairs)} same event) on the "
        "bank's 55 dev cases, by authors who saw no candidate and no score; scores are the "
        "mean of both text orders; the blind, audit and test sets are not read", "",
        f"| candidate | base | MB | bank dev AUC | {args.set} AUC | F1 | precision | recall | ECE | "
        + " | ".join(kinds) + " | pairs/s |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(kinds) + "---|",
    ]
    for r in rows:
        m = r["pairs_dev"]
        lines.append(f"| {r['candidate']} | {r['base']} | {r['size_mb']} | {r['bank_dev_auc']:.4f} | "
                     f"{m['auc']:.4f} | {m['f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
                     f"{m['ece']:.3f} | "
                     + " | ".join(f"{r['accuracy_by_kind'].get(k, float('nan')):.2f}" for k in kinds)
                     + f" | {r['pairs_per_s']:.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
