"""The memory planner: will this run fit this GPU? Answered before any money is spent.

Peak GPU memory of LoRA training is estimated from the model's shape:

* **weights** - every parameter (MoE experts included) at 2 bytes in bf16, ~0.56 in NF4
  (4-bit blocks plus their scales), 4 in fp32;
* **LoRA state** - adapter weights, gradients and Adam's two moments (16 bytes a parameter);
* **activations** - per token, per layer, a multiple of the hidden size (attention and MLP
  inputs kept for backward; about the square root of the layers' worth with gradient
  checkpointing);
* **logits** - SFT: the fp32 logits over the vocabulary, which dominate for small models with
  large vocabularies; GRPO: TRL's chunked log-prob tiles and the hidden states' gradient;
* **generation** (GRPO) - the KV cache of the whole batch, and the rollout engine's merged
  bf16 copy of the LoRA-adapted layers;
* a fixed **overhead** for the CUDA context and allocator slack.

The constants were calibrated against peaks measured on the device for three shapes
(``benchmarks/results/memory_planner.md``): the estimate is the peak the allocator reserves plus
the CUDA context. ``gradient_checkpointing=None`` (the Trainer's default) plans without it
and turns it on only when the run would not fit otherwise. Every backend calls
:func:`plan_memory` first and refuses a run that cannot fit; a plan also says the largest
batch and the longest sequence that would fit, and how much of the card it keeps free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from psychohistory.errors import ConfigError, MemoryPlanError

GIB = 1024**3

# usable memory of common GPUs, GiB (what torch can allocate, not the marketing number)
GPUS: dict[str, float] = {
    "T4": 14.6, "L4": 22.0, "A10G": 22.0, "A10": 22.0, "L40S": 44.5, "A100-40GB": 39.4,
    "A100": 39.4, "A100-80GB": 79.1, "H100": 79.1, "H200": 139.8, "B200": 178.0, "CPU": float("inf"),
}

# Calibrated on peaks measured on the device (benchmarks/results/memory_planner.md): per token
# and layer, bf16 activations kept for backward of ~10 hidden-sized and ~4 intermediate-sized
# tensors (linear inputs, attention, norms, the gated MLP); per token, ~24 bytes per vocabulary
# entry for the logits (bf16 logits, fp32 upcast, softmax and gradient); the CUDA context.
ACTIVATION_HIDDEN = 10.0
ACTIVATION_INTERMEDIATE = 4.0
LOGIT_BYTES = 24.0
GRPO_TOKEN_CHUNK, GRPO_VOCAB_CHUNK = 4096, 32768  # TRL's chunked log-prob tiles
# TRL's GRPO training pass keeps ~17% more per token than SFT (measured: SmolLM2-135M's shape,
# groups of 16 and 64 x 256 tokens, no checkpointing, H200; benchmarks/results/gpu_rollouts.md)
GRPO_ACTIVATION_FACTOR = 1.17
OVERHEAD_GIB = 0.6
BYTES = {None: 2.0, "bf16": 2.0, "fp32": 4.0, "4bit": 0.5625}
METHODS = ("grpo", "sft")


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs to know of an architecture."""

    name: str
    n_params: float
    hidden: int
    layers: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    experts: int = 1
    active_experts: int = 1

    def lora_params(self, rank: int) -> float:
        """LoRA parameters on every linear layer: ``rank * (in + out)`` each.

        Mixture-of-experts models keep their experts in fused 3-D parameters, which peft's
        ``all-linear`` does not wrap (nor the router): there LoRA covers attention only.
        """
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = (h + q) + 2 * (h + kv) + (q + h)
        mlp = 3 * (h + self.intermediate) if self.experts == 1 else 0
        return float(rank * self.layers * (attention + mlp))

    def adapted_params(self) -> float:
        """Weights of the linear layers LoRA adapts (``all-linear``; MoE: attention only)."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = h * q * 2 + h * kv * 2
        mlp = 3 * h * self.intermediate if self.experts == 1 else 0
        return float(self.layers * (attention + mlp))


KNOWN_SHAPES: dict[str, ModelShape] = {
    "smollm2-135m-instruct": ModelShape("SmolLM2-135M", 134.5e6, 576, 30, 49152, 9, 3, 64, 1536),
    "qwen2.5-1.5b": ModelShape("Qwen2.5-1.5B", 1.54e9, 1536, 28, 151936, 12, 2, 128, 8960),
    "llama-3.1-8b": ModelShape("Llama-3.1-8B", 8.03e9, 4096, 32, 128256, 32, 8, 128, 14336),
    "gpt-oss-20b": ModelShape("GPT-OSS-20B", 20.9e9, 2880, 24, 201088, 64, 8, 64, 2880,
                              experts=32, active_experts=4),
}


def shape_from_config(config: Any, name: str = "model") -> ModelShape:
    """A shape from a transformers config (parameters counted from it, MoE included)."""
    hidden = config.hidden_size
    layers = config.num_hidden_layers
    vocab = config.vocab_size
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    inter = getattr(config, "intermediate_size", None) or 4 * hidden
    experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", 1) or 1
    active = getattr(config, "num_experts_per_tok", 1) or 1
    attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    mlp = 3 * hidden * inter * experts
    tied = getattr(config, "tie_word_embeddings", False)
    n = layers * (attn + mlp) + vocab * hidden * (1 if tied else 2)
    return ModelShape(name, float(n), hidden, layers, vocab, heads, kv, head_dim, inter, experts,
                      active)


def read_config_json(path: str | Path) -> Any:
    """A model's ``config.json`` (a folder holding one, or the file) as an attribute object,
    its ``text_config`` where it has one (multimodal models); no transformers needed."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    data = json.loads(file.read_text())
    data = data.get("text_config") or data
    return SimpleNamespace(**data)


