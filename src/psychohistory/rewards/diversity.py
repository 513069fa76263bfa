"""The diversity reward: penalises siblings that state the same event twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from psychohistory.resolution import Resolution
from psychohistory.rewards.tree_reward import TreeReward
from psychohistory.tree import ProbabilityTree


class DiversityReward(TreeReward):
    """``-(duplicate siblings) / (nodes)``: 0 for a tree of distinct events, towards -1 for copies.

    Two siblings are duplicates when the matcher would match them. Probabilities play no
    part, so the reward cannot pull a forecast away from its honest value.

    >>> reward = DiversityReward(matcher="exact")
    >>> reward(['{"seed": "S", "children": [{"event": "A", "probability": 0.5},'
    ...         ' {"event": "a", "probability": 0.5}, {"event": "B", "probability": 0.5}]}'])
    [-0.333333333333]
    """

    name = "diversity"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        _, trees = self.parse_all(completions)
        groups = [self._sibling_groups(t) for t in trees]
        # each tree's texts against themselves alone: judged together, a GRPO group's trees
        # took each other's places among a matcher's candidates (the cascade keeps each text's
        # 3 nearest), so siblings in a group of 64 were hardly ever compared
        texts_of = [tuple(dict.fromkeys(s for group in g for s in group)) for g in groups]
        distinct = list(dict.fromkeys(t for t in texts_of if t))
        score_blocks = getattr(self.matcher, "score_blocks", None) or (
            lambda pairs: [self.matcher.score(p, a) for p, a in pairs])  # a bare score() object
        blocks = score_blocks([(t, t) for t in distinct]) if distinct else []
        scores_of = dict(zip(distinct, blocks, strict=True))
        out: list[float | None] = []
        for tree, tree_groups, texts in zip(trees, groups, texts_of, strict=True):
            if tree is None:
                out.append(self.malformed_penalty)
                continue
            n = len(tree)
            index = {t: i for i, t in enumerate(texts)}
            scores = scores_of.get(texts, np.zeros((0, 0)))
            dupes = sum(_duplicates(g, scores, index, self.matcher.threshold) for g in tree_groups)
            out.append(round(-dupes / n, 12) if n else 0.0)
        return out

    def score(self, resolution: Resolution) -> float:  # pragma: no cover - not resolution-based
        raise NotImplementedError("diversity looks at the tree, not its resolution")

    @staticmethod
    def _sibling_groups(tree: ProbabilityTree | None) -> list[list[str]]:
        if tree is None:
            return []
        groups = [[c.event for c in tree.children]]
        groups += [[c.event for c in v.node.children] for v in tree.iter_nodes() if v.node.children]
        return [g for g in groups if len(g) > 1]


def _duplicates(group: Sequence[str], scores: np.ndarray, index: dict[str, int],
                threshold: float) -> int:
    """Siblings that repeat an earlier sibling of the same group."""
    rows = [index[s] for s in group]
    count = 0
    for k in range(1, len(rows)):
        if any(rows[k] == rows[j] or scores[rows[k], rows[j]] >= threshold for j in range(k)):
            count += 1
    return count
