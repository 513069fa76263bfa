"""Fast GRPO rollouts: a whole step's completions in one batch on a static KV cache.

TRL's GRPO step spends nearly all its time in ``generate``, which on a small model is bound by
kernel launches and Python, not by the GPU. :class:`RolloutEngine` samples the step's
completions (prompts x group, as TRL hands them over) in one batch and plugs into
``trl.GRPOTrainer(rollout_func=...)``, so GRPO itself stays TRL's:

* **one static KV cache** per batch size, sized for the longest prompt bucket seen
  (``prompt_bucket`` tokens) plus the completion; prompts are left-padded to their bucket, so
  shapes repeat and nothing is rebuilt after warm-up;
* **prefill** once per distinct prompt (a GRPO group shares its prompt), eagerly, its keys and
  values copied into every row of the group;
* **decoding** one token per step through the model's own forward with a prepared 4-D mask,
  sampling (temperature, top-k, top-p, min-p; exponential-race sampling, so it needs no host
  sync) and end-of-sequence bookkeeping all on the device, **captured once in a CUDA graph**
  and replayed; the host looks at the batch every ``check_every`` steps and stops when every
  sequence has ended;
* **LoRA** either **merged** into a generation copy of the adapted linear layers (bf16/fp32
  bases: no per-layer adapter kernels at all; the copy is refreshed in place after each
  optimizer step, which for r4 is a few small matmuls) or, for 4-bit bases and adapters that
  cannot be merged, run **unmerged** inside the graph (the adapter's weights are read live, so
  nothing needs refreshing and no dequantised copy of the base is made);
* the per-token **log-probabilities** returned are the sampling policy's: log-softmax of the
  generation weights' logits over the temperature, i.e. what TRL's training pass computes, before
  top-k/top-p truncation (TRL's convention).

On a CPU the same code runs without graphs (the tests use that). The engine is the default on
CUDA for the model types in :data:`SUPPORTED_MODEL_TYPES`; :func:`unsupported_reason` says why it
is not used elsewhere.

>>> sorted(SUPPORTED_MODEL_TYPES)
['llama', 'mistral', 'qwen2', 'qwen3']
>>> round_up(450, 128), round_up(1, 128)
(512, 128)
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("psychohistory.training.rollout")

SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
ATTENTION_IMPLEMENTATIONS = frozenset({"sdpa", "eager"})
LORA_MODES = ("auto", "merge", "adapter")
# GRPOConfig / generation_kwargs settings the engine reproduces; anything else falls back to TRL
GENERATION_KEYS = frozenset({"temperature", "top_k", "top_p", "min_p", "max_new_tokens",
                             "do_sample", "pad_token_id", "bos_token_id", "eos_token_id",
                             "cache_implementation"})
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks")


def round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


# ----------------------------------------------------------------------------- support checks


def unsupported_reason(model: Any, *, repetition_penalty: float = 1.0,
                       generation_kwargs: dict[str, Any] | None = None) -> str | None:
    """Why the engine cannot reproduce TRL's sampling for ``model``, or ``None`` if it can."""
    base = _base_model(model)
    config = getattr(base, "config", None)
    if config is None:
        return "the model has no transformers config"
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return (f"model type {model_type!r} is not one the engine supports "
                f"({', '.join(sorted(SUPPORTED_MODEL_TYPES))})")
    attn = getattr(config, "_attn_implementation", None) or "eager"
    if attn not in ATTENTION_IMPLEMENTATIONS:
        return f"attention implementation {attn!r} (the engine needs 'sdpa' or 'eager')"
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types) or (
            getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None)):
        return "sliding-window attention layers"
    if model_type == "mistral" and getattr(config, "sliding_window", None):
        return "sliding-window attention layers"
    devices = {p.device for p in base.parameters()}
    if len(devices) != 1:
        return f"parameters on several devices ({sorted(map(str, devices))})"
    if repetition_penalty != 1.0:
        return f"repetition_penalty={repetition_penalty} (the engine samples without it)"
    others = sorted(set(generation_kwargs or {}) - GENERATION_KEYS)
    if others:
        return f"generation_kwargs {others} (the engine reproduces {sorted(GENERATION_KEYS)})"
    return None


