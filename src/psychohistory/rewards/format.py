"""The format reward: 1 for a valid tree within the limits, a penalty otherwise.

Output cut off by the token limit, whose complete part is a valid tree, earns ``truncated``
(between the two): GRPO then sees "too long" as better than "not a tree at all", which gives
a small model a gradient towards the format even when no completion of a group is valid yet.
"""

from __future__ import annotations

from typing import Any

from psychohistory.rewards.base import Reward
from psychohistory.tree import TreeLimits, repair_truncated


class FormatReward(Reward):
    """``1.0`` for a parseable tree, ``truncated`` for a cut-off one, ``penalty`` otherwise.

    >>> reward = FormatReward(penalty=-0.5)
    >>> reward(['{"seed": "S", "children": [{"event": "E", "probability": 2}]}',
    ...         '{"seed": "S", "children": [{"event": "E", "probability": 0.2}, {"event": "F", "pro'])
    [-0.5, 0.0]
    >>> reward.last_reasons[0]
    'children[0].probability: 2 is not in [0, 1]'
    """

    name = "format"

    def __init__(self, *, penalty: float = -1.0, truncated: float = 0.0,
                 limits: TreeLimits | None = None) -> None:
        super().__init__()
        if not -1e6 < float(penalty) < 1.0:
            raise ValueError(f"penalty must be below 1.0 (the reward of a valid tree), got {penalty}")
        if not float(penalty) <= float(truncated) < 1.0:
            raise ValueError(f"truncated must be in [penalty, 1.0), got {truncated}")
        self.penalty = float(penalty)
        self.truncated = float(truncated)
        self.limits = limits

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        texts, trees = self.parse_all(completions)
        return [1.0 if tree is not None else
                self.truncated if repair_truncated(text, limits=self.limits, seed="(seed)")
                else self.penalty
                for text, tree in zip(texts, trees, strict=True)]
