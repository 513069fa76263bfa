"""Fuzzy matching with rapidfuzz, vectorised over the whole score matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz, process

from psychohistory.matching.base import Matcher, check_threshold
from psychohistory.matching.events import event_aware_scores
from psychohistory.matching.exact import normalize

SCORERS = {
    "ratio": fuzz.ratio,
    "partial_ratio": fuzz.partial_ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "token_ratio": fuzz.token_ratio,
    "WRatio": fuzz.WRatio,
    "QRatio": fuzz.QRatio,
}
# chosen on the development event pairs (event_pairs.jsonl): the best cascade F1/AUC with few
# candidate pairs, so the event checks stay cheap; the embedding stage handles rewording
DEFAULT_SCORER = "token_sort_ratio"
DEFAULT_THRESHOLD = 0.8


class FuzzyMatcher(Matcher):
    """rapidfuzz similarity (0-1) of normalised text, with the event-consistency checks.

    >>> m = FuzzyMatcher()
    >>> round(float(m.score(["Fed raises rates"], ["The Fed raises rates"])[0, 0]), 2) > 0.75
    True
    >>> float(m.score(["Finland joins NATO"], ["Sweden joins NATO"])[0, 0]) < m.threshold
    True
    """

    name = "fuzzy"

    def __init__(
        self,
        *,
        scorer: str = DEFAULT_SCORER,
        threshold: float = DEFAULT_THRESHOLD,
        event_aware: bool = True,
        workers: int = 1,
    ) -> None:
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {sorted(SCORERS)}, got {scorer!r}")
        self.scorer_name = scorer
        self.scorer = SCORERS[scorer]
        self.threshold = check_threshold(threshold)
        self.event_aware = event_aware
        self.workers = int(workers)

    def raw_score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        """Plain rapidfuzz similarity in [0, 1], no event checks."""
        if not predicted or not actual:
            return np.zeros((len(predicted), len(actual)))
        left = [normalize(t) for t in predicted]
        right = [normalize(t) for t in actual]
        matrix = process.cdist(left, right, scorer=self.scorer, dtype=np.float32,
                               workers=self.workers)
        scores = matrix.astype(float)
        scores *= 0.01  # in place: one pass over the matrix, not two
        return scores

    def _pairwise(self, left: list[str], right: list[str]) -> np.ndarray:
        return process.cpdist(left, right, scorer=self.scorer, dtype=np.float32,
                              workers=self.workers).astype(float) / 100.0

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        return self.score_from_raw(self.raw_score(predicted, actual), predicted, actual)

    def score_from_raw(self, raw: np.ndarray, predicted: Sequence[str],
                       actual: Sequence[str]) -> np.ndarray:
        """``score`` given ``raw_score``'s matrix (the cascade computes that once)."""
        if not self.event_aware:
            return raw
        return event_aware_scores(raw, predicted, actual, self._pairwise,
                                  floor=self.threshold * CANDIDATE_SHARE)

    def __repr__(self) -> str:
        return (f"FuzzyMatcher(scorer={self.scorer_name!r}, threshold={self.threshold}, "
                f"event_aware={self.event_aware})")


# pairs scoring under this share of the threshold cannot reach it after the checks
CANDIDATE_SHARE = 0.9
