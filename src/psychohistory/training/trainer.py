"""``Trainer(rewards=[...]).fit(cases)``: GRPO on a probability-tree model through TRL.

GRPO itself is TRL's ``GRPOTrainer``; this module builds what it needs (the model, LoRA,
rewards sharing one matcher, the dataset with a ``case`` column) and hands the run to an
execution backend (``local`` by default).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psychohistory.cases import Case
from psychohistory.errors import ConfigError
from psychohistory.plugins import CheckedReward
from psychohistory.rewards.composite import DEFAULT_WEIGHTS, reward_name
from psychohistory.training.config import TrainerConfig

logger = logging.getLogger("psychohistory.training")

RewardSpec = str | Callable[..., Any]


@dataclass
class TrainResult:
    """What a training run produced.

    >>> TrainResult(adapter_path="runs/grpo/final", output_dir="runs/grpo", global_step=50).global_step
    50
    """

    adapter_path: str
    output_dir: str
    global_step: int
    metrics: dict[str, float] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None


def build_rewards(rewards: Sequence[RewardSpec], matcher: Any) -> list[CheckedReward]:
    """Registered names, reward objects and plain callables, each checked and named.

    Registered rewards whose factory takes ``matcher`` share ``matcher``, so one cache of
    outcome encodings and judge verdicts serves them all.
    """
    from psychohistory.plugins import get_reward, list_registered

    built: list[CheckedReward] = []
    registered = list_registered("reward")
    for spec in rewards:
        if isinstance(spec, str):
            entry = registered.get(spec)
            options = {}
            if entry is not None and _accepts(entry.factory, "matcher"):
                options["matcher"] = matcher
            built.append(get_reward(spec, **options))
        elif isinstance(spec, CheckedReward):
            built.append(spec)
        elif callable(spec):
            built.append(CheckedReward(spec, name=reward_name(spec), plugin=None))
        else:
            raise ConfigError(f"a reward must be a registered name or a callable, got {spec!r}")
    names = [r.__name__ for r in built]
    if len(set(names)) != len(names):
        raise ConfigError(f"reward names must be unique (TRL logs by name), got {names}")
    return built


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_sequence(value: Any, what: str, example: str) -> None:
    """A list was asked for: a string (``rewards="calibration"``) or a scalar is refused."""
    if isinstance(value, str | bytes):
        raise ConfigError(f"{what} must be a list, got the string {value!r}: pass "
                          f"{what}=[{value!r}]")
    if not isinstance(value, Sequence):
        raise ConfigError(f"{what} must be a list, got {type(value).__name__} {value!r}: pass "
                          f"{what}={example}")


def _check_registered(kind: str, names: Sequence[str]) -> None:
    """``ConfigError`` for the first name nothing registered as a ``kind``, with close names."""
    import difflib

    from psychohistory.plugins import list_registered

    registered = sorted(list_registered(kind))
    for name in names:
        if name not in registered:
            close = difflib.get_close_matches(name, registered, n=3)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise ConfigError(f"unknown {kind} {name!r}{hint}; registered {kind}s: "
                              f"{', '.join(registered) or '(none)'}")


# backends whose run happens here, so the plugins registered here are the ones it will have
_LOCAL_BACKENDS = ("local", "accelerate")


class Trainer:
    """GRPO training of a probability-tree forecaster.

    ``model``: a path, a hub name available offline, a ``.gguf`` file, the alias
    ``smollm2-135m-instruct``, or a loaded model (with ``tokenizer=``).
    ``rewards``: registered names, reward objects or plain callables; ``weights`` defaults to
    the library's mix for built-ins and 1.0 for the rest. ``sft_adapter``: an SFT LoRA adapter
    merged into the base before a fresh GRPO adapter is added (the SFT-then-GRPO flow).
    ``eval_cases``: held-out cases scored every ``config.eval_steps`` steps
    (:mod:`psychohistory.training.dev_eval`).

    Building one is cheap; ``fit`` loads the model and trains:

    >>> trainer = Trainer("smollm2-135m-instruct", rewards=["calibration", "format"],
    ...                   config={"max_steps": 2, "output_dir": "runs/doc"})
    >>> trainer.weights, trainer.config.lora_r, trainer.config.num_generations
    ([1.0, 0.25], 4, 4)
    >>> result = trainer.fit(cases)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any = "smollm2-135m-instruct",
        *,
        rewards: Sequence[RewardSpec] = tuple(DEFAULT_WEIGHTS),
        weights: Sequence[float] | None = None,
        matcher: Any = None,
        config: TrainerConfig | dict[str, Any] | None = None,
        backend: str = "local",
        tokenizer: Any = None,
        sft_adapter: str | None = None,
        backend_options: dict[str, Any] | None = None,
        eval_cases: Sequence[Case] = (),
    ) -> None:
        _check_sequence(rewards, "rewards", "['calibration', 'format']")
        if not rewards:
            raise ConfigError("Trainer needs at least one reward")
        if weights is not None:
            _check_sequence(weights, "weights", "[1.0, 0.25]")
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, int | float):
                    raise ConfigError(f"weights must be numbers, got {w!r} ({type(w).__name__})")
        if backend in _LOCAL_BACKENDS:  # before any model loads; a remote image may have others
            _check_registered("reward", [r for r in rewards if isinstance(r, str)])
            name = matcher.get("name", "cascade") if isinstance(matcher, dict) else matcher
            if isinstance(name, str):
                _check_registered("matcher", [name])
        self.model = model
        self.tokenizer = tokenizer
        self.rewards = list(rewards)
        if weights is None:
            weights = [DEFAULT_WEIGHTS.get(r, 1.0) if isinstance(r, str) else 1.0
                       for r in self.rewards]
        if len(weights) != len(self.rewards):
            raise ConfigError(f"{len(weights)} weights for {len(self.rewards)} rewards")
        self.weights = [float(w) for w in weights]
        self.matcher = matcher
        self.config = TrainerConfig.from_dict(config) if isinstance(config, dict) else (
            config or TrainerConfig())
        self.backend = backend
        self.backend_options = backend_options or {}
        self.sft_adapter = sft_adapter
        self.eval_cases = list(eval_cases)
        if self.config.eval_steps and not self.eval_cases:
            raise ConfigError("eval_steps is set but there are no eval_cases to score: pass "
                              "Trainer(eval_cases=...) (the CLI: eval_cases = 'historical:dev')")

    def build_matcher(self) -> Any:
        if self.matcher is None or isinstance(self.matcher, str | dict):
            from psychohistory.plugins import get_matcher

            if isinstance(self.matcher, dict):
                options = dict(self.matcher)
                return get_matcher(options.pop("name", "cascade"), **options)
            # the event cascade (exact, candidates, trained verifier), on the GPU where there is one
            return get_matcher(self.matcher or "cascade")
        return self.matcher

    def fit(self, cases: Sequence[Case], *, resume: bool = False) -> TrainResult:
        """Train on ``cases``; ``resume=True`` continues from the last checkpoint."""
        if not cases:
            raise ConfigError("fit needs at least one case")
        from psychohistory.plugins import get_backend

        backend = get_backend(self.backend, **self.backend_options)
        return backend.train_grpo(self, list(cases), resume=resume)


