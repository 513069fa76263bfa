"""A supervised warm start, then GRPO on top, then the models compared on held-out cases.

    python examples/sft_then_grpo.py --out runs/sft-grpo               # SmolLM2-135M
    python examples/sft_then_grpo.py --tiny --out /tmp/sft-grpo        # seconds: a tiny random model

1. SFT (LoRA r64, alpha 128, dropout 0.05) teaches the format and which events follow, on
   each training case's real tree with every node at ``target_probability``.
2. GRPO (LoRA r4, alpha 8) on the SFT-merged model calibrates the numbers with the rewards.
3. One ProbabilityTreeInference holds the SFT-merged base; the GRPO adapter is switched on
   and off without reloading the weights, and both are scored on held-out cases.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import psychohistory as ph
from psychohistory.training.config import SFTSettings


def tiny_model_path(folder: str) -> str:
    """Save a random-init tiny llama (SmolLM2's tokenizer) where a model path is needed."""
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> list[ph.EvaluationReport]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--sft-steps", type=int, default=40)
    parser.add_argument("--grpo-steps", type=int, default=10)
    parser.add_argument("--eval-cases", type=int, default=6, help="held-out cases to score")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny random-init model, 1-2 steps, short sequences (for tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/sft-grpo"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="psychohistory-tiny-") as tmp:
        if args.tiny:
            model = tiny_model_path(tmp)
            train = ph.load_dataset("synthetic")[:2]
            test = ph.load_dataset("synthetic")[2:3]
            sft_settings = SFTSettings(output_dir=str(args.out / "sft"), max_steps=2,
                                       per_device_train_batch_size=2, lora_r=8, lora_alpha=16,
                                       max_length=256, save_steps=2)
            grpo_config = ph.TrainerConfig(output_dir=str(args.out / "grpo"), max_steps=1,
                                           num_generations=2, per_device_train_batch_size=2,
                                           max_completion_length=8, save_steps=1)
            new_tokens = 8
        else:
            model = args.model
            train = ph.load_dataset("historical", split="train")
            test = ph.load_dataset("historical", split="test")[: args.eval_cases]
            # r64 / alpha 128 / dropout 0.05 are SFTSettings' defaults
            sft_settings = SFTSettings(output_dir=str(args.out / "sft"), max_steps=args.sft_steps,
                                       max_length=768, save_steps=10)
            grpo_config = ph.TrainerConfig(output_dir=str(args.out / "grpo"),
                                           max_steps=args.grpo_steps, max_completion_length=192,
                                           save_steps=5, learning_rate=1e-4)
            new_tokens = 320

        # 1. supervised warm start
        sft = ph.sft(model, train, settings=sft_settings)
        print(f"SFT: {sft.global_step} steps, adapter {sft.adapter_path}")

        # 2. GRPO: the SFT adapter is merged into the base, and a fresh r4 adapter trained on it
        grpo = ph.Trainer(model, sft_adapter=sft.adapter_path, config=grpo_config).fit(train)
        print(f"GRPO: {grpo.global_step} steps, adapter {grpo.adapter_path}")

        # 3. inference: the SFT-merged base once; the GRPO adapter switched on and off
        from psychohistory.training.models import load_model
        from psychohistory.training.trainer import merge_adapter

        base, tokenizer = load_model(model)
        inference = ph.ProbabilityTreeInference(merge_adapter(base, sft.adapter_path),
                                                tokenizer=tokenizer, max_new_tokens=new_tokens,
                                                retries=0)
        evaluator = ph.TreeEvaluator(matcher="cascade", embedding=not args.tiny)
        reports = []
        for adapter, label in ((None, "sft"), (grpo.adapter_path, "sft+grpo")):
            inference.load_adapter(adapter, "grpo" if adapter else None)
            generations = inference.generate_trees([c.seed for c in test],
                                                   [c.context for c in test])
            reports.append(evaluator.evaluate_many([g.tree for g in generations], test,
                                                   label=label))
        reports[0].print_table(reports[1:])
        for path in reports[0].write(args.out / "report", reports[1:]):
            print("wrote", path)
    return reports


if __name__ == "__main__":
    main()
