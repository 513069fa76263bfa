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


def run_reward_benchmark(*, group: int = 64, repeats: int = 5) -> dict[str, Any]:
    """Median milliseconds per group for each default reward and the weighted composition.

    Each repeat uses fresh rewards (cold caches) on a new group: the honest per-step cost.
    """
    from psychohistory.plugins import get_matcher, get_reward
    from psychohistory.rewards.composite import DEFAULT_WEIGHTS, CompositeReward

    cases = sorted(load_dataset("historical"), key=lambda c: -len(c.outcomes))
    timings: dict[str, list[float]] = {}
    for r in range(repeats):
        case = cases[r % len(cases)]
        completions = synthetic_group(case, group, seed=r)
        matcher = get_matcher("cascade", embedding=False)
        rewards = {name: get_reward(name, **({} if name == "format" else {"matcher": matcher}))
                   for name in DEFAULT_WEIGHTS}
        composite = CompositeReward(list(rewards.values()), list(DEFAULT_WEIGHTS.values()))
        start = time.perf_counter()
        composite(completions, case=[case] * group)
        timings.setdefault("composite (all four)", []).append(time.perf_counter() - start)
        for name in rewards:
            fresh = get_reward(name, **({} if name == "format" else {
                "matcher": get_matcher("cascade", embedding=False)}))
            start = time.perf_counter()
            fresh(completions, case=[case] * group)
            timings.setdefault(name, []).append(time.perf_counter() - start)
    return {
        "group": group, "nodes_per_completion": 15, "repeats": repeats,
        "matcher": "cascade (exact + fuzzy)",
        "median_ms": {k: round(statistics.median(v) * 1000, 2) for k, v in timings.items()},
    }
