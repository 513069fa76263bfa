"""What the backends share: the memory check that runs before any of them starts."""

from __future__ import annotations

import logging
from typing import Any

from psychohistory.backends.memory import MemoryPlan, plan_memory, require_fit

logger = logging.getLogger("psychohistory.backends")

PROMPT_TOKENS = 450  # the tree prompt with its schema and worked example (SmolLM2 tokenizer)


def local_gpu() -> tuple[str, float | None]:
    """The name and usable GiB of this machine's first CUDA GPU, or ("CPU", None)."""
    try:
        import torch
    except ImportError:
        return "CPU", None
    if not torch.cuda.is_available():
        return "CPU", None
    props = torch.cuda.get_device_properties(0)
    return props.name, props.total_memory / 1024**3 * 0.97


def check_memory(model: Any, *, method: str, lora_rank: int, quantize: str | None,
                 completion_tokens: int, batch_size: int, gradient_checkpointing: bool,
                 gpu: str | None = None, gpu_gib: float | None = None) -> MemoryPlan | None:
    """Plan the run and raise ``MemoryPlanError`` if it cannot fit; ``None`` on the CPU."""
    if gpu is None:
        gpu, gpu_gib = local_gpu()
    if gpu == "CPU" and gpu_gib is None:
        return None
    plan = plan_memory(model, method=method, lora_rank=lora_rank, quantize=quantize, gpu=gpu,
                       gpu_gib=gpu_gib, seq_len=PROMPT_TOKENS + completion_tokens,
                       batch_size=batch_size, gradient_checkpointing=gradient_checkpointing)
    logger.info("memory plan: %s", plan.summary())
    return require_fit(plan)


def check_grpo_memory(trainer: Any, *, gpu: str | None = None,
                      gpu_gib: float | None = None) -> MemoryPlan | None:
    c = trainer.config
    return check_memory(trainer.model, method="grpo", lora_rank=c.lora_r, quantize=c.quantize,
                        completion_tokens=c.max_completion_length,
                        batch_size=c.per_device_train_batch_size,
                        gradient_checkpointing=c.gradient_checkpointing, gpu=gpu, gpu_gib=gpu_gib)


def check_sft_memory(model: Any, settings: Any, *, gpu: str | None = None,
                     gpu_gib: float | None = None) -> MemoryPlan | None:
    return check_memory(model, method="sft", lora_rank=settings.lora_r,
                        quantize=settings.quantize, completion_tokens=settings.max_length - PROMPT_TOKENS,
                        batch_size=settings.per_device_train_batch_size,
                        gradient_checkpointing=settings.gradient_checkpointing, gpu=gpu,
                        gpu_gib=gpu_gib)
