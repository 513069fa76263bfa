"""Weighted composition of rewards, with each part's values kept for logging."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

# The default mix: calibration drives the forecast; sharpness (proper, so properness holds at
# any weight) rewards confident-and-right; diversity and format shape the tree, not its numbers.
DEFAULT_WEIGHTS = {"calibration": 1.0, "sharpness": 0.5, "diversity": 0.25, "format": 0.25}


def reward_name(reward: Callable[..., Any]) -> str:
    return str(getattr(reward, "__name__", type(reward).__name__))


class CompositeReward:
    """``sum(w_i * reward_i)``; ``last_values`` holds each part's latest values by name.

    A part's ``None`` ("not applicable", TRL's convention) is left out of the sum; where every
    part is ``None`` the total is ``None`` too. Each part is checked like
    :class:`~psychohistory.plugins.CheckedReward` (plain callables as well), so a part that
    raises or returns a bad value fails with a ``RewardError`` naming it.

    In a plain ``trl.GRPOTrainer`` pass the parts as ``reward_funcs`` and the weights as
    ``GRPOConfig(reward_weights=...)`` instead: TRL then logs each part itself.

    >>> from psychohistory.rewards.format import FormatReward
    >>> both = CompositeReward([FormatReward(), FormatReward(penalty=-3)], weights=[1.0, 0.5])
    >>> both(["not a tree"]), both.last_values
    ([-2.5], {'format': [-1.0], 'format_2': [-3.0]})
    """

    def __init__(self, rewards: Sequence[Callable[..., Any]],
                 weights: Sequence[float] | None = None) -> None:
        if not rewards:
            raise ValueError("CompositeReward needs at least one reward")
        weights = [1.0] * len(rewards) if weights is None else [float(w) for w in weights]
        if len(weights) != len(rewards):
            raise ValueError(f"{len(weights)} weights for {len(rewards)} rewards")
        if not all(math.isfinite(w) for w in weights):
            raise ValueError(f"weights must be finite, got {weights}")
        self.rewards = list(rewards)
        self.weights = weights
        self.names = _unique_names([reward_name(r) for r in rewards])
        self.__name__ = "composite"
        self.last_values: dict[str, list[float | None]] = {}

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        totals: list[float | None] = [None] * len(completions)
        self.last_values = {}
        for name, reward, weight in zip(self.names, self.rewards, self.weights, strict=True):
            values = _checked(reward, name)(completions, **kwargs)
            self.last_values[name] = values
            for i, value in enumerate(values):
                # None means "not applicable" (TRL's convention): it leaves the others' sum
                if value is not None:
                    totals[i] = (totals[i] or 0.0) + weight * value
        return [None if t is None else round(t, 12) for t in totals]


def _checked(reward: Callable[..., Any], name: str) -> Callable[..., list[float | None]]:
    from psychohistory.plugins import CheckedReward

    if isinstance(reward, CheckedReward):
        return reward
    return CheckedReward(reward, name=name, plugin=None)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out