def resolve_shape(model: str | ModelShape | Any) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str):
        key = model.lower().split("/")[-1]
        if key in KNOWN_SHAPES:
            return KNOWN_SHAPES[key]
        local = Path(model)
        if (local / "config.json").is_file() or (local.is_file() and local.suffix == ".json"):
            try:
                return shape_from_config(read_config_json(local), model)
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                raise ConfigError(f"cannot read a model shape from {model!r}: {exc}") from exc
        try:
            from transformers import AutoConfig

            return shape_from_config(AutoConfig.from_pretrained(model), model)
        except Exception as exc:
            raise ConfigError(
                f"cannot read the shape of {model!r} ({exc}); use a local model folder or "
                f"config.json, one of {sorted(KNOWN_SHAPES)}, or a ModelShape") from exc
    config = getattr(model, "config", model)
    return shape_from_config(config, getattr(config, "name_or_path", "model"))


@dataclass
class MemoryPlan:
    """The estimate, its parts (GiB), whether it fits the GPU, and how far it could go.

    ``usable_gib`` is ``gpu_gib * headroom``: the share a plan may use, the rest kept for
    fragmentation and what the estimate does not see. ``max_batch_size`` and ``max_seq_len``
    are the largest batch at this ``seq_len``, and the longest sequence at this batch, that
    would still fit (0: none), with gradient checkpointing turned on where the plan may do so;
    ``max_completion_length`` is the latter less ``prompt_tokens`` when the plan was given
    them (GRPO).

    >>> plan = plan_memory("smollm2-135m-instruct", gpu="T4", seq_len=512, batch_size=4)
    >>> plan.fits, sorted(plan.breakdown)[:3]
    (True, ['activations', 'generation copy', 'kv cache'])
    """

    model: str
    method: str
    gpu: str
    gpu_gib: float
    estimated_gib: float
    fits: bool
    breakdown: dict[str, float] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)
    headroom: float = 0.9
    usable_gib: float = 0.0
    gradient_checkpointing: bool = False
    seq_len: int = 0
    batch_size: int = 0
    max_batch_size: int = 0
    max_seq_len: int = 0
    prompt_tokens: int | None = None
    max_completion_length: int | None = None

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.breakdown.items())
        kept = self.gpu_gib - self.usable_gib
        margin = self.usable_gib - self.estimated_gib
        text = (f"{self.model} {self.method}: ~{self.estimated_gib:.1f} GiB ({parts}) "
                f"{verdict} on {self.gpu} ({self.gpu_gib:.1f} GiB)")
        if self.gpu_gib != float("inf"):
            text += (f"\n  usable {self.usable_gib:.1f} GiB ({1 - self.headroom:.0%} headroom, "
                     f"{kept:.1f} GiB, kept free): "
                     + (f"{margin:.1f} GiB to spare" if margin >= 0 else
                        f"{-margin:.1f} GiB over"))
            text += (f"\n  gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}"
                     f"; largest batch that fits at {self.seq_len} tokens a sequence: "
                     f"{self.max_batch_size or 'none'}; longest sequence at batch "
                     f"{self.batch_size}: " + (f"{self.max_seq_len} tokens" if self.max_seq_len
                                               else "none"))
            if self.max_completion_length:
                text += (f" (a completion of {self.max_completion_length} after the "
                         f"{self.prompt_tokens}-token prompt)")
        return text + "".join(f"\n  - {a}" for a in self.advice)


