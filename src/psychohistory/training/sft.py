"""Supervised warm start: LoRA SFT on ground-truth trees built from cases (TRL's SFTTrainer)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psychohistory.cases import Case
from psychohistory.errors import ConfigError
from psychohistory.training.config import SFTSettings
from psychohistory.training.trainer import TrainResult

logger = logging.getLogger("psychohistory.training")


def sft(
    model: Any = "smollm2-135m-instruct",
    cases: Sequence[Case] = (),
    *,
    settings: SFTSettings | dict[str, Any] | None = None,
    tokenizer: Any = None,
    backend: str = "local",
    resume: bool = False,
) -> TrainResult:
    """Fine-tune a LoRA adapter (r64, alpha 128, dropout 0.05) to write the cases' real trees.

    Returns the adapter path; pass it to ``Trainer(sft_adapter=...)`` for SFT-then-GRPO.

    >>> from psychohistory import load_dataset
    >>> result = sft("smollm2-135m-instruct", load_dataset("historical", split="train"),
    ...              settings={"max_steps": 20})  # doctest: +SKIP
    >>> Trainer(sft_adapter=result.adapter_path).fit(cases)  # doctest: +SKIP
    """
    if not cases:
        raise ConfigError("sft needs at least one case")
    if isinstance(settings, dict):
        settings = SFTSettings.from_dict(settings)
    from psychohistory.plugins import get_backend

    return get_backend(backend).train_sft(model, list(cases), settings or SFTSettings(),
                                          tokenizer=tokenizer, resume=resume)


def run_sft(model: Any, cases: Sequence[Case], settings: SFTSettings, *, tokenizer: Any = None,
            resume: bool = False) -> TrainResult:
    """The SFT run itself, in this process."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from psychohistory.training.checkpoints import last_complete_checkpoint
    from psychohistory.training.config import check_extra
    from psychohistory.training.data import to_sft_dataset
    from psychohistory.training.models import (
        check_adapter,
        checkpointing_option,
        load_model,
        quiet_checkpointing_deprecations,
    )

    check_extra(settings.extra, SFTConfig, settings)
    if isinstance(model, str):
        model, tokenizer = load_model(model, quantize=settings.quantize)
    elif tokenizer is None:
        raise ConfigError("pass tokenizer= with a model object")
    if settings.quantize == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    args = SFTConfig(
        output_dir=settings.output_dir, max_steps=settings.max_steps,
        num_train_epochs=settings.num_train_epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        max_length=settings.max_length, save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit, logging_steps=settings.logging_steps,
        seed=settings.seed, report_to=settings.report_to, use_cpu=not cuda, bf16=cuda,
        assistant_only_loss=False,
        **checkpointing_option(SFTConfig, settings.gradient_checkpointing), **settings.extra)
    peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                             lora_dropout=settings.lora_dropout,
                             target_modules=settings.target_modules, task_type="CAUSAL_LM")
    # a checkpoint cut off mid-save is skipped (with a warning) for the complete one before it
    checkpoint = last_complete_checkpoint(settings.output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("resume=True but no complete checkpoint in %s: starting afresh",
                       settings.output_dir)
    with quiet_checkpointing_deprecations():
        trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                             train_dataset=to_sft_dataset(
                                 cases, target_probability=settings.target_probability),
                             peft_config=peft_config)
        output = trainer.train(resume_from_checkpoint=checkpoint)
    final = Path(settings.output_dir) / "final"
    trainer.save_model(str(final))  # peft writes adapter_model.safetensors
    tokenizer.save_pretrained(str(final))
    check_adapter(final)  # what the next stage loads: fail here, not there, if it is not whole
    return TrainResult(adapter_path=str(final), output_dir=settings.output_dir,
                       global_step=trainer.state.global_step, metrics=dict(output.metrics),
                       log_history=list(trainer.state.log_history), resumed_from=checkpoint)
