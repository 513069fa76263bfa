"""Labelled event pairs drawn from the outcome bank (the ``historical`` cases).

Each bundled outcome carries paraphrases (the same event, as a forecaster would write it) and
near-misses (look-alike texts that are other events). From them, per split of cases:

- positives: ``paraphrase`` (a paraphrase against its outcome) and ``paraphrase_pair`` (two
  paraphrases of one outcome);
- hard negatives: each near-miss against its outcome (kind: the near-miss's own kind), every
  pair of two different outcomes of one case and their paraphrases (``within_case``), and the
  seed or context against each outcome (``seed_restatement``);
- easy negatives: a paraphrase against an outcome of another case (``other_case``).

Pairs never cross splits, because splits are by case.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from psychohistory.cases import Case

__all__ = ["Pair", "bank_pairs", "count_kinds"]


@dataclass(frozen=True)
class Pair:
    """Two texts, whether they are the same event (``label``), and how they were made."""

    left: str
    right: str
    label: int
    kind: str = ""
    topic: str = ""


def bank_pairs(cases: Sequence[Case], *, other_case_per_outcome: int = 2,
               seed: int = 0) -> list[Pair]:
    """Every labelled pair the cases' paraphrases and near-misses give (see the module doc).

    ``other_case_per_outcome`` easy negatives are drawn per outcome, reproducibly from ``seed``.

    >>> from psychohistory.cases import Outcome, NearMiss
    >>> case = Case(id="c", seed="Fed meets", outcomes=[
    ...     Outcome(id="a", event="Fed cuts rates", paraphrases=["The Fed will ease"],
    ...             near_misses=[NearMiss(event="Fed raises rates", kind="reversal")]),
    ...     Outcome(id="b", event="Stocks rally")])
    >>> sorted(count_kinds(bank_pairs([case], other_case_per_outcome=0)).items())
    [('paraphrase', 1), ('reversal', 1), ('seed_restatement', 2), ('within_case', 2)]
    """
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for case in cases:
        for outcome in case.outcomes:
            texts = outcome.paraphrases
            pairs += [Pair(p, outcome.event, 1, "paraphrase", case.id) for p in texts]
            pairs += [Pair(a, b, 1, "paraphrase_pair", case.id)
                      for k, a in enumerate(texts) for b in texts[k + 1:]]
            pairs += [Pair(m.event, outcome.event, 0, m.kind, case.id)
                      for m in outcome.near_misses]
            pairs += [Pair(text, outcome.event, 0, "seed_restatement", case.id)
                      for text in (case.seed, case.context) if text.strip()]
        for k, a in enumerate(case.outcomes):
            for b in case.outcomes[k + 1:]:
                pairs.append(Pair(a.event, b.event, 0, "within_case", case.id))
                pairs += [Pair(p, b.event, 0, "within_case", case.id) for p in a.paraphrases]
                pairs += [Pair(p, a.event, 0, "within_case", case.id) for p in b.paraphrases]
    if other_case_per_outcome and len(cases) > 1:
        for k, case in enumerate(cases):
            for outcome in case.outcomes:
                texts = outcome.paraphrases or [outcome.event]
                for _ in range(other_case_per_outcome):
                    other = cases[(k + rng.randrange(1, len(cases))) % len(cases)]
                    if other.outcomes:
                        pairs.append(Pair(rng.choice(texts), rng.choice(other.outcomes).event, 0,
                                          "other_case", case.id))
    return pairs


def count_kinds(pairs: Sequence[Pair]) -> Counter[str]:
    """How many pairs of each kind."""
    return Counter(p.kind for p in pairs)