def _positive(name: str, value: float | None, *, integer: bool = True) -> None:
    if value is None:
        return
    if integer and (isinstance(value, bool) or int(value) != value):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not value > 0 or value != value:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def _estimate(shape: ModelShape, *, method: str, lora_rank: int, quantize: str | None,
              seq_len: int, batch_size: int, gradient_checkpointing: bool,
              rollout_engine: bool) -> dict[str, float]:
    """The parts of the peak, GiB."""
    lora = shape.lora_params(lora_rank)
    weights = shape.n_params * BYTES[quantize] / GIB
    lora_state = lora * 16 / GIB
    tokens = seq_len * batch_size
    # a token passes through its active experts only (MoE), each with its own intermediate
    intermediate = shape.intermediate * shape.active_experts
    per_layer = 2 * (ACTIVATION_HIDDEN * shape.hidden + ACTIVATION_INTERMEDIATE * intermediate)
    layers_kept = (shape.layers ** 0.5) if gradient_checkpointing else shape.layers
    activations = tokens * per_layer * layers_kept / GIB
    if method == "grpo":
        activations *= GRPO_ACTIVATION_FACTOR
        # TRL >= 1.16 scores completions through a chunked LM head: [4096, 32768] bf16 tiles
        # (forward and backward) and an fp32 gradient of the hidden states, never the logits
        tile = min(tokens, GRPO_TOKEN_CHUNK) * min(shape.vocab, GRPO_VOCAB_CHUNK) * 2 * 2
        logits = (tile + tokens * shape.hidden * 4) / GIB
    else:
        logits = tokens * shape.vocab * LOGIT_BYTES / GIB
    breakdown = {"weights": weights, "lora+optimizer": lora_state, "activations": activations,
                 "logits": logits}
    if method == "grpo":
        kv = batch_size * seq_len * shape.layers * 2 * shape.kv_heads * shape.head_dim * 2
        breakdown["kv cache"] = kv / GIB
        # the rollout engine samples from a merged bf16 copy of the adapted layers
        breakdown["generation copy"] = (shape.adapted_params() * 2 / GIB
                                        if rollout_engine else 0.0)
    breakdown["overhead"] = OVERHEAD_GIB
    return breakdown


