"""The calibration reward: a strictly proper scoring rule summed over resolved forecasts.

reward = -(sum of per-forecast losses) / (number of actual outcomes)

Forecasts are the scored nodes (y = 1 if matched) and the missed outcomes (p = 0, y = 1).
The sum, not the mean over nodes, is what makes padding useless: a junk node at p = 0 adds
nothing and one at p > 0 only costs. Dividing by the number of actual outcomes (fixed by the
case, whatever the model writes) keeps rewards comparable across cases and keeps the rule
proper: each node's expected loss is minimised by reporting its true probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from psychohistory.resolution import Resolution
from psychohistory.rewards.tree_reward import TreeReward

RULES = ("brier", "log")


def node_losses(y: np.ndarray, p: np.ndarray, rule: str, eps: float = 1e-3) -> np.ndarray:
    """Per-forecast loss under ``rule``; the log rule is clipped to ``[eps, 1 - eps]``."""
    if rule == "brier":
        return (p - y) ** 2
    q = np.clip(p, eps, 1 - eps)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


class CalibrationReward(TreeReward):
    """Negative Brier (or log) loss over resolved nodes and missed outcomes, per outcome.

    >>> from psychohistory.cases import Case, Outcome
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="Prices rise")])
    >>> reward = CalibrationReward(matcher="exact")
    >>> reward(['{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.8}]}',
    ...         '{"seed": "S", "children": []}', 'not a tree'], case=[case] * 3)
    [-0.04, -1.0, -1.0]
    """

    name = "calibration"

    def __init__(self, *, rule: str = "brier", **options: Any) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        super().__init__(**options)
        self.rule = rule

    def score(self, resolution: Resolution) -> float:
        y, p, _ = resolution.forecasts()
        if not y.size:
            return 0.0
        total = float(node_losses(y, p, self.rule).sum())
        return round(-total / max(1, resolution.n_outcomes), 12)
