"""The sharpness reward: skill over hedging on what happened, with no credit for padding.

Per forecast (scored nodes, and missed outcomes as p = 0):

* an event that happened earns ``0.25 - (1 - p)^2``: positive for a confident right forecast,
  0 for a hedge at 0.5, -0.75 for a miss;
* an event that did not happen costs ``p^2``: nothing for a confident "no", so a tree padded
  with junk at p = 0 gains nothing.

The sum is divided by the number of actual outcomes. Each term is the Brier score plus a
constant that depends only on the outcome, so the rule stays strictly proper: adding it to the
calibration reward with any positive weight keeps the honest report optimal. (A skill score
that also credited confident "no"s would pay for every junk node written at p = 0.)
"""

from __future__ import annotations

from psychohistory.resolution import Resolution
from psychohistory.rewards.tree_reward import TreeReward


class SharpnessReward(TreeReward):
    """Confident-and-right pays; hedging and padding do not.

    >>> from psychohistory.cases import Case, Outcome
    >>> case = Case(id="c", seed="S", outcomes=[Outcome(id="a", event="Prices rise")])
    >>> reward = SharpnessReward(matcher="exact")
    >>> reward(['{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.5}]}',
    ...         '{"seed": "S", "children": [{"event": "Prices rise", "probability": 1.0}]}',
    ...         '{"seed": "S", "children": [{"event": "Prices rise", "probability": 1.0},'
    ...         ' {"event": "Junk", "probability": 0.0}]}'], case=[case] * 3)
    [0.0, 0.25, 0.25]
    """

    name = "sharpness"

    def score(self, resolution: Resolution) -> float:
        y, p, _ = resolution.forecasts()
        if not y.size:
            return 0.0
        skill = float((y * (0.25 - (1 - p) ** 2) - (1 - y) * p**2).sum())
        return round(skill / max(1, resolution.n_outcomes), 12)
