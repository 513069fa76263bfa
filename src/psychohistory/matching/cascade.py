"""The cascade: exact, then fuzzy, then embedding, then (if configured) an LLM judge.

Each stage matches one-to-one among what earlier stages left, so every match records the
cheapest method that found it. The LLM judge, when given, sees only the pairs the cheaper
stages left undecided: similar enough to be plausible, yet under a threshold or vetoed by an
event-consistency check.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from psychohistory.errors import ConfigError
from psychohistory.matching.base import Match, Matcher, Stage, stage_matches
from psychohistory.matching.exact import ExactMatcher
from psychohistory.matching.fuzzy import FuzzyMatcher

logger = logging.getLogger("psychohistory.matching.cascade")


def calibrate(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Map a stage's scores so its own threshold lands on 0.5 (order is kept).

    >>> calibrate(np.array([0.0, 0.35, 0.7, 1.0]), 0.7).tolist()
    [0.0, 0.25, 0.5, 1.0]
    """
    scores = np.asarray(scores, dtype=float)
    if threshold >= 1.0:
        return np.where(scores >= 1.0, 1.0, 0.5 * scores)
    low = 0.5 * scores / threshold
    high = 0.5 + 0.5 * (scores - threshold) / (1.0 - threshold)
    return np.where(scores >= threshold, high, low)


class CascadeMatcher(Matcher):
    """Exact, fuzzy and embedding matching in turn, then an optional LLM judge.

    ``score`` is the best calibrated stage score (each stage's threshold maps to 0.5), so
    ``threshold`` 0.5 agrees with ``match``. ``embedding=False`` leaves the embedding stage
    out; without sentence-transformers installed it is left out with a warning.

    >>> m = CascadeMatcher(embedding=False)
    >>> [(x.predicted, x.actual, x.method) for x in m.match(
    ...     ["Sweden joins NATO", "Finland joins NATO", "Lehman Brothers files for bankruptcy"],
    ...     ["Lehman Brothers Holdings files for Chapter 11 bankruptcy", "Finland joins NATO"])]
    [(1, 1, 'exact')]
    """

    name = "cascade"
    threshold = 0.5

    def __init__(
        self,
        *,
        fuzzy: dict[str, Any] | None = None,
        embedding: bool | dict[str, Any] | Matcher = True,
        llm: dict[str, Any] | Matcher | None = None,
        undecided_floor: float = 0.35,
    ) -> None:
        self.stages: list[Matcher] = [ExactMatcher(), FuzzyMatcher(**(fuzzy or {}))]
        if isinstance(embedding, Matcher):
            self.stages.append(embedding)
        elif embedding:
            stage = _embedding_stage(embedding if isinstance(embedding, dict) else {})
            if stage is not None:
                self.stages.append(stage)
        if isinstance(llm, dict):
            from psychohistory.matching.llm import LLMMatcher

            llm = LLMMatcher(**llm)
        self.llm = llm
        if not 0.0 <= undecided_floor < 0.5:
            raise ValueError(f"undecided_floor must be in [0, 0.5), got {undecided_floor}")
        self.undecided_floor = undecided_floor

    @property
    def methods(self) -> list[str]:
        return [stage.name for stage in self.stages] + (["llm"] if self.llm else [])

    def stage_scores(self, predicted: Sequence[str], actual: Sequence[str]) -> list[Stage]:
        """Each method's scores; the LLM's only on the pairs the cheap stages left undecided."""
        stages: list[Stage] = []
        plausible = np.zeros((len(predicted), len(actual)))  # best raw similarity, no checks
        for stage in self.stages:
            raw_score = getattr(stage, "raw_score", None)
            if raw_score is None:
                raw = scores = stage.score(predicted, actual)
            else:
                raw = raw_score(predicted, actual)
                scores = stage.score_from_raw(raw, predicted, actual)  # type: ignore[attr-defined]
            if stage is not self.stages[0]:
                plausible = np.maximum(plausible, calibrate(raw, stage.threshold))
            stages.append(Stage(stage.name, scores, stage.threshold))
        if self.llm is not None:
            verdicts = np.zeros((len(predicted), len(actual)))
            if verdicts.size:
                undecided = self._undecided(plausible, _best(stages))
                answers = self.llm.judge_pairs(  # type: ignore[attr-defined]
                    [(predicted[i], actual[j]) for i, j in undecided])
                for (i, j), verdict in zip(undecided, answers, strict=True):
                    verdicts[i, j] = verdict
            stages.append(Stage("llm", verdicts, self.llm.threshold))
        return stages

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        return _best(self.stage_scores(predicted, actual), (len(predicted), len(actual)))

    def _undecided(self, plausible: np.ndarray, decided: np.ndarray) -> list[tuple[int, int]]:
        # plausible on raw similarity, yet not matched once the event checks ran
        mask = (plausible >= self.undecided_floor) & (decided < 0.5)
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(mask), strict=True)]

    def match(
        self, predicted: Sequence[str], actual: Sequence[str], *, threshold: float | None = None
    ) -> list[Match]:
        """Stage by stage: each match records the cheapest method that found it."""
        stages = self.stage_scores(predicted, actual)
        found = stage_matches(stages, list(range(len(predicted))), list(range(len(actual))))
        return sorted(found, key=lambda m: m.predicted)

    @staticmethod
    def coverage(matches: Sequence[Match]) -> dict[str, int]:
        """How many matches each method made."""
        return dict(Counter(m.method for m in matches))

    def __repr__(self) -> str:
        return f"CascadeMatcher(methods={self.methods})"


def _best(stages: Sequence[Stage], shape: tuple[int, int] | None = None) -> np.ndarray:
    """The highest calibrated score over stages (each stage's threshold maps to 0.5)."""
    best = np.zeros(shape if shape is not None else stages[0].scores.shape)
    for stage in stages:
        if stage.scores.size:
            best = np.maximum(best, calibrate(stage.scores, stage.threshold))
    return best


def _embedding_stage(options: dict[str, Any]) -> Matcher | None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        warnings.warn("sentence-transformers is not installed, so the cascade runs without its "
                      "embedding stage: pip install 'psychohistory[embed]'", stacklevel=3)
        return None
    from psychohistory.matching.embedding import EmbeddingMatcher

    try:
        return EmbeddingMatcher(**options)
    except TypeError as exc:
        raise ConfigError(f"cascade embedding options: {exc}") from exc
