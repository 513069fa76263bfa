#!/usr/bin/env python
"""Is the verifier's forward pass bound by compute or by overhead? Timed ways of running it.

The pairs are the ones a real GRPO step sends the verifier (the four default rewards on a group
of completions against a test case, captured as they reach ``VerifierMatcher.logits``), the
model SmolLM2-135M's shape at random weights (``profile_step.random_models``: throughput only).
In one run, on the same pairs, each way is timed against the library's own path (``logits``:
sorted by length, batches of 1024 on a GPU):

- **pass size**: the same path on the first 64, 256, 1024 pairs and all of them, so the fixed
  cost of a pass (launches, Python) and the cost of a pair can be read apart;
- **one batch**: every pair in one pass;
- **compiled**: the library's ``VerifierMatcher(compile=True)`` on the same model (the first
  call, which compiles, is timed apart), and the largest logit difference from the eager path;
- **the whole group**: the default composite reward on a group of completions for each of
  ``--cases`` test cases, the verifier eager against compiled, caches emptied before each.

    python benchmarks/gpu/verifier_forward.py --shapes DIR [--group 64] [--repeats 5]
        [--cases 5] [--no-compile] [--out F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))


def step_pairs(verifier: Any, embedding: Any, group: int) -> list[tuple[str, str]]:
    """The distinct pairs one step's default rewards send the verifier (first test case)."""
    from bench_matchers import step_group

    from psychohistory.datasets import load_dataset
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.plugins import get_reward
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward

    case = load_dataset("historical", split="test")[0]
    sent: list[tuple[str, str]] = []
    logits = verifier.logits

    def capture(pairs: Any) -> Any:
        sent.extend(pairs)
        return logits(pairs)

    verifier.logits = capture
    shared = CascadeMatcher(verifier=verifier, embedding=embedding)
    composite = CompositeReward(
        [get_reward(n, **({} if n == "format" else {"matcher": shared})) for n in DEFAULT_WEIGHTS],
        list(DEFAULT_WEIGHTS.values()))
    composite(step_group(case, group, seed=0), case=[case] * group)
    verifier.logits = logits
    return list(dict.fromkeys(sent))


def compiled_twin(verifier: Any) -> Any:
    """A ``VerifierMatcher(compile=True)`` on the very model (and tokenizer) of ``verifier``."""
    from psychohistory.matching.verifier import VerifierMatcher

    twin = VerifierMatcher(compile=True)
    twin._loaded = verifier._loaded
    return twin


def synced(work: Any, device: str) -> float:
    """Seconds ``work()`` takes, the GPU's queue drained before and after."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    work()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_call(verifier: Any, pairs: list[tuple[str, str]], device: str) -> float:
    return synced(lambda: verifier.logits(pairs), device)


def whole_group(eager: Any, compiled: Any, embedding: Any, group: int,
                cases: int) -> dict[str, float]:
    """The default composite on a group per test case, eager against compiled, cold caches."""
    from bench_matchers import step_group

    from psychohistory.datasets import load_dataset
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.plugins import get_reward
    from psychohistory.rewards.base import _parse_cached
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward

    times: dict[str, list[float]] = {"eager": [], "compile=True": []}
    for k, case in enumerate(load_dataset("historical", split="test")[:cases]):
        batch = step_group(case, group, seed=k)
        for label, verifier in (("eager", eager), ("compile=True", compiled)):
            shared = CascadeMatcher(verifier=verifier, embedding=embedding)
            composite = CompositeReward(
                [get_reward(n, **({} if n == "format" else {"matcher": shared}))
                 for n in DEFAULT_WEIGHTS], list(DEFAULT_WEIGHTS.values()))
            _parse_cached.cache_clear()
            verifier._cache.clear()
            embedding.cache = type(embedding.cache)(embedding.cache.max_items)
            start = time.perf_counter()
            composite(batch, case=[case] * group)
            times[label].append(time.perf_counter() - start)
    median = {label: statistics.median(v) for label, v in times.items()}
    return {**median, "speedup": median["eager"] / median["compile=True"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=Path, required=True)
    parser.add_argument("--group", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch
    from profile_step import random_models

    device = "cuda" if torch.cuda.is_available() else "cpu"
    verifier, embedding = random_models(args.shapes, device)
    pairs = step_pairs(verifier, embedding, args.group)
    tokenizer, model, _ = verifier.load()

    def run(subset: list[tuple[str, str]], batch_size: int | None = None) -> float:
        verifier.batch_size = batch_size
        return timed_call(verifier, subset, device)

    def median(subset: list[tuple[str, str]], batch_size: int | None = None) -> float:
        run(subset[:8], batch_size)  # warm
        return statistics.median(run(subset, batch_size) for _ in range(args.repeats))

    from psychohistory.matching.pair_tokens import PairTokens
    from psychohistory.matching.verifier import DECODER_TEMPLATE

    tokens = PairTokens(tokenizer, DECODER_TEMPLATE).batch(pairs, 64)
    n_tokens = int(tokens["attention_mask"].sum())
    parameters = sum(p.numel() for p in model.parameters())
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": str(next(model.parameters()).dtype), "pairs": len(pairs),
        "tokens (unpadded)": n_tokens, "parameters": parameters, "repeats": args.repeats}
    sizes = [n for n in (64, 256, 1024) if n < len(pairs)] + [len(pairs)]
    result["library path, s, by pairs"] = {n: median(pairs[:n]) for n in sizes}
    base = result["library path, s, by pairs"][len(pairs)]
    result["one batch of all pairs, s"] = median(pairs, len(pairs))
    # the forward alone, on the already tokenised inputs: what tokenising and sorting add
    inputs = {k: v.to(device) for k, v in tokens.items()}
    with torch.inference_mode():
        def passes() -> None:  # each batch's outputs dropped before the next, as in logits
            for s in range(0, len(pairs), 1024):
                model(**{k: v[s:s + 1024] for k, v in inputs.items()})

        def forward() -> float:
            return synced(passes, device)
        forward()
        result["forward alone (unsorted, batches of 1024), s"] = statistics.median(
            forward() for _ in range(args.repeats))
        flops = 2 * parameters * n_tokens  # a lower bound: no attention, no padding
        result["effective TFLOP/s of the library path"] = flops / base / 1e12
    if not args.no_compile:
        compiled = compiled_twin(verifier)
        start = time.perf_counter()
        first = compiled.logits(pairs)
        result["compile=True, first call (compiles), s"] = time.perf_counter() - start
        result["compile=True, s"] = statistics.median(
            timed_call(compiled, pairs, device) for _ in range(args.repeats))
        verifier.batch_size = None
        result["compile=True vs eager, max |logit difference|"] = float(
            abs(first - verifier.logits(pairs)).max())
        result["compile=True fell back to eager"] = compiled._compiled is model
        result["the whole group, s (median over cases)"] = whole_group(
            verifier, compiled, embedding, args.group, args.cases)
    result["ratios vs the library path (all pairs)"] = {
        k: base / v for k, v in result.items()
        if isinstance(v, float) and k.endswith(", s") and v > 0 and "first call" not in k}
    print(json.dumps(result, indent=1, default=str))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