def _base_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers still injected)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _lora_linear(module: nn.Module) -> bool:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is a training dependency
        return False
    return isinstance(module, LoraLayer) and isinstance(module.get_base_layer(), nn.Linear)


def _is_4bit(model: Any) -> bool:
    base = _base_model(model)
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def choose_lora_mode(model: Any) -> tuple[str, str]:
    """``("merge" | "adapter", why)``: merge where every adapter is a plain mergeable LoRA."""
    if _is_4bit(model):
        return "adapter", ("a quantized base: the adapter runs unmerged inside the CUDA graph, so no "
                           "bf16 copy of the weights is made")
    for module in _base_model(model).modules():
        if _lora_linear(module):
            if any(getattr(module, "use_dora", {}).values()):
                return "adapter", "DoRA adapters are not merged"
            if any(getattr(module, "lora_bias", {}).values()):
                return "adapter", "LoRA bias terms are not merged"
        elif type(module).__module__.startswith("peft.tuners") and hasattr(module, "lora_A"):
            return "adapter", f"a {type(module).__name__} adapter layer is not merged"
    return "merge", "LoRA merged into a generation copy of the adapted layers"


# ----------------------------------------------------------------------------- the generation copy


class MergedCopy:
    """A module tree that shares every tensor with the training model except the LoRA-adapted
    linear layers, which are plain ``nn.Linear`` holding ``W + scale * B @ A``.

    :meth:`refresh` rewrites those weights in place (CUDA graphs keep pointing at them).
    """

    def __init__(self, model: Any) -> None:
        self.pairs: list[tuple[nn.Linear, Any]] = []
        self.module = self._clone(_base_model(model))
        self.module.eval()  # the clones only: the training model keeps its mode
        self.refresh()

    def _clone(self, module: Any) -> nn.Module:
        if _lora_linear(module):
            layer: Any = module.get_base_layer()
            weight = layer.weight.detach()
            linear = nn.Linear(layer.in_features, layer.out_features, bias=False, device="meta")
            linear.weight = nn.Parameter(torch.empty_like(weight), requires_grad=False)
            linear.bias = layer.bias  # shared, not trained by LoRA
            self.pairs.append((linear, module))
            return linear
        new = copy.copy(module)
        new.__dict__.pop("forward", None)  # instance patches (TRL's fused head, accelerate hooks)
        new._parameters = dict(module._parameters)
        new._buffers = dict(module._buffers)
        new._modules = {name: (self._clone(child) if child is not None else None)
                        for name, child in module._modules.items()}
        for name in _HOOK_DICTS:
            if hasattr(module, name):
                setattr(new, name, OrderedDict())
        return new

    @torch.no_grad()
    def refresh(self) -> None:
        for linear, lora in self.pairs:
            base = lora.get_base_layer().weight
            merged = base.float()
            if not getattr(lora, "merged", False) and not getattr(lora, "disable_adapters", False):
                for name in lora.active_adapters:
                    if name in lora.lora_A:
                        merged = merged + lora.get_delta_weight(name).float()
            linear.weight.copy_(merged)

    @property
    def extra_bytes(self) -> int:
        return sum(linear.weight.numel() * linear.weight.element_size() for linear, _ in self.pairs)


# ----------------------------------------------------------------------------- the KV cache


class StaticKV:
    """A fixed-size KV cache the model's attention layers write through ``update``.

    Prefill writes columns ``[offset, offset + P)`` of the rows its prompts belong to and attends
    within the prompt; a decode step writes position ``write_index`` (a device tensor, so replays move on
    without the host) and attends over the whole buffer under the engine's mask. It is not a
    ``transformers.Cache`` subclass on purpose: mask creation then takes the prepared 4-D mask
    as it is, whatever the transformers version.
    """

    is_compileable = True

    def __init__(self, layers: int, batch: int, length: int, device: torch.device) -> None:
        self.layers, self.batch, self.length = layers, batch, length
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers
        self.write_index = torch.zeros(1, dtype=torch.long, device=device)
        # (cache rows, rows of the prefill batch, first column) while a prefill runs
        self.prefill: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def _allocate(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        shape = (self.batch, key.shape[1], self.length)
        self.keys[layer] = key.new_zeros((*shape, key.shape[-1]))
        self.values[layer] = value.new_zeros((*shape, value.shape[-1]))

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if keys is None or values is None:
            self._allocate(layer_idx, key_states, value_states)
            keys, values = self.keys[layer_idx], self.values[layer_idx]
            assert keys is not None and values is not None
        if self.prefill is not None:
            rows, sources, offset = self.prefill
            n = key_states.shape[-2]
            keys[:, :, offset:offset + n].index_copy_(0, rows, key_states.index_select(0, sources))
            values[:, :, offset:offset + n].index_copy_(
                0, rows, value_states.index_select(0, sources))
            return key_states, value_states
        keys.index_copy_(2, self.write_index, key_states)
        values.index_copy_(2, self.write_index, value_states)
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions come from the engine; a host value here would break graph capture

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)


