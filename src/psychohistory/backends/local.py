"""The local backend: training runs in this process, on the CPU or one GPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psychohistory.backends.base import check_grpo_memory, check_sft_memory
from psychohistory.cases import Case


class LocalBackend:
    """Runs GRPO and SFT in-process."""

    name = "local"

    def train_grpo(self, trainer: Any, cases: Sequence[Case], *, resume: bool = False) -> Any:
        from psychohistory.training.trainer import run_grpo

        check_grpo_memory(trainer)
        return run_grpo(trainer, cases, resume=resume)

    def train_sft(self, model: Any, cases: Sequence[Case], settings: Any, *,
                  tokenizer: Any = None, resume: bool = False) -> Any:
        from psychohistory.training.sft import run_sft

        check_sft_memory(model, settings)
        return run_sft(model, cases, settings, tokenizer=tokenizer, resume=resume)

    def __repr__(self) -> str:
        return "LocalBackend()"
