"""Dataset builders: prompts with a ``case`` column for GRPO, chats with answers for SFT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psychohistory.cases import Case
from psychohistory.training.prompts import build_messages


def grpo_records(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """Plain records: a conversational ``prompt`` and the case as JSON (Arrow-friendly)."""
    return [{"prompt": build_messages(case.seed, case.context), "case": case.model_dump_json()}
            for case in cases]


def to_grpo_dataset(cases: Sequence[Case]) -> Any:
    """A ``datasets.Dataset`` for plain ``trl.GRPOTrainer``: ``prompt`` and ``case`` columns.

    The rewards read ``case`` from their kwargs (TRL passes every extra column through).

    >>> from psychohistory import load_dataset
    >>> dataset = to_grpo_dataset(load_dataset("synthetic")[:3])
    >>> dataset.column_names, dataset[0]["prompt"][-1]["role"]
    (['prompt', 'case'], 'user')
    """
    from datasets import Dataset

    if not cases:
        raise ValueError("to_grpo_dataset needs at least one case")
    return Dataset.from_list(grpo_records(cases))


def sft_records(cases: Sequence[Case], *, target_probability: float = 0.8) -> list[dict[str, Any]]:
    """Chats whose answer is the case's ground-truth tree.

    Every real outcome becomes a node at ``target_probability``: SFT teaches the format and
    which events follow; GRPO then calibrates the numbers.
    """
    records = []
    for case in cases:
        answer = case.to_tree(probability=target_probability).to_json()
        records.append({"messages": [*build_messages(case.seed, case.context),
                                     {"role": "assistant", "content": answer}]})
    return records


def to_sft_dataset(cases: Sequence[Case], *, target_probability: float = 0.8) -> Any:
    from datasets import Dataset

    if not cases:
        raise ValueError("to_sft_dataset needs at least one case")
    return Dataset.from_list(sft_records(cases, target_probability=target_probability))
