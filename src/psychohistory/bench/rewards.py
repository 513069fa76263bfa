"""Reward latency: the default rewards on a GRPO-sized group of completions."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from psychohistory.datasets import load_dataset
from psychohistory.tree import EventNode, ProbabilityTree


def synthetic_group(case: Any, n: int, *, nodes: int = 15, seed: int = 0) -> list[str]:
    """``n`` distinct completions of about ``nodes`` nodes, mixing true and invented events."""
    rng = random.Random(seed)
    outcomes = [o.event for o in case.outcomes]
    pool = outcomes + [f"{case.seed.split()[0]} announces measure number {k}" for k in range(40)]
    completions = []
    for _ in range(n):
        events = rng.sample(pool, k=min(nodes, len(pool)))
        top = [EventNode(event=e, probability=round(rng.random(), 2)) for e in events[: nodes // 3]]
        for k, e in enumerate(events[nodes // 3:]):
            top[k % len(top)].children.append(EventNode(event=e, probability=round(rng.random(), 2)))
        completions.append(ProbabilityTree(seed=case.seed, children=top).to_json())
    return completions


def naive_calibration(completions: list[str], case: Any, matcher: Any) -> list[float]:
    """The baseline: each completion parsed and resolved alone, the verifier's cache
    emptied before each (no pair is shared between completions)."""
    from psychohistory.errors import TreeParseError
    from psychohistory.resolution import resolve
    from psychohistory.tree import parse_tree

    out = []
    for completion in completions:
        try:
            tree = parse_tree(completion, seed=case.seed)
        except TreeParseError:
            out.append(-1.0)
            continue
        matcher.verifier._cache.clear()
        y, p, _ = resolve(tree, case, matcher).forecasts()
        out.append(-float(((p - y) ** 2).sum()) / max(1, len(case.outcomes)))
    return out


def run_reward_benchmark(*, group: int = 64, repeats: int = 5) -> dict[str, Any]:
    """Median milliseconds per group for each default reward, the weighted composition, and
    a naive per-completion calibration reward (the baseline), all with cold caches. The
    matcher is the default cascade (its models load once, before the clock).
    """
    from psychohistory.matching.cascade import CascadeMatcher
    from psychohistory.matching.verifier import VerifierMatcher
    from psychohistory.plugins import get_reward
    from psychohistory.rewards.base import _parse_cached
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward

    cases = sorted(load_dataset("historical"), key=lambda c: -len(c.outcomes))
    verifier = VerifierMatcher()
    shared = CascadeMatcher(verifier=verifier)
    shared.score(["warm up"], ["the models"])
    timings: dict[str, list[float]] = {}
    for r in range(repeats):
        case = cases[r % len(cases)]
        completions = synthetic_group(case, group, seed=r)
        matcher = CascadeMatcher(verifier=shared.verifier, embedding=shared.embedding)
        verifier._cache.clear()
        rewards = {name: get_reward(name, **({} if name == "format" else {"matcher": matcher}))
                   for name in DEFAULT_WEIGHTS}
        composite = CompositeReward(list(rewards.values()), list(DEFAULT_WEIGHTS.values()))
        _parse_cached.cache_clear()
        start = time.perf_counter()
        composite(completions, case=[case] * group)
        timings.setdefault("composite (all four)", []).append(time.perf_counter() - start)
        start = time.perf_counter()
        naive_calibration(completions, case, matcher)
        timings.setdefault("baseline: naive calibration", []).append(time.perf_counter() - start)
        for name in rewards:
            fresh = get_reward(name, **({} if name == "format" else {
                "matcher": CascadeMatcher(verifier=shared.verifier,
                                          embedding=shared.embedding)}))
            verifier._cache.clear()
            _parse_cached.cache_clear()
            start = time.perf_counter()
            fresh(completions, case=[case] * group)
            timings.setdefault(name, []).append(time.perf_counter() - start)
    median = {k: round(statistics.median(v) * 1000, 2) for k, v in timings.items()}
    return {
        "group": group, "nodes_per_completion": 15, "repeats": repeats,
        "matcher": f"cascade (exact, candidates, verifier on {verifier.device})",
        "median_ms": median,
        "calibration_speedup_vs_naive": round(
            median["baseline: naive calibration"] / median["calibration"], 2),
        "target": "composite of all four <= 100 ms for 64 completions on one H200",
        "target_met": median["composite (all four)"] <= 100,
    }
