"""The memory planner: will this run fit this GPU? Answered before any money is spent.

Peak GPU memory of LoRA training is estimated from the model's shape:

* **weights** - every parameter (MoE experts included) at 2 bytes in bf16, ~0.56 in NF4
  (4-bit blocks plus their scales), 4 in fp32;
* **LoRA state** - adapter weights, gradients and Adam's two moments (16 bytes a parameter);
* **activations** - per token, per layer, a multiple of the hidden size (attention and MLP
  inputs kept for backward), plus the fp32 logits over the vocabulary, which dominate for
  small models with large vocabularies;
* **generation** (GRPO) - the KV cache of the whole group;
* a fixed **overhead** for the CUDA context and allocator slack.

The constants were calibrated against peaks measured on the device for three shapes
(``benchmarks/results/memory_planner.md``): the estimate is the peak the allocator reserves plus
the CUDA context. Gradient checkpointing (TRL's default) lowers the real peak, so without it
the planner errs on the safe side. Every backend calls :func:`plan_memory` first and refuses a
run that cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


def resolve_shape(model: str | ModelShape | Any) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str):
        key = model.lower().split("/")[-1]
        if key in KNOWN_SHAPES:
            return KNOWN_SHAPES[key]
        try:
            from transformers import AutoConfig

            return shape_from_config(AutoConfig.from_pretrained(model), model)
        except Exception as exc:
            raise ConfigError(
                f"cannot read the shape of {model!r} ({exc}); use a local model folder, one of "
                f"{sorted(KNOWN_SHAPES)}, or a ModelShape") from exc
    config = getattr(model, "config", model)
    return shape_from_config(config, getattr(config, "name_or_path", "model"))


@dataclass
class MemoryPlan:
    """The estimate, its parts (GiB), and whether it fits the GPU.

    >>> plan = plan_memory("smollm2-135m-instruct", gpu="T4", seq_len=512, batch_size=4)
    >>> plan.fits, sorted(plan.breakdown)[:3]
    (True, ['activations', 'kv cache', 'logits'])
    """

    model: str
    method: str
    gpu: str
    gpu_gib: float
    estimated_gib: float
    fits: bool
    breakdown: dict[str, float] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.breakdown.items())
        text = (f"{self.model} {self.method}: ~{self.estimated_gib:.1f} GiB ({parts}) "
                f"{verdict} on {self.gpu} ({self.gpu_gib:.0f} GiB)")
        return text + "".join(f"\n  - {a}" for a in self.advice)


def plan_memory(
    model: str | ModelShape | Any,
    *,
    method: str = "grpo",
    lora_rank: int = 4,
    quantize: str | None = None,
    gpu: str = "A10G",
    seq_len: int = 1024,
    batch_size: int = 4,
    gradient_checkpointing: bool = False,
    headroom: float = 0.9,
    gpu_gib: float | None = None,
) -> MemoryPlan:
    """Estimate peak GPU memory of LoRA training and say whether it fits ``gpu``.

    ``seq_len`` is prompt plus completion tokens; ``batch_size`` the sequences per step (for
    GRPO, the completions of a step). ``headroom`` is the share of the GPU a plan may use;
    ``gpu_gib`` overrides the GPU's memory (a card not in the table, or a measured free size).

    >>> plan_memory("gpt-oss-20b", gpu="A10G").fits
    False
    >>> plan_memory("smollm2-135m-instruct", gpu="A10G").fits
    True
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if quantize not in (None, "4bit", "bf16", "fp32"):
        raise ConfigError(f"quantize must be None, 'bf16', 'fp32' or '4bit', got {quantize!r}")
    gpu_key = gpu.upper() if gpu.upper() in GPUS else gpu
    if gpu_key not in GPUS and gpu_gib is None:
        raise ConfigError(f"unknown GPU {gpu!r}; known: {', '.join(sorted(GPUS))} "
                          "(or pass gpu_gib=)")
    shape = resolve_shape(model)
    lora = shape.lora_params(lora_rank)
    weights = shape.n_params * BYTES[quantize] / GIB
    lora_state = lora * 16 / GIB
    tokens = seq_len * batch_size
    # a token passes through its active experts only (MoE), each with its own intermediate
    intermediate = shape.intermediate * shape.active_experts
    per_layer = 2 * (ACTIVATION_HIDDEN * shape.hidden + ACTIVATION_INTERMEDIATE * intermediate)
    layers_kept = (shape.layers ** 0.5) if gradient_checkpointing else shape.layers
    activations = tokens * per_layer * layers_kept / GIB
    logits = tokens * shape.vocab * LOGIT_BYTES / GIB
    breakdown = {"weights": weights, "lora+optimizer": lora_state, "activations": activations,
                 "logits": logits}
    if method == "grpo":
        kv = batch_size * seq_len * shape.layers * 2 * shape.kv_heads * shape.head_dim * 2
        breakdown["kv cache"] = kv / GIB
    breakdown["overhead"] = OVERHEAD_GIB
    total = sum(breakdown.values())
    capacity = float(gpu_gib) if gpu_gib is not None else GPUS[gpu_key]
    fits = total <= capacity * headroom
    advice = []
    if not fits:
        if quantize != "4bit" and shape.n_params * BYTES["4bit"] / GIB < capacity * 0.6:
            advice.append("quantize='4bit' (NF4 via bitsandbytes) cuts the weights to about "
                          f"{shape.n_params * BYTES['4bit'] / GIB:.1f} GiB")
        if weights > capacity * headroom:
            bigger = [g for g, gib in sorted(GPUS.items(), key=lambda kv: kv[1])
                      if gib * headroom >= total and g != "CPU"]
            advice.append(f"the weights alone ({weights:.1f} GiB) exceed the {gpu_key}; "
                          + (f"use a larger GPU such as {bigger[0]}" if bigger else
                             "spread the model over several GPUs (FSDP)"))
        if activations + logits > capacity * 0.3:
            advice.append("shorten seq_len or batch_size, or turn on gradient checkpointing")
    return MemoryPlan(shape.name, method, gpu_key, capacity, total, fits,
                      {k: round(v, 3) for k, v in breakdown.items()}, advice)


def require_fit(plan: MemoryPlan) -> MemoryPlan:
    """Raise ``MemoryPlanError`` (with the plan and advice) when the run cannot fit."""
    if not plan.fits:
        raise MemoryPlanError("refusing to start: " + plan.summary(), plan)
    return plan
