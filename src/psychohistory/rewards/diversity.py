"""The diversity reward: penalises siblings that state the same event twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from psychohistory.matching.base import Matcher
from psychohistory.rewards.base import Reward, completion_text, logger, parse_completion
from psychohistory.rewards.tree_reward import DEFAULT_MALFORMED_PENALTY, _build_matcher
from psychohistory.tree import ProbabilityTree, TreeLimits, TreeParseError


class DiversityReward(Reward):
    """``-(duplicate siblings) / (nodes)``: 0 for a tree of distinct events, towards -1 for copies.

    Two siblings are duplicates when the matcher would match them. Probabilities play no
    part, so the reward cannot pull a forecast away from its honest value.

    >>> reward = DiversityReward(matcher="exact")
    >>> reward(['{"seed": "S", "children": [{"event": "A", "probability": 0.5},'
    ...         ' {"event": "a", "probability": 0.5}, {"event": "B", "probability": 0.5}]}'])
    [-0.333333333333]
    """

    name = "diversity"

    def __init__(self, *, matcher: Matcher | str | None = None,
                 malformed_penalty: float = DEFAULT_MALFORMED_PENALTY,
                 limits: TreeLimits | None = None) -> None:
        super().__init__()
        self.matcher = _build_matcher(matcher)
        self.malformed_penalty = float(malformed_penalty)
        self.limits = limits

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        trees: list[ProbabilityTree | None] = []
        self.last_reasons = []
        for completion in completions:
            try:
                # the seed plays no part here, so a placeholder fills a missing one
                trees.append(parse_completion(completion_text(completion), limits=self.limits,
                                              seed="(seed)"))
                self.last_reasons.append(None)
            except TreeParseError as exc:
                logger.info("diversity: malformed completion: %s", exc)
                trees.append(None)
                self.last_reasons.append(str(exc))
        groups = [self._sibling_groups(t) for t in trees]
        texts = list(dict.fromkeys(s for g in groups for group in g for s in group))
        scores = self.matcher.score(texts, texts) if texts else np.zeros((0, 0))
        index = {t: i for i, t in enumerate(texts)}
        out: list[float | None] = []
        for tree, tree_groups in zip(trees, groups, strict=True):
            if tree is None:
                out.append(self.malformed_penalty)
                continue
            n = sum(len(g) for g in tree_groups)
            dupes = sum(_duplicates(g, scores, index, self.matcher.threshold) for g in tree_groups)
            out.append(round(-dupes / n, 12) if n else 0.0)
        return out

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