def _largest(fits: Any, limit: int = 1 << 22) -> int:
    """The largest n in [0, limit] with fits(n), for a monotone fits (fits(0) is taken)."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def plan_memory(
    model: str | ModelShape | Any,
    *,
    method: str = "grpo",
    lora_rank: int = 4,
    quantize: str | None = None,
    gpu: str = "A10G",
    seq_len: int = 1024,
    batch_size: int = 4,
    gradient_checkpointing: bool | None = None,
    headroom: float = 0.9,
    gpu_gib: float | None = None,
    prompt_tokens: int | None = None,
    rollout_engine: bool | None = None,
) -> MemoryPlan:
    """Estimate peak GPU memory of LoRA training and say whether it fits ``gpu``.

    ``seq_len`` is prompt plus completion tokens; ``batch_size`` the sequences per step (for
    GRPO, the completions of a step). ``headroom`` is the share of the GPU a plan may use;
    ``gpu_gib`` overrides the GPU's memory (a card not in the table, or a measured free size).
    ``gradient_checkpointing=None`` decides as the Trainer does: off when the run fits without
    it, on otherwise. ``rollout_engine`` (GRPO): whether the rollout engine's merged copy of the
    adapted layers is counted; ``None``: yes unless ``quantize="4bit"`` (the Trainer's CUDA
    default). ``prompt_tokens`` only serves to report the longest completion that fits.

    >>> plan_memory("gpt-oss-20b", gpu="A10G").fits
    False
    >>> plan = plan_memory("smollm2-135m-instruct", gpu="A10G")
    >>> plan.fits, plan.gradient_checkpointing
    (True, False)
    >>> plan_memory("smollm2-135m-instruct", batch_size=-4)
    Traceback (most recent call last):
    ...
    psychohistory.errors.ConfigError: batch_size must be > 0, got -4
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if quantize not in (None, "4bit", "bf16", "fp32"):
        raise ConfigError(f"quantize must be None, 'bf16', 'fp32' or '4bit', got {quantize!r}")
    for name, value in (("lora_rank", lora_rank), ("seq_len", seq_len),
                        ("batch_size", batch_size), ("prompt_tokens", prompt_tokens)):
        _positive(name, value)
    _positive("gpu_gib", gpu_gib, integer=False)
    if not 0 < headroom <= 1:
        raise ConfigError(f"headroom must be in (0, 1], got {headroom!r}")
    if prompt_tokens is not None and prompt_tokens >= seq_len:
        raise ConfigError(f"prompt_tokens ({prompt_tokens}) must be below seq_len ({seq_len})")
    gpu_key = gpu.upper() if gpu.upper() in GPUS else gpu
    if gpu_key not in GPUS and gpu_gib is None:
        raise ConfigError(f"unknown GPU {gpu!r}; known: {', '.join(sorted(GPUS))} "
                          "(or pass gpu_gib=)")
    shape = resolve_shape(model)
    capacity = float(gpu_gib) if gpu_gib is not None else GPUS[gpu_key]
    usable = capacity * headroom
    engine = (quantize != "4bit") if rollout_engine is None else bool(rollout_engine)
    engine = engine and method == "grpo"

    def total(length: int, batch: int, checkpointing: bool) -> float:
        return sum(_estimate(shape, method=method, lora_rank=lora_rank, quantize=quantize,
                             seq_len=length, batch_size=batch,
                             gradient_checkpointing=checkpointing,
                             rollout_engine=engine).values())

    if gradient_checkpointing is None:
        checkpointing = total(seq_len, batch_size, False) > usable
    else:
        checkpointing = bool(gradient_checkpointing)
    # the limits allow checkpointing where the planner may turn it on
    may_checkpoint = checkpointing or gradient_checkpointing is None
    breakdown = _estimate(shape, method=method, lora_rank=lora_rank, quantize=quantize,
                          seq_len=seq_len, batch_size=batch_size,
                          gradient_checkpointing=checkpointing, rollout_engine=engine)
    estimate = sum(breakdown.values())
    fits = estimate <= usable
    finite = capacity != float("inf")
    max_batch = _largest(lambda b: total(seq_len, b, may_checkpoint) <= usable) if finite else 0
    max_len = _largest(lambda n: total(n, batch_size, may_checkpoint) <= usable) if finite else 0
    max_completion = None
    if prompt_tokens is not None and finite:
        max_completion = max(0, max_len - prompt_tokens)
    advice = []
    if not fits:
        weights = breakdown["weights"]
        activations, logits = breakdown["activations"], breakdown["logits"]
        if quantize != "4bit" and shape.n_params * BYTES["4bit"] / GIB < capacity * 0.6:
            advice.append("quantize='4bit' (NF4 via bitsandbytes) cuts the weights to about "
                          f"{shape.n_params * BYTES['4bit'] / GIB:.1f} GiB")
        if weights > usable:
            bigger = [g for g, gib in sorted(GPUS.items(), key=lambda kv: kv[1])
                      if gib * headroom >= estimate and g != "CPU"]
            advice.append(f"the weights alone ({weights:.1f} GiB) exceed the {gpu_key}; "
                          + (f"use a larger GPU such as {bigger[0]}" if bigger else
                             "spread the model over several GPUs (FSDP)"))
        if activations + logits > capacity * 0.3:
            advice.append("shorten seq_len or batch_size" + (
                "" if checkpointing else ", or turn on gradient checkpointing"))
    return MemoryPlan(shape.name, method, gpu_key, capacity, estimate, fits,
                      {k: round(v, 3) for k, v in breakdown.items()}, advice,
                      headroom=headroom, usable_gib=usable, gradient_checkpointing=checkpointing,
                      seq_len=seq_len, batch_size=batch_size, max_batch_size=max_batch,
                      max_seq_len=max_len, prompt_tokens=prompt_tokens,
                      max_completion_length=max_completion)


def require_fit(plan: MemoryPlan) -> MemoryPlan:
    """Raise ``MemoryPlanError`` (with the plan and advice) when the run cannot fit."""
    if not plan.fits:
        raise MemoryPlanError("refusing to start: " + plan.summary(), plan)
    return plan
