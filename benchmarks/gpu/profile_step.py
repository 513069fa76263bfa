#!/usr/bin/env python
"""Where a GRPO step's reward time goes, with models of the real shapes at random weights.

Throughput only: the verifier (SmolLM2-135M as a one-logit classifier) and the embedding
encoder (all-MiniLM-L6-v2) are built from their configs and tokenizers with random weights, so
this needs neither weight file on the machine; what pairs the candidate filter keeps differs
from the trained models' (at most ``candidates`` per node either way). Each step: the four
default rewards on a group of completions against one test case, caches emptied first, split
into the verifier's tokenising and forward passes, the embedding encoder, and the rest.

    python benchmarks/gpu/profile_step.py --shapes DIR [--group 64] [--cases 5] [--out F]

DIR holds ``smollm2/`` (config and tokenizer files) and ``minilm/`` (the sentence-transformers
folder without its weights); ``make_carry.sh`` writes it as ``.carry/shapes``.
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


def random_models(shapes: Path, device: str) -> tuple[Any, Any]:
    """The verifier and embedding matchers, their models of the real shapes at random weights."""
    import shutil

    import torch
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertModel,
    )

    from psychohistory.matching.embedding import EmbeddingMatcher
    from psychohistory.matching.verifier import DECODER_BASE, VerifierMatcher, resolve_dtype

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(shapes / "smollm2")
    tokenizer = AutoTokenizer.from_pretrained(shapes / "smollm2")
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id, config.num_labels = tokenizer.pad_token_id, 1
    model = AutoModelForSequenceClassification.from_config(config).eval()
    model.to(device=device, dtype=getattr(torch, resolve_dtype("auto", device)))
    verifier = VerifierMatcher()
    verifier._loaded = (tokenizer, model, {"base_model": DECODER_BASE, "max_length": 64,
                                           "calibration": {"a": 1.0, "b": 0.0}})
    minilm = Path("/tmp/minilm_random")
    shutil.rmtree(minilm, ignore_errors=True)
    shutil.copytree(shapes / "minilm", minilm)
    BertModel(BertConfig.from_pretrained(minilm)).save_pretrained(minilm)
    return verifier, EmbeddingMatcher(model=str(minilm), device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=Path, required=True)
    parser.add_argument("--group", type=int, default=64)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch
    from bench_matchers import step_group, timed

    from psychohistory.datasets import load_dataset
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.matching.pair_tokens import PairTokens
    from psychohistory.plugins import get_reward
    from psychohistory.rewards.base import _parse_cached
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward

    device = "cuda" if torch.cuda.is_available() else "cpu"
    verifier, embedding = random_models(args.shapes, device)
    spent: dict[str, float] = {}
    counts: dict[str, int] = {}
    sync = torch.cuda.synchronize if device == "cuda" else None
    PairTokens.batch = timed(  # type: ignore[method-assign]
        spent, "verifier tokenising", PairTokens.batch, counts=counts,
        count=lambda self, pairs, n: len(pairs), sync=sync)
    model = verifier._loaded[1]
    model.forward = timed(spent, "verifier forward", model.forward, counts=counts, sync=sync)
    embedding.encode = timed(  # type: ignore[method-assign]
        spent, "embedding encode", embedding.encode, counts=counts,
        count=lambda texts: len(texts), sync=sync)
    embedding.score(["warm"], ["up"])
    verifier.probabilities([("warm", "up")])

    def fresh(name: str) -> Any:  # a new cascade: its resolutions are memoised per matcher
        return get_reward(name, **({} if name == "format" else {
            "matcher": CascadeMatcher(verifier=verifier, embedding=embedding)}))

    steps = []
    for k, case in enumerate(load_dataset("historical", split="test")[: args.cases]):
        group = step_group(case, args.group, seed=k)
        row: dict[str, Any] = {"case": case.id}
        shared = CascadeMatcher(verifier=verifier, embedding=embedding)
        composite = CompositeReward(
            [get_reward(n, **({} if n == "format" else {"matcher": shared}))
             for n in DEFAULT_WEIGHTS], list(DEFAULT_WEIGHTS.values()))
        for label, fn in [("composite", composite), *((n, fresh(n)) for n in DEFAULT_WEIGHTS)]:
            _parse_cached.cache_clear()
            verifier._cache.clear()
            embedding.cache = type(embedding.cache)(embedding.cache.max_items)
            spent.clear()
            counts.clear()
            start = time.perf_counter()
            fn(group, case=[case] * len(group))
            row[label] = {"total_s": time.perf_counter() - start, **{
                f"{s} s": v for s, v in spent.items()}, **{f"{s} n": v for s, v in counts.items()}}
        steps.append(row)
        print(json.dumps(row), flush=True)
    keys = sorted({k for r in steps for k in r["composite"]})
    summary = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "group": args.group, "cases": len(steps),
               "composite_median": {k: statistics.median(r["composite"].get(k, 0) for r in steps)
                                    for k in keys},
               "reward_total_s_median": {name: statistics.median(r[name]["total_s"] for r in steps)
                                         for name in DEFAULT_WEIGHTS},
               "steps": steps}
    print(json.dumps({k: v for k, v in summary.items() if k != "steps"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