# ----------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn; ``greedy`` takes the arg-max."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        if self.temperature <= 0 and not self.greedy:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sample(logits: torch.Tensor, how: Sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, logprobs)`` for a ``(batch, vocab)`` float tensor, with no host sync.

    The log-probabilities are of the temperature-scaled distribution (TRL's training pass),
    not renormalised after top-k/top-p/min-p truncation.
    """
    temperature = how.temperature if how.temperature > 0 else 1.0
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    if how.greedy:
        tokens = logits.argmax(dim=-1)
    else:
        scores = logprobs
        if how.top_k:
            kth = torch.topk(scores, min(how.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if how.top_p < 1.0:
            ordered, order = torch.sort(scores, dim=-1)
            cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative <= 1 - how.top_p
            drop[:, -1] = False
            scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        if how.min_p:
            probs = scores.softmax(dim=-1)
            floor = probs.amax(dim=-1, keepdim=True) * how.min_p
            scores = scores.masked_fill(probs < floor, float("-inf"))
        # exponential race: argmax(p / q), q ~ Exp(1), draws from softmax(scores) exactly
        race = torch.empty_like(scores).exponential_().log_()
        tokens = (scores - race).argmax(dim=-1)
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------- the engine


@dataclass
class Rollout:
    """One batch of completions: token ids up to and including the end token, their logprobs."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_steps: int = 0
    graphed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(len(c) for c in self.completion_ids)


class _Batch:
    """The static buffers of one batch size and cache length, and its captured decode graph."""

    def __init__(self, engine: RolloutEngine, batch: int, length: int, steps: int) -> None:
        device = engine.device
        self.batch, self.length, self.steps = batch, length, steps
        self.cache = StaticKV(engine.num_layers, batch, length, device)
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.start = torch.zeros(1, dtype=torch.long, device=device)
        self.prompt_lens = torch.ones(batch, dtype=torch.long, device=device)
        self.mask = torch.zeros(batch, length, dtype=torch.bool, device=device)  # True: attend
        self.out_tokens = torch.zeros(batch, steps, dtype=torch.long, device=device)
        self.out_logprobs = torch.zeros(batch, steps, dtype=torch.float32, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self.graph: Any = None
        self.graph_error: str | None = None

    def state(self) -> list[torch.Tensor]:
        return [self.token, self.step, self.start, self.prompt_lens, self.mask, self.out_tokens,
                self.out_logprobs, self.finished]


class RolloutEngine:
    """Batched sampling on a static KV cache, CUDA-graph replayed where CUDA is.

    ``model``: the model TRL trains (a peft model or a plain causal LM). ``lora``: ``"merge"``,
    ``"adapter"`` or ``"auto"`` (:func:`choose_lora_mode`). ``cuda_graphs``: ``None`` captures
    on CUDA. ``prompt_bucket``: prompts are padded to a multiple of it.
    """

    def __init__(self, model: Any, *, pad_token_id: int, eos_token_ids: Sequence[int],
                 max_new_tokens: int, sampling: Sampling | None = None, lora: str = "auto",
                 cuda_graphs: bool | None = None, prompt_bucket: int = 128, check_every: int = 8,
                 max_prefill_tokens: int = 32768) -> None:
        if lora not in LORA_MODES:
            raise ValueError(f"lora must be one of {LORA_MODES}, got {lora!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model = model
        self.base = _base_model(model)
        config = self.base.config.get_text_config() if hasattr(self.base.config, "get_text_config") \
            else self.base.config
        self.num_layers = int(config.num_hidden_layers)
        self.device = next(self.base.parameters()).device
        self.pad_token_id = int(pad_token_id)
        self.eos = torch.tensor(sorted({int(t) for t in eos_token_ids}), dtype=torch.long,
                                device=self.device)
        self.max_new_tokens = int(max_new_tokens)
        self.sampling = sampling or Sampling()
        self.prompt_bucket, self.check_every = int(prompt_bucket), int(check_every)
        self.max_prefill_tokens = int(max_prefill_tokens)
        self.cuda_graphs = (self.device.type == "cuda") if cuda_graphs is None else bool(cuda_graphs)
        if lora == "auto":
            lora, why = choose_lora_mode(model)
        else:
            why = f"lora={lora!r} asked for"
        self.lora_mode, self.lora_reason = lora, why
        self.copy = MergedCopy(model) if lora == "merge" else None
        self.runner = self.copy.module if self.copy is not None else self.base
        # sdpa takes the boolean mask as it is; eager attention adds a float mask to its scores
        attn = getattr(self.base.config, "_attn_implementation", None) or "eager"
        dtype = next(p.dtype for p in self.runner.parameters() if p.is_floating_point())
        self.additive_mask = dtype if attn == "eager" else None
        forward = type(self.runner).forward
        params = inspect.signature(forward).parameters
        self._forward = forward
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in params
        self._batches: dict[int, _Batch] = {}
        self.synced_step: int | None = None
        logger.info("rollout engine: %s; LoRA %s (%s)", self.device,
                    self.lora_mode, self.lora_reason)

    # ------------------------------------------------------------------ weights

    def sync_weights(self) -> None:
        """After an optimizer step: fold the adapter's new weights into the generation copy."""
        if self.copy is not None:
            self.copy.refresh()

    # ------------------------------------------------------------------ the forward

    def _logits(self, input_ids: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor,
                cache: StaticKV) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_kw: cache, "use_cache": True,
                                  "attention_mask": mask, "position_ids": position_ids}
        if self.additive_mask is not None:
            kwargs["attention_mask"] = torch.zeros(mask.shape, dtype=self.additive_mask,
                                                   device=mask.device).masked_fill_(
                ~mask, torch.finfo(self.additive_mask).min)
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self._forward(self.runner, input_ids=input_ids, **kwargs)
        return out.logits[:, -1, :].float()

    def _decode_step(self, b: _Batch) -> None:
        """One token for every row; only device work, so it can be captured in a graph."""
        write = b.start + b.step
        b.cache.write_index.copy_(write)
        b.mask.index_fill_(1, write, True)
        positions = (b.prompt_lens + b.step).unsqueeze(1)
        logits = self._logits(b.token, positions, b.mask[:, None, None, :], b.cache)
        token, logprob = sample(logits, self.sampling)
        token = token.masked_fill(b.finished, self.pad_token_id)
        logprob = logprob.masked_fill(b.finished, 0.0)
        column = b.step + 1
        b.out_tokens.index_copy_(1, column, token.unsqueeze(1))
        b.out_logprobs.index_copy_(1, column, logprob.unsqueeze(1))
        b.finished.logical_or_(torch.isin(token, self.eos))
        b.token.copy_(token.unsqueeze(1))
        b.step.add_(1)

    def _capture(self, b: _Batch) -> None:
        saved = [t.clone() for t in b.state()]
        try:
            stream = torch.cuda.Stream(device=self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._decode_step(b)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            for t, s in zip(b.state(), saved, strict=True):
                t.copy_(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._decode_step(b)
            b.graph = graph
            logger.info("rollout engine: captured the decode step for %d rows x %d positions",
                        b.batch, b.length)
        except Exception as exc:  # a model whose forward syncs with the host, for instance
            b.graph, b.graph_error = None, f"{type(exc).__name__}: {exc}"
            logger.warning("rollout engine: CUDA graph capture failed (%s); decoding eagerly",
                           b.graph_error)
            torch.cuda.synchronize(self.device)
        for t, s in zip(b.state(), saved, strict=True):
            t.copy_(s)

    # ------------------------------------------------------------------ generation

    def _batch_for(self, batch: int, length: int) -> _Batch:
        b = self._batches.get(batch)
        if b is None or b.length < length:
            if b is not None:
                logger.info("rollout engine: prompts grew past the cache (%d > %d positions); "
                            "rebuilding it", length, b.length)
            self._batches.pop(batch, None)
            b = _Batch(self, batch, length, self.max_new_tokens)
            self._batches[batch] = b
        return b

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[Sequence[int]], *,
                 sampling: Sampling | None = None) -> Rollout:
        """Sample one completion for each prompt (repeat a prompt for a group)."""
        if not prompt_ids or any(len(p) == 0 for p in prompt_ids):
            raise ValueError("generate needs at least one prompt, and no empty prompt")
        if sampling is not None and sampling != self.sampling:
            previous, self.sampling = self.sampling, sampling
            self._batches.clear()  # the captured graphs sample the old way
            try:
                return self.generate(prompt_ids)
            finally:
                self.sampling = previous
                self._batches.clear()
        was_training = self.runner.training
        self.runner.eval()
        try:
            return self._generate(prompt_ids)
        finally:
            self.runner.train(was_training)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _generate(self, prompt_ids: Sequence[Sequence[int]]) -> Rollout:
        t0 = time.perf_counter()
        n, steps = len(prompt_ids), self.max_new_tokens
        bucket = round_up(max(len(p) for p in prompt_ids), self.prompt_bucket)
        b = self._batch_for(n, bucket + steps)
        # columns: [unused][prompt bucket, left-padded][completion]; a cache built for longer
        # prompts keeps its first columns masked
        start = b.length - steps - bucket
        prompt_end = start + bucket
        device = self.device
        lens = torch.tensor([len(p) for p in prompt_ids], dtype=torch.long, device=device)
        b.prompt_lens.copy_(lens)
        b.start.fill_(prompt_end)
        b.step.zero_()
        b.finished.zero_()
        b.out_tokens.fill_(self.pad_token_id)
        b.out_logprobs.zero_()
        columns = torch.arange(b.length, device=device)
        real = (columns[None, :] >= (prompt_end - lens)[:, None]) & (columns[None, :] < prompt_end)
        b.mask.copy_(real)

        logits = self._prefill(prompt_ids, b, start, bucket)
        token, logprob = sample(logits, self.sampling)
        b.out_tokens[:, 0] = token
        b.out_logprobs[:, 0] = logprob
        b.finished.copy_(torch.isin(token, self.eos))
        b.token.copy_(token.unsqueeze(1))
        self._sync()
        t1 = time.perf_counter()
        if self.cuda_graphs and b.graph is None and b.graph_error is None:
            self._capture(b)
        t2 = time.perf_counter()
        done = 0
        for i in range(steps - 1):
            if i % self.check_every == 0 and bool(b.finished.all()):
                break
            if b.graph is not None:
                b.graph.replay()
            else:
                self._decode_step(b)
            done += 1
        is_end = torch.isin(b.out_tokens, self.eos)
        lengths = torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1) + 1,
                              torch.full_like(lens, min(steps, done + 1)))
        tokens, logprobs, lengths_list = (b.out_tokens.cpu().tolist(),
                                          b.out_logprobs.cpu().tolist(), lengths.cpu().tolist())
        t3 = time.perf_counter()
        return Rollout(
            completion_ids=[row[:k] for row, k in zip(tokens, lengths_list, strict=True)],
            logprobs=[row[:k] for row, k in zip(logprobs, lengths_list, strict=True)],
            prefill_s=t1 - t0, decode_s=t3 - t2, decode_steps=done, graphed=b.graph is not None,
            timings={"capture_s": t2 - t1, "total_s": t3 - t0})

    def _prefill(self, prompt_ids: Sequence[Sequence[int]], b: _Batch, start: int,
                 bucket: int) -> torch.Tensor:
        """Run each distinct prompt once; copy its keys and values into every row that has it."""
        device = self.device
        unique: dict[tuple[int, ...], int] = {}
        rows_of: list[int] = []
        for p in prompt_ids:
            rows_of.append(unique.setdefault(tuple(p), len(unique)))
        prompts = list(unique)
        rows = torch.tensor(rows_of, dtype=torch.long, device=device)
        chunk = max(1, self.max_prefill_tokens // bucket)
        ar = torch.arange(bucket, device=device)
        causal = ar[None, :] <= ar[:, None]
        eye = torch.eye(bucket, dtype=torch.bool, device=device)
        parts = []
        for lo in range(0, len(prompts), chunk):
            group = prompts[lo:lo + chunk]
            lens = torch.tensor([len(p) for p in group], dtype=torch.long, device=device)
            padded = [[self.pad_token_id] * (bucket - len(p)) + list(p) for p in group]
            ids = torch.tensor(padded, dtype=torch.long, device=device)
            first = bucket - lens  # each row's first real column
            real = ar[None, :] >= first[:, None]
            # transformers' positions for left padding: real tokens count from 0, padding says 1
            positions = (ar[None, :] - first[:, None]).masked_fill(~real, 1)
            allowed = (causal[None] & real[:, None, :]) | eye[None]  # padding rows see themselves
            in_group = ((rows >= lo) & (rows < lo + len(group))).nonzero().squeeze(1)
            b.cache.prefill = (in_group, rows[in_group] - lo, start)
            try:
                parts.append(self._logits(ids, positions, allowed[:, None], b.cache))
            finally:
                b.cache.prefill = None
        return torch.cat(parts, dim=0).index_select(0, rows)


# ----------------------------------------------------------------------------- TRL's rollout_func


class TRLRollout:
    """``trl.GRPOTrainer(rollout_func=TRLRollout())``: the engine behind TRL's contract.

    Called with the step's prompts (already repeated for the group) and the trainer, it
    tokenizes them as TRL would, refreshes the generation weights if an optimizer step happened
    since the last call, and returns ``prompt_ids``, ``completion_ids`` and ``logprobs``.
    Timings go to TRL's logged metrics under ``rollout/``.
    """

    def __init__(self, *, lora: str = "auto", cuda_graphs: bool | None = None,
                 prompt_bucket: int = 128, check_every: int = 8) -> None:
        self.options: dict[str, Any] = {"lora": lora, "cuda_graphs": cuda_graphs, "prompt_bucket": prompt_bucket,
                        "check_every": check_every}
        self.engine: RolloutEngine | None = None
        self.last: Rollout | None = None

    def build(self, trainer: Any) -> RolloutEngine:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = getattr(trainer, "_tokenizer", None) or trainer.processing_class
        top_k = getattr(trainer, "top_k", None) or None
        sampling = Sampling(temperature=float(trainer.temperature), top_k=top_k,
                            top_p=float(getattr(trainer, "top_p", 1.0) or 1.0),
                            min_p=getattr(trainer, "min_p", None))
        return RolloutEngine(model, pad_token_id=tokenizer.pad_token_id,
                             eos_token_ids=trainer.eos_token_ids,
                             max_new_tokens=trainer.max_completion_length, sampling=sampling,
                             **self.options)

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        if self.engine is None:
            self.engine = self.build(trainer)
        engine = self.engine
        t0 = time.perf_counter()
        step = trainer.state.global_step
        if engine.synced_step != step:
            engine.sync_weights()
            engine.synced_step = step
        t1 = time.perf_counter()
        prompt_ids, images, _ = trainer._tokenize_prompts(prompts)
        if images is not None:
            raise ValueError("the rollout engine samples text only; set rollout='trl' for images")
        prompt_ids = [list(p) for p in prompt_ids]
        rollout = engine.generate(prompt_ids)
        self.last = rollout
        metrics = getattr(trainer, "_metrics", {}).get("train")
        if metrics is not None:
            total = time.perf_counter() - t0
            metrics["rollout/sync_s"].append(t1 - t0)
            metrics["rollout/prefill_s"].append(rollout.prefill_s)
            metrics["rollout/decode_s"].append(rollout.decode_s)
            metrics["rollout/total_s"].append(total)
            metrics["rollout/tokens_per_s"].append(rollout.tokens / max(total, 1e-9))
            metrics["rollout/cuda_graph"].append(float(rollout.graphed))
        return {"prompt_ids": prompt_ids, "completion_ids": rollout.completion_ids,
                "logprobs": rollout.logprobs}
