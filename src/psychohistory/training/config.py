"""Training settings: a dataclass with help text, checked when built.

Only what psychohistory decides lives here (group size, LoRA shape, checkpointing); any other
``trl.GRPOConfig`` / ``trl.SFTConfig`` field passes through ``extra`` unchanged.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from psychohistory.errors import ConfigError

QUANTIZE = (None, "4bit")
ROLLOUTS = ("auto", "engine", "trl")
_NAMES = {bool: "a bool (true or false)", int: "an int", float: "a float", str: "a string",
          type(None): "None", list: "a list", dict: "a table (dict)"}


def _fits(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` fits a field's type: ``None`` where the type is not one we check.

    ``bool`` is not an ``int`` here (``max_steps=True`` is a mistake); an ``int`` is a float.
    """
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_fits(value, arg) for arg in args]
        return True if True in found else (None if None in found else False)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation in (str, type(None)):
        return isinstance(value, annotation)
    origin = typing.get_origin(annotation) or annotation
    if origin is list:
        if not isinstance(value, list | tuple):
            return False
        return all(_fits(item, args[0]) is not False for item in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    return None


def _expected(annotation: Any) -> str:
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else (annotation,)
    names = [_NAMES.get(typing.get_origin(m) or m, str(m)) for m in members]
    return " or ".join(dict.fromkeys(names))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_field_types(settings: Any) -> None:
    """``ConfigError`` naming the first field whose value does not fit its annotation.

    >>> TrainerConfig(max_steps="5")
    Traceback (most recent call last):
    ...
    psychohistory.errors.ConfigError: max_steps must be an int, got '5' (str); write the number without quotes
    """
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if _fits(value, hints[f.name]) is not False:
            continue
        hint = ""
        if isinstance(value, str) and _is_number(value):
            hint = "; write the number without quotes"
            if "e" in value.lower():  # PyYAML reads 5e-5 (no dot) as a string
                hint += " (in YAML, with a dot: 5.0e-5)"
        raise ConfigError(f"{f.name} must be {_expected(hints[f.name])}, got {value!r} "
                          f"({type(value).__name__}){hint}")


@dataclass
class TrainerConfig:
    """GRPO settings. Defaults follow the seed pipeline: LoRA r4, alpha 8, dropout 0, group 4.

    >>> TrainerConfig(max_steps=2).num_generations
    4
    >>> TrainerConfig(num_generations=1)
    Traceback (most recent call last):
    ...
    psychohistory.errors.ConfigError: num_generations must be >= 2 (GRPO compares completions within a group), got 1
    """

    output_dir: str = field(default="runs/grpo", metadata={"help": "Checkpoints and the final adapter."})
    max_steps: int = field(default=50, metadata={"help": "Optimizer steps."})
    learning_rate: float = field(default=5e-5, metadata={"help": "LoRA learning rate."})
    num_generations: int = field(default=4, metadata={"help": "Completions per prompt (group)."})
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Completions per device per step; a multiple of the group."})
    max_completion_length: int = field(default=256, metadata={"help": "Tokens per completion."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    beta: float = field(default=0.0, metadata={"help": "KL penalty (0: no reference model)."})
    lora_r: int = field(default=4, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=8, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    target_modules: str | list[str] = field(default="all-linear", metadata={"help": "LoRA targets."})
    quantize: str | None = field(default=None, metadata={"help": "'4bit' (NF4, CUDA only)."})
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Trade compute for memory; None: off where the memory "
                                        "planner says the run fits without it (on on the CPU)."})
    rollout: str = field(
        default="auto", metadata={"help": "Who samples: 'engine' (psychohistory's CUDA-graph "
                                          "engine), 'trl' (TRL's generate, or vLLM with "
                                          "extra use_vllm), 'auto' (the engine on CUDA where "
                                          "supported)."})
    save_steps: int = field(default=10, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=3, metadata={"help": "Checkpoints kept."})
    logging_steps: int = field(default=1, metadata={"help": "Log every N steps."})
    eval_steps: int | None = field(
        default=None, metadata={"help": "Score greedy trees of the eval cases at step 0 and "
                                        "every N steps (Trainer(eval_cases=...)); None: never."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    report_to: str | list[str] = field(default="none", metadata={"help": "TRL/transformers loggers."})
    extra: dict[str, Any] = field(default_factory=dict,
                                  metadata={"help": "Any other trl.GRPOConfig field."})

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.num_generations < 2:
            raise ConfigError("num_generations must be >= 2 (GRPO compares completions within a "
                              f"group), got {self.num_generations}")
        if self.per_device_train_batch_size % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a "
                f"multiple of num_generations ({self.num_generations})")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ConfigError(f"eval_steps must be >= 1 or None, got {self.eval_steps}")
        for name in ("max_steps", "max_completion_length", "lora_r", "lora_alpha", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.quantize not in QUANTIZE:
            raise ConfigError(f"quantize must be one of {QUANTIZE}, got {self.quantize!r}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.rollout not in ROLLOUTS:
            raise ConfigError(f"rollout must be one of {ROLLOUTS}, got {self.rollout!r}")
        if self.rollout == "engine" and self.extra.get("use_vllm"):
            raise ConfigError("rollout='engine' and extra use_vllm=True both pick who samples: "
                              "drop one (rollout='trl' with use_vllm for vLLM)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        """Build from a config file's table; unknown keys go to ``extra`` (TRL's fields)."""
        return cls(**split_known(cls, data))


def split_known(settings_class: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``settings_class``: its own fields, the rest folded into ``extra``."""
    known = {f.name for f in dataclasses.fields(settings_class)}
    extra = dict(data.get("extra", {}))
    extra.update({k: v for k, v in data.items() if k not in known})
    return {**{k: v for k, v in data.items() if k in known and k != "extra"}, "extra": extra}


@dataclass
class SFTSettings:
    """Supervised warm start settings: LoRA r64, alpha 128, dropout 0.05 (the seed's)."""

    output_dir: str = "runs/sft"
    max_steps: int = 100
    num_train_epochs: float = 3.0
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 4
    max_length: int = 1024
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    quantize: str | None = None
    gradient_checkpointing: bool = True
    target_probability: float = 0.8
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 5
    seed: int = 0
    report_to: str | list[str] = "none"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0.0 < self.target_probability <= 1.0:
            raise ConfigError("target_probability must be in (0, 1], got "
                              f"{self.target_probability}")
        if self.quantize not in QUANTIZE:
            raise ConfigError(f"quantize must be one of {QUANTIZE}, got {self.quantize!r}")
        if self.lora_r < 1 or self.max_steps == 0:
            raise ConfigError("lora_r must be >= 1 and max_steps non-zero (-1: use epochs)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SFTSettings:
        """Build from a config file's table; unknown keys go to ``extra`` (TRL's fields)."""
        return cls(**split_known(cls, data))


# set by psychohistory from its own settings or from the device, so not passed through
DERIVED = {"use_cpu": "the device", "bf16": "the device", "fp16": "the device",
           "reward_weights": "Trainer(weights=...)"}


def check_extra(extra: dict[str, Any], config_class: type, settings: Any = None) -> None:
    """Refuse pass-through keys that the TRL config class does not have, listing close ones,
    and keys psychohistory sets itself (naming where to set them instead)."""
    import difflib

    fields = {f.name for f in dataclasses.fields(config_class)}
    own = {f.name for f in dataclasses.fields(settings)} if settings is not None else set()
    for key in extra:
        if key in own:
            raise ConfigError(f"{key!r} is a {type(settings).__name__} field: set it there, "
                              "not in extra")
        if key in DERIVED:
            raise ConfigError(f"{key!r} is set by psychohistory from {DERIVED[key]}")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{key!r} is not a {config_class.__name__} field{hint}")
