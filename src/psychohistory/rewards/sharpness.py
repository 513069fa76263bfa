"""The sharpness reward: skill over a forecaster that says 0.5 to everything.

reward = sum over forecasts of [(0.5 - y)^2 - (p - y)^2] / (number of actual outcomes)

It pays for resolution (confident forecasts that come true, confident "no" that stay false)
and charges for confident mistakes, so it never rewards extremeness alone. Being an affine
transform of the Brier sum, it is itself proper: adding it to the calibration reward with
any positive weight keeps the honest report optimal.
"""

from __future__ import annotations

from psychohistory.resolution import Resolution
from psychohistory.rewards.tree_reward import TreeReward


class SharpnessReward(TreeReward):
    """Brier skill against the all-0.5 forecaster, per actual outcome.

    >>> from psychohistory.cases import Case, Outcome
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="Prices rise")])
    >>> reward = SharpnessReward(matcher="exact")
    >>> reward(['{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.5}]}',
    ...         '{"seed": "S", "children": [{"event": "Prices rise", "probability": 1.0}]}'],
    ...        case=[case] * 2)
    [0.0, 0.25]
    """

    name = "sharpness"

    def score(self, resolution: Resolution) -> float:
        y, p, _ = resolution.forecasts()
        if not y.size:
            return 0.0
        skill = float((((0.5 - y) ** 2) - ((p - y) ** 2)).sum())
        return round(skill / max(1, resolution.n_outcomes), 12)
