"""The matcher interface and the one-to-one assignment every matcher shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    """Predicted event ``predicted`` was matched to actual event ``actual`` by ``method``."""

    predicted: int
    actual: int
    score: float
    method: str


def assign(scores: np.ndarray, threshold: float, *, method: str) -> list[Match]:
    """One-to-one assignment maximising the total score of pairs at or above ``threshold``.

    Pairs under the threshold are zeroed before the Hungarian solve, so a weak pair can never
    displace a strong one.

    >>> import numpy as np
    >>> [(m.predicted, m.actual) for m in assign(np.array([[0.9, 0.8], [0.85, 0.1]]), 0.5, method="x")]
    [(0, 1), (1, 0)]
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D array, got shape {scores.shape}")
    if scores.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    allowed = np.where(scores >= threshold, scores, 0.0)
    if not allowed.any():
        return []
    rows, cols = linear_sum_assignment(allowed, maximize=True)
    return [
        Match(int(r), int(c), float(scores[r, c]), method)
        for r, c in zip(rows, cols, strict=True)
        if scores[r, c] >= threshold and allowed[r, c] > 0
    ]


@dataclass(frozen=True)
class Stage:
    """One matching method's scores over (distinct predicted texts x outcomes)."""

    method: str
    scores: np.ndarray
    threshold: float


def stage_matches(stages: Sequence[Stage], rows: Sequence[int], cols: Sequence[int]) -> list[Match]:
    """One-to-one matches of ``rows`` to ``cols``, stage by stage, on precomputed scores.

    Rows may repeat (a tree can state one event twice); each repeat is its own candidate.
    Returned indices are positions in ``rows`` and values of ``cols``.
    """
    left = list(range(len(rows)))
    right = list(cols)
    matches: list[Match] = []
    for stage in stages:
        if not left or not right:
            break
        sub = stage.scores[np.ix_([rows[i] for i in left], right)]
        found = assign(sub, stage.threshold, method=stage.method)
        for m in found:
            matches.append(Match(left[m.predicted], right[m.actual], m.score, m.method))
        taken_left = {left[m.predicted] for m in found}
        taken_right = {right[m.actual] for m in found}
        left = [i for i in left if i not in taken_left]
        right = [j for j in right if j not in taken_right]
    return matches


class Matcher:
    """Scores how likely each predicted event is the same real-world event as each actual one.

    Subclasses implement :meth:`score`; :meth:`match` is the one-to-one assignment above
    ``threshold``. Scores lie in [0, 1]; the threshold is where "same event" begins.
    """

    name = "matcher"
    threshold = 0.5

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def score_pairs(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Scores of aligned pairs ``(left[i], right[i])`` (benchmarks use this)."""
        if len(left) != len(right):
            raise ValueError(f"left has {len(left)} strings, right has {len(right)}")
        if not left:
            return np.zeros(0)
        # distinct strings once each, then read the diagonal of the small matrix
        lu, li = np.unique(np.asarray(left, dtype=object), return_inverse=True)
        ru, ri = np.unique(np.asarray(right, dtype=object), return_inverse=True)
        matrix = self.score(list(lu), list(ru))
        return matrix[li, ri]

    def score_blocks(self, blocks: Sequence[tuple[Sequence[str], Sequence[str]]]
                     ) -> list[np.ndarray]:
        """``score`` of each ``(predicted, actual)`` block, each judged on its own (a tree's
        texts against themselves, for the diversity reward); matchers may batch the work."""
        return [self.score(predicted, actual) for predicted, actual in blocks]

    def match(
        self, predicted: Sequence[str], actual: Sequence[str], *, threshold: float | None = None
    ) -> list[Match]:
        """One-to-one matches scoring at least ``threshold`` (default: the matcher's own)."""
        limit = self.threshold if threshold is None else threshold
        return assign(self.score(predicted, actual), limit, method=self.name)

    def stage_scores(self, predicted: Sequence[str], actual: Sequence[str]) -> list[Stage]:
        """Scores per matching method; a plain matcher has one stage, a cascade several."""
        return [Stage(self.name, self.score(predicted, actual), self.threshold)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"


def check_threshold(value: float) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {value}")
    return value
