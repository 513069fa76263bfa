"""Loss and perplexity of a model on the ground-truth trees of cases (the seed's main metrics).

The prompt is the same one generation uses; only the answer tokens (the real tree) count, so
the number says how likely the model finds what really happened, written in the schema.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psychohistory.cases import Case
from psychohistory.training.prompts import build_prompt


@dataclass(frozen=True)
class GroundTruthLoss:
    loss: float  # mean negative log-likelihood per answer token (nats)
    perplexity: float
    tokens: int


def ground_truth_loss(model: Any, tokenizer: Any, cases: Sequence[Case], *,
                      target_probability: float = 0.8, max_length: int = 2048) -> GroundTruthLoss:
    """Mean per-token NLL of the cases' real trees after their prompts, and its exp."""
    import torch

    if not cases:
        raise ValueError("ground_truth_loss needs at least one case")
    total, count = 0.0, 0
    model.eval()
    for case in cases:
        prompt = build_prompt(tokenizer, case.seed, case.context)
        answer = case.to_tree(probability=target_probability).to_json() + (tokenizer.eos_token or "")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:max_length]
        labels = ([-100] * len(prompt_ids) + answer_ids)[:max_length]
        if all(label == -100 for label in labels):
            continue
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids], device=model.device),
                        labels=torch.tensor([labels], device=model.device))
        n = sum(1 for label in labels[1:] if label != -100)
        total += float(out.loss) * n
        count += n
    loss = total / max(1, count)
    return GroundTruthLoss(loss=loss, perplexity=math.exp(min(loss, 50.0)), tokens=count)
