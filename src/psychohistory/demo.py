"""The main job behind ``make demo``: a real model forecasts real events and is scored.

The bundled SmolLM2-135M writes probability trees for held-out historical cases on the CPU,
the cascade matcher resolves them against what happened, and the report (table, JSON,
Markdown, reliability diagram, per-depth chart) is written to ``out_dir``.
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

    def __post_init__(self) -> None:
        if self.n_cases < 1:
            raise ValueError(f"n_cases must be >= 1, got {self.n_cases}")


def generate_for_cases(inference: Any, cases: list[Case], *, label: str,
                       batch_size: int) -> list[Any]:
    """Trees for ``cases`` with a rich progress bar."""
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task(f"{label}: writing trees", total=len(cases))
        return list(inference.generate_trees(
            [c.seed for c in cases], [c.context for c in cases], batch_size=batch_size,
            progress=lambda n: progress.advance(task, n)))


def write_generations(path: Path, cases: list[Case], generations: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for case, gen in zip(cases, generations, strict=True):
            handle.write(json.dumps({"case_id": case.id, "completion": gen.text}) + "\n")


def run_demo(config: DemoConfig | None = None) -> Any:
    """Generate, evaluate and report; returns the ``EvaluationReport``."""
    from rich.console import Console

    from psychohistory.evaluation import TreeEvaluator
    from psychohistory.inference import ProbabilityTreeInference

    config = config or DemoConfig()
    console = Console()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = load_dataset("historical", split="test")[: config.n_cases]
    console.print(f"[bold]psychohistory demo[/]: {config.model} forecasts {len(cases)} held-out "
                  "historical cases on this machine")
    inference = ProbabilityTreeInference(config.model, max_new_tokens=config.max_new_tokens,
                                         retries=1)
    generations = generate_for_cases(inference, cases, label="baseline",
                                     batch_size=config.batch_size)
    write_generations(out / "baseline_trees.jsonl", cases, generations)
    evaluator = TreeEvaluator(matcher="cascade")
    report = evaluator.evaluate_many([g.tree for g in generations], cases, label="baseline")
    report.print_table(console=console)
    for path in report.write(out):
        console.print(f"wrote {path}")
    return report
