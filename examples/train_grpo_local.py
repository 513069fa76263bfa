"""GRPO on this machine (CPU or one GPU), then the trained adapter hot-swapped in for inference.

    python examples/train_grpo_local.py --out runs/grpo                 # SmolLM2-135M, 20 steps
    python examples/train_grpo_local.py --tiny --out /tmp/grpo          # seconds: a tiny random model
    python examples/train_grpo_local.py --out runs/grpo --resume        # continue an interrupted run

On a 2-core CPU one GRPO step of SmolLM2-135M (4 completions x 128 tokens) takes minutes,
nearly all of it generation; real runs belong on a GPU (docs/backends.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import psychohistory as ph


def tiny_model_path(folder: str) -> str:
    """Save a random-init tiny llama (SmolLM2's tokenizer) where a model path is needed."""
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> ph.TrainResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="a path, a hub name available offline, a .gguf, or the bundled alias")
    parser.add_argument("--cases", default="historical",
                        help="cases .jsonl or bundled dataset (its train split is used)")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--reward", dest="rewards", action="append", default=None,
                        help="a registered reward (repeatable; default: the library's mix)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny random-init model, 1 step, 8-token completions (for tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/grpo"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="psychohistory-tiny-") as tmp:
        if args.tiny:
            model = tiny_model_path(tmp)
            cases = ph.load_dataset("synthetic")[:2]
            config = ph.TrainerConfig(
                output_dir=str(args.out), max_steps=1, num_generations=2,
                per_device_train_batch_size=2, max_completion_length=8, save_steps=1)
        else:
            model = args.model
            bundled = Path(args.cases).suffix != ".jsonl"
            cases = ph.load_dataset(args.cases, split="train" if bundled else None)
            # LoRA r4 / alpha 8 and a group of 4 are the defaults; anything TRL's GRPOConfig
            # knows passes through `extra` (checked: a misspelt key is named with a suggestion)
            config = ph.TrainerConfig(
                output_dir=str(args.out), max_steps=args.max_steps, num_generations=4,
                per_device_train_batch_size=4, max_completion_length=192, save_steps=5,
                learning_rate=1e-4, extra={"top_p": 0.95})

        kwargs = {"rewards": args.rewards} if args.rewards else {}
        trainer = ph.Trainer(model, config=config, **kwargs)
        print(f"GRPO: {len(cases)} cases, rewards {trainer.rewards}, weights {trainer.weights}")
        result = trainer.fit(cases, resume=args.resume)
        print(f"trained {result.global_step} steps; adapter in {result.adapter_path}")
        if result.resumed_from:
            print("resumed from", result.resumed_from)
        for entry in result.log_history:
            if "reward" in entry:
                print(f"  step {entry.get('step')}: reward {entry['reward']:.3f}")

        # Inference: the base model loads once; adapters are switched without reloading it.
        inference = ph.ProbabilityTreeInference(model, max_new_tokens=8 if args.tiny else 320,
                                                retries=0)
        case = cases[0]
        for adapter, name in ((None, None), (result.adapter_path, "grpo")):
            inference.load_adapter(adapter, name)
            generation = inference.generate_trees([case.seed], [case.context])[0]
            shown = generation.tree.to_json() if generation.tree else (
                f"(unparsable: {generation.error})")
            print(f"[{name or 'base'}] {shown[:300]}")
    return result


if __name__ == "__main__":
    main()
