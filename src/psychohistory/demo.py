"""The main job behind ``make demo``: a real model forecasts real events, is trained, and is scored.

1. The bundled SmolLM2-135M writes probability trees for held-out historical cases (baseline).
2. A short supervised warm start (LoRA r64) on the training cases' real trees.
3. A few GRPO steps (LoRA r4) on the training cases with the library's rewards.
4. The trained model writes trees for the same held-out cases; both are scored by the cascade
   matcher and reported side by side (table, JSON, Markdown, reliability and per-depth plots).

On the 2-core CPU this takes about ten minutes (8 SFT steps, 2 GRPO steps: a CPU fits little
more); the steps are few, so expect format and coverage to move more than calibration. Real runs belong on a GPU (``docs/training.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psychohistory.cases import Case
from psychohistory.datasets import load_dataset


@dataclass
class DemoConfig:
    n_cases: int = 6
    out_dir: str = "runs/demo"
    model: str = "smollm2-135m-instruct"
    max_new_tokens: int = 256
    batch_size: int = 6
    sft_steps: int = 8
    sft_batch_size: int = 2
    grpo_steps: int = 2
    grpo_completion_tokens: int = 256

    def __post_init__(self) -> None:
        if self.n_cases < 1:
            raise ValueError(f"n_cases must be >= 1, got {self.n_cases}")
        if self.sft_steps < 0 or self.grpo_steps < 0:
            raise ValueError("sft_steps and grpo_steps must be >= 0")


def generate_for_cases(inference: Any, cases: list[Case], *, label: str,
                       batch_size: int, sample: bool = False) -> list[Any]:
    """Trees for ``cases`` with a rich progress bar."""
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task(f"{label}: writing trees", total=len(cases))
        return list(inference.generate_trees(
            [c.seed for c in cases], [c.context for c in cases], batch_size=batch_size,
            sample=sample, progress=lambda n: progress.advance(task, n)))


def write_generations(path: Path, cases: list[Case], generations: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for case, gen in zip(cases, generations, strict=True):
            handle.write(json.dumps({"case_id": case.id, "completion": gen.text}) + "\n")


def run_demo(config: DemoConfig | None = None) -> list[Any]:
    """Baseline, train, evaluate again; returns the reports (baseline first)."""
    from rich.console import Console

    from psychohistory.evaluation import TreeEvaluator
    from psychohistory.inference import ProbabilityTreeInference
    from psychohistory.training.models import load_model

    config = config or DemoConfig()
    console = Console()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test_cases = load_dataset("historical", split="test")[: config.n_cases]
    train_cases = load_dataset("historical", split="train")
    console.print(f"[bold]psychohistory demo[/]: {config.model} forecasts {len(test_cases)} "
                  f"held-out historical cases, trains on {len(train_cases)}, forecasts again")
    evaluator = TreeEvaluator(matcher="cascade")

    def forecast(inference: Any, label: str) -> Any:
        from psychohistory.training.loss import ground_truth_loss

        generations = generate_for_cases(inference, test_cases, label=label,
                                         batch_size=config.batch_size)
        write_generations(out / f"{label}_trees.jsonl", test_cases, generations)
        report = evaluator.evaluate_many([g.tree for g in generations], test_cases, label=label,
                                         parse_errors=[g.error for g in generations])
        with inference.active_adapter():
            gt = ground_truth_loss(inference.model, inference.tokenizer, test_cases)
        report.extra.update({"loss (real trees)": gt.loss, "perplexity (real trees)": gt.perplexity})
        return report

    model, tokenizer = load_model(config.model)
    reports = [forecast(ProbabilityTreeInference(model, tokenizer=tokenizer,
                                                 max_new_tokens=config.max_new_tokens,
                                                 retries=0), "baseline")]
    if config.sft_steps or config.grpo_steps:
        reports.append(forecast(_train(config, train_cases, out, console), "trained"))
    reports[0].print_table(reports[1:], console=console)
    for path in reports[0].write(out, reports[1:]):
        console.print(f"wrote {path}")
    return reports


def _train(config: DemoConfig, cases: list[Case], out: Path, console: Any) -> Any:
    """SFT then GRPO on ``cases``; returns an inference object with the trained adapters."""
    from psychohistory.inference import ProbabilityTreeInference
    from psychohistory.training.config import SFTSettings, TrainerConfig
    from psychohistory.training.models import load_model
    from psychohistory.training.sft import sft
    from psychohistory.training.trainer import Trainer, merge_adapter

    sft_adapter = None
    if config.sft_steps:
        console.print(f"[bold]SFT[/]: {config.sft_steps} steps, LoRA r64, on real trees")
        sft_adapter = sft(config.model, cases, settings=SFTSettings(
            output_dir=str(out / "sft"), max_steps=config.sft_steps, max_length=768,
            per_device_train_batch_size=config.sft_batch_size,
            save_steps=max(1, config.sft_steps), logging_steps=4)).adapter_path
    grpo_adapter = None
    if config.grpo_steps:
        console.print(f"[bold]GRPO[/]: {config.grpo_steps} steps, group of 4, LoRA r4")
        grpo_adapter = Trainer(config.model, sft_adapter=sft_adapter, config=TrainerConfig(
            output_dir=str(out / "grpo"), max_steps=config.grpo_steps, num_generations=4,
            per_device_train_batch_size=4, max_completion_length=config.grpo_completion_tokens,
            save_steps=1, learning_rate=1e-4)).fit(cases).adapter_path
    model, tokenizer = load_model(config.model)
    if sft_adapter and grpo_adapter:
        model = merge_adapter(model, sft_adapter)  # GRPO trained on the merged SFT model
    inference = ProbabilityTreeInference(model, tokenizer=tokenizer,
                                         max_new_tokens=config.max_new_tokens, retries=0)
    inference.load_adapter(grpo_adapter or sft_adapter, "trained")
    return inference
