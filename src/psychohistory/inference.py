"""ProbabilityTreeInference: load a model once, hot-swap LoRA adapters, generate trees.

Loading a model takes seconds to minutes, so the example is not run as a doctest::

    inference = ProbabilityTreeInference("smollm2-135m-instruct")
    inference.load_adapter(None)                       # the base model
    inference.load_adapter("runs/sft/final", "sft")    # no reload of the base weights
    tree = inference.generate_tree("Brexit vote passes", "52% leave, 48% remain")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psychohistory.errors import ConfigError, TreeParseError
from psychohistory.tree import ProbabilityTree, TreeLimits, parse_tree

logger = logging.getLogger("psychohistory.inference")


@dataclass
class Generation:
    """One generated completion and its parsed tree (``None`` when it did not parse)."""

    seed: str
    text: str
    tree: ProbabilityTree | None
    error: str | None
    attempts: int


class ProbabilityTreeInference:
    """Generation of probability trees with a base model and switchable LoRA adapters.

    ``adapter``: a LoRA adapter folder to start with (under the name ``"adapter"``); it is
    checked before the model loads, so a wrong path fails in milliseconds, not after the load.
    ``sft_adapter``: an SFT adapter folded into the base first, as ``Trainer(sft_adapter=...)``
    did before training the GRPO adapter on top.

    >>> inference = ProbabilityTreeInference("smollm2-135m-instruct")  # doctest: +SKIP
    >>> inference.load_adapter("runs/grpo/final", "grpo")  # doctest: +SKIP
    'grpo'
    >>> inference.generate_tree("Brexit vote passes", "52% leave")  # doctest: +SKIP
    ProbabilityTree(seed='Brexit vote passes', children=[...])
    """

    def __init__(
        self,
        model: str | Any = "smollm2-135m-instruct",
        *,
        tokenizer: Any = None,
        device: str | None = None,
        quantize: str | None = None,
        trust_remote_code: bool = False,
        adapter: str | None = None,
        sft_adapter: str | None = None,
        max_new_tokens: int = 320,
        temperature: float = 0.7,
        retries: int = 2,
        limits: TreeLimits | None = None,
    ) -> None:
        for path in (adapter, sft_adapter):
            if path is not None:
                from psychohistory.training.models import check_adapter

                check_adapter(path)
        if isinstance(model, str):
            from psychohistory.training.models import load_model

            model, tokenizer = load_model(model, device=device, quantize=quantize,
                                          trust_remote_code=trust_remote_code)
        elif tokenizer is None:
            raise ConfigError("pass tokenizer= with a model object")
        if sft_adapter is not None:  # GRPO trained its adapter on the SFT-merged base
            from psychohistory.training.trainer import merge_adapter

            model = merge_adapter(model, sft_adapter)
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.retries = retries
        self.limits = limits
        self.adapters: dict[str, str] = {}
        # a peft model handed in (by a training callback, say) computes with its own adapter
        self.active: str | None = getattr(model, "active_adapter", None) if hasattr(
            model, "peft_config") else None
        if adapter is not None:
            self.load_adapter(adapter, "adapter")

    # ------------------------------------------------------------------ adapters

    def load_adapter(self, path: str | None, name: str | None = None) -> str | None:
        """Switch to the adapter at ``path`` (loaded once, under ``name``), or to the base model.

        The base weights stay in memory: peft keeps several adapters on one model. ``path`` is
        checked first (:func:`~psychohistory.training.models.check_adapter`): a file, an empty
        folder or one without a complete ``adapter_config.json`` and
        ``adapter_model.safetensors`` raises ``ConfigError`` naming it, and the model is left
        as it was.
        """
        if path is None:
            self.active = None
            return None
        name = name or f"adapter{len(self.adapters)}"
        if name not in self.adapters:
            from psychohistory.training.models import check_adapter

            check_adapter(path)
            from peft import PeftModel

            from psychohistory.training.models import quiet_checkpointing_deprecations

            with quiet_checkpointing_deprecations():
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(path, adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            self.adapters[name] = str(path)
        elif self.adapters[name] != str(path):
            raise ConfigError(f"adapter name {name!r} is already loaded from "
                              f"{self.adapters[name]}; choose another name")
        self.model.set_adapter(name)
        self.active = name
        return name

    def active_adapter(self) -> Any:
        """A context in which ``self.model`` computes with the active adapter (or none)."""
        import contextlib

        if self.active is None and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # ---------------------------------------------------------------- generation

    def generate_text(self, prompts: Sequence[str], *, sample: bool) -> list[str]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(list(prompts), return_tensors="pt", padding=True,
                  add_special_tokens=False).to(self.model.device)
        # use_cache: a model in the middle of training may have it off in its config
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                  "pad_token_id": tok.pad_token_id, "use_cache": True}
        if sample:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        self.model.eval()
        with torch.no_grad(), self.active_adapter():
            out = self.model.generate(**enc, **kwargs)
        return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def generate_trees(
        self,
        seeds: Sequence[str],
        contexts: Sequence[str] | None = None,
        *,
        batch_size: int = 8,
        sample: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """Trees for many seeds, in batches; unparsable outputs are retried with sampling."""
        from psychohistory.training.prompts import build_prompt

        contexts = list(contexts) if contexts is not None else [""] * len(seeds)
        if len(contexts) != len(seeds):
            raise ValueError(f"{len(contexts)} contexts for {len(seeds)} seeds")
        prompts = [build_prompt(self.tokenizer, s, c) for s, c in zip(seeds, contexts, strict=True)]
        results: list[Generation | None] = [None] * len(seeds)
        pending = list(range(len(seeds)))
        for attempt in range(1, self.retries + 2):
            for start in range(0, len(pending), batch_size):
                batch = pending[start:start + batch_size]
                texts = self.generate_text([prompts[i] for i in batch],
                                           sample=sample or attempt > 1)
                for i, text in zip(batch, texts, strict=True):
                    try:
                        tree = parse_tree(text, limits=self.limits, seed=seeds[i])
                        results[i] = Generation(seeds[i], text, tree, None, attempt)
                    except TreeParseError as exc:
                        results[i] = Generation(seeds[i], text, None, str(exc), attempt)
                if progress is not None and attempt == 1:
                    progress(len(batch))
            pending = [i for i in pending if results[i].tree is None]  # type: ignore[union-attr]
            if not pending:
                break
            logger.info("retrying %d unparsable outputs (attempt %d)", len(pending), attempt + 1)
        return [r for r in results if r is not None]

    def generate_tree(self, seed: str, context: str = "") -> ProbabilityTree:
        """One parsed tree; raises ``TreeParseError`` if every attempt was unparsable."""
        result = self.generate_trees([seed], [context])[0]
        if result.tree is None:
            raise TreeParseError(f"no parsable tree after {result.attempts} attempts: "
                                 f"{result.error}")
        return result.tree