def run_grpo(trainer: Trainer, cases: Sequence[Case], *, resume: bool = False) -> TrainResult:
    """The GRPO run itself, in this process (the local backend, and Modal's function body)."""
    import torch
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from psychohistory.training.checkpoints import last_complete_checkpoint
    from psychohistory.training.config import check_extra
    from psychohistory.training.data import to_grpo_dataset
    from psychohistory.training.models import (
        check_adapter,
        checkpointing_option,
        load_model,
        quiet_checkpointing_deprecations,
    )

    config = trainer.config
    check_extra(config.extra, GRPOConfig, config)
    if trainer.sft_adapter:  # where it runs (a remote volume's path is checked there), and
        check_adapter(trainer.sft_adapter)  # before the model loads
    model, tokenizer = trainer.model, trainer.tokenizer
    if isinstance(model, str):
        model, tokenizer = load_model(model, quantize=config.quantize)
    elif tokenizer is None:
        raise ConfigError("pass tokenizer= with a model object")
    if trainer.sft_adapter:
        model = merge_adapter(model, trainer.sft_adapter)
    if config.quantize == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    matcher = trainer.build_matcher()
    reward_funcs = build_rewards(trainer.rewards, matcher)
    checkpointing = resolve_checkpointing(trainer, model, cuda=cuda)
    rollout_func, why = choose_rollout(config, model, cuda=cuda)
    logger.info("generation: %s; gradient checkpointing %s", why,
                "on" if checkpointing else "off")
    args = GRPOConfig(
        output_dir=config.output_dir, max_steps=config.max_steps,
        learning_rate=config.learning_rate, num_generations=config.num_generations,
        per_device_train_batch_size=config.per_device_train_batch_size,
        max_completion_length=config.max_completion_length, temperature=config.temperature,
        beta=config.beta, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps, seed=config.seed, report_to=config.report_to,
        reward_weights=trainer.weights, use_cpu=not cuda, bf16=cuda,
        **checkpointing_option(GRPOConfig, checkpointing), **config.extra,
    )
    peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                             lora_dropout=config.lora_dropout,
                             target_modules=config.target_modules, task_type="CAUSAL_LM")
    callbacks: list[Any] = []
    if config.eval_steps and trainer.eval_cases:
        from psychohistory.training.dev_eval import DevEvalCallback

        callbacks.append(DevEvalCallback(trainer.eval_cases, every=config.eval_steps,
                                         matcher=matcher, tokenizer=tokenizer,
                                         max_new_tokens=config.max_completion_length,
                                         output_dir=config.output_dir))
    checkpoint = last_complete_checkpoint(config.output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("resume=True but no checkpoint in %s: starting afresh", config.output_dir)
    # TRL calls rollout_func experimental (it is our contract); its peft wrapping and its
    # generation inside each step use transformers' deprecated checkpointing names
    with quiet_checkpointing_deprecations():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*'rollout_func'.*experimental")
            grpo = GRPOTrainer(model=model, reward_funcs=list(reward_funcs), args=args,
                               train_dataset=to_grpo_dataset(cases), processing_class=tokenizer,
                               peft_config=peft_config, callbacks=callbacks or None,
                               **({"rollout_func": rollout_func} if rollout_func else {}))
        output = grpo.train(resume_from_checkpoint=checkpoint)
    final = Path(config.output_dir) / "final"
    grpo.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    result = TrainResult(
        adapter_path=str(final), output_dir=config.output_dir,
        global_step=grpo.state.global_step, metrics=dict(output.metrics),
        log_history=list(grpo.state.log_history), resumed_from=checkpoint)
    warnings_found = learning_warnings(result.log_history)
    for line in warnings_found:  # once, as a warning (logging would print it a second time)
        warnings.warn(line, RuntimeWarning, stacklevel=2)
    (final / "psychohistory_train.json").write_text(json.dumps({
        "model": trainer.model if isinstance(trainer.model, str) else type(trainer.model).__name__,
        "sft_adapter": trainer.sft_adapter, "matcher": describe_matcher(matcher),
        "cases": describe_cases(cases), "eval_cases": describe_cases(trainer.eval_cases),
        "rewards": [r.__name__ for r in reward_funcs], "weights": trainer.weights,
        "config": config.to_dict(), "global_step": result.global_step,
        "resumed_from": checkpoint, "generation": why,
        "gradient_checkpointing": checkpointing, "warnings": warnings_found},
        indent=2, default=str))
    return result


def describe_cases(cases: Sequence[Case]) -> dict[str, Any]:
    """What a run trained on, so a result can be traced to its data: count, ids, splits and a
    SHA-256 over the cases as JSON (order-independent)."""
    import hashlib
    from collections import Counter

    digest = hashlib.sha256()
    for text in sorted(case.model_dump_json() for case in cases):
        digest.update(text.encode("utf-8"))
    return {"count": len(cases), "sha256": digest.hexdigest(),
            "splits": dict(Counter(case.split or "none" for case in cases)),
            "first_ids": [case.id for case in cases[:5]]}


def describe_matcher(matcher: Any) -> str:
    name = getattr(matcher, "name", None) or type(matcher).__name__
    return f"{name}: {matcher!r}"[:300]


def learning_warnings(log_history: Sequence[dict[str, Any]]) -> list[str]:
    """Why a run may have learned nothing, read from TRL's per-step logs.

    GRPO's advantage is the reward minus the group's mean: a group whose completions all score
    the same teaches nothing, and a completion cut off at the length limit rarely parses.

    >>> learning_warnings([{"step": 1, "frac_reward_zero_std": 1.0}, {"step": 2,
    ...                    "frac_reward_zero_std": 1.0}])[0][:60]
    'every one of the 2 logged steps had zero reward spread in ev'
    >>> learning_warnings([{"step": 1, "frac_reward_zero_std": 0.5,
    ...                     "completions/clipped_ratio": 0.1}])
    []
    """
    steps = [row for row in log_history if "frac_reward_zero_std" in row]
    out = []
    if steps and all(row["frac_reward_zero_std"] >= 1.0 for row in steps):
        out.append(f"every one of the {len(steps)} logged steps had zero reward spread in every "
                   "group, so GRPO had no signal to learn from: check that the rewards can tell "
                   "completions apart (psychohistory bench rewards) and that the matcher finds "
                   "true events")
    clipped = [row["completions/clipped_ratio"] for row in log_history
               if "completions/clipped_ratio" in row]
    if clipped and min(clipped) >= 1.0:
        out.append(f"every completion of the {len(clipped)} logged steps hit "
                   "max_completion_length and was cut off: raise max_completion_length or "
                   "warm-start with SFT so the model learns to close its JSON")
    return out


def resolve_checkpointing(trainer: Trainer, model: Any, *, cuda: bool) -> bool:
    """``gradient_checkpointing=None``: off where the memory planner says the run fits
    without it on this GPU, on otherwise (and on the CPU, whose memory is not planned)."""
    config = trainer.config
    if config.gradient_checkpointing is not None:
        return config.gradient_checkpointing
    if not cuda:
        return True
    from psychohistory.backends.base import PROMPT_TOKENS, local_gpu
    from psychohistory.backends.memory import plan_memory

    gpu, gib = local_gpu()
    plan = plan_memory(model, method="grpo", lora_rank=config.lora_r, quantize=config.quantize,
                       gpu=gpu, gpu_gib=gib,
                       seq_len=PROMPT_TOKENS + config.max_completion_length,
                       batch_size=config.per_device_train_batch_size,
                       gradient_checkpointing=None)
    return plan.gradient_checkpointing


def choose_rollout(config: TrainerConfig, model: Any, *, cuda: bool) -> tuple[Any, str]:
    """``(rollout_func or None, why)``: the engine, or TRL's own generation and the reason.

    ``rollout="auto"`` takes the engine on CUDA for supported models and bf16/fp32 bases;
    ``"engine"`` insists (on the CPU too, without CUDA graphs) and says why it cannot;
    ``"trl"``, or ``extra={"use_vllm": True}``, leave generation to TRL.
    """
    from psychohistory.training.rollout import TRLRollout, unsupported_reason

    extra = config.extra
    if extra.get("use_vllm"):
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("use_vllm=True needs vLLM, which is not installed: pip install "
                              "vllm (a CUDA build matching your torch), or drop use_vllm to "
                              "sample with psychohistory's rollout engine")
        return None, f"TRL's vLLM generation (vllm_mode={extra.get('vllm_mode', 'colocate')!r})"
    if config.rollout == "trl":
        return None, "TRL's generate (rollout='trl')"
    forced = config.rollout == "engine"
    from trl import GRPOTrainer

    reason: str | None
    if "rollout_func" not in inspect.signature(GRPOTrainer.__init__).parameters:
        reason = "this TRL has no rollout_func (TRL >= 1.16 does)"
    elif not cuda and not forced:
        reason = "no CUDA GPU"
    elif config.quantize == "4bit" and not forced:
        reason = ("a 4-bit base (the engine runs it with the adapter unmerged, but that path is "
                  "not yet measured on a GPU: rollout='engine' to use it)")
    else:
        kwargs = extra.get("generation_kwargs") or {}
        if isinstance(kwargs, str):
            kwargs = json.loads(kwargs)
        reason = unsupported_reason(model, repetition_penalty=extra.get("repetition_penalty", 1.0),
                                    generation_kwargs=kwargs)
    if reason is None:
        return TRLRollout(), "psychohistory's rollout engine" + ("" if cuda else " (CPU, no graphs)")
    if forced:
        raise ConfigError(f"rollout='engine' cannot run here: {reason}; use rollout='auto' or 'trl'")
    return None, f"TRL's generate ({reason})"


def merge_adapter(model: Any, adapter: str) -> Any:
    """Fold a LoRA adapter into the base weights (the SFT adapter before GRPO)."""
    from peft import PeftModel

    from psychohistory.training.models import quiet_checkpointing_deprecations

    with quiet_checkpointing_deprecations():
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
