"""The format reward: 1 when the completion is a valid tree within the limits, else a penalty."""

from __future__ import annotations

from typing import Any

from psychohistory.rewards.base import Reward
from psychohistory.tree import TreeLimits


class FormatReward(Reward):
    """``1.0`` for a parseable tree within ``limits``, ``penalty`` otherwise (reason logged).

    >>> reward = FormatReward(penalty=-0.5)
    >>> reward(['{"seed": "S", "children": [{"event": "E", "probability": 2}]}'])
    [-0.5]
    >>> reward.last_reasons
    ['children[0].probability: 2 is not in [0, 1]']
    """

    name = "format"

    def __init__(self, *, penalty: float = -1.0, limits: TreeLimits | None = None) -> None:
        super().__init__()
        if not -1e6 < float(penalty) < 1.0:
            raise ValueError(f"penalty must be below 1.0 (the reward of a valid tree), got {penalty}")
        self.penalty = float(penalty)
        self.limits = limits

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        _, trees = self.parse_all(completions)
        return [self.penalty if tree is None else 1.0 for tree in trees]
