"""Held-out evaluation during GRPO: every ``eval_steps`` steps, greedy trees for the eval cases
are generated with the model as it is, resolved with the run's matcher and scored by
:class:`~psychohistory.evaluation.TreeEvaluator`'s headline metrics.

The figures go into the trainer's log history (``dev_brier``, ``dev_coverage`` ...) and, one
JSON line per evaluation, into ``<output_dir>/dev_eval.jsonl``, which survives a crash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from psychohistory.cases import Case

logger = logging.getLogger("psychohistory.training")

LOGGED = ("brier", "log_score", "ece", "coverage", "precision", "restated_seed_rate")


def evaluate_model(model: Any, tokenizer: Any, cases: Sequence[Case], matcher: Any, *,
                   max_new_tokens: int, batch_size: int = 64) -> dict[str, float]:
    """Headline metrics of greedy trees (one attempt each: an unparsable tree counts as one)."""
    from psychohistory.evaluation import TreeEvaluator
    from psychohistory.inference import ProbabilityTreeInference

    inference = ProbabilityTreeInference(model, tokenizer=tokenizer,
                                         max_new_tokens=max_new_tokens, retries=0)
    was_training = model.training
    try:
        generations = inference.generate_trees([c.seed for c in cases], [c.context for c in cases],
                                               batch_size=batch_size)
    finally:
        model.train(was_training)
    report = TreeEvaluator(matcher).evaluate_many([g.tree for g in generations], list(cases),
                                                  label="dev")
    metrics = {key: float(getattr(report, key)) for key in LOGGED}
    metrics["unparsable_rate"] = report.n_unparsable / max(report.n_trees, 1)
    return metrics


class DevEvalCallback(TrainerCallback):
    """Evaluate on held-out cases at step 0 and every ``every`` steps (and at the end)."""

    def __init__(self, cases: Sequence[Case], *, every: int, matcher: Any, tokenizer: Any,
                 max_new_tokens: int, output_dir: str | Path) -> None:
        self.cases = list(cases)
        self.every = every
        self.matcher = matcher
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.path = Path(output_dir) / "dev_eval.jsonl"
        self.done: set[int] = set()

    def _run(self, state: Any, model: Any) -> None:
        if state.global_step in self.done or not state.is_world_process_zero:
            return
        self.done.add(state.global_step)
        start = time.perf_counter()
        metrics = evaluate_model(model, self.tokenizer, self.cases, self.matcher,
                                 max_new_tokens=self.max_new_tokens)
        seconds = time.perf_counter() - start
        record = {"step": state.global_step, "cases": len(self.cases), "seconds": round(seconds, 2),
                  **metrics}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        state.log_history.append({"step": state.global_step,
                                  **{f"dev_{k}": v for k, v in metrics.items()}})
        logger.info("dev eval at step %d (%.1f s): %s", state.global_step, seconds,
                    ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        if state.global_step == 0:
            self._run(state, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None,
                    **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._run(state, model)
