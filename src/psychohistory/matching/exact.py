"""Exact matching on normalised text: NFKC, casefold, punctuation and whitespace folded."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from psychohistory.matching.base import Matcher

_PUNCT = re.compile(r"[^\w\s%$€£.]|(?<!\d)\.|\.(?!\d)")  # keep decimal points and units
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Text folded for comparison.

    >>> normalize("  The Fed  CUTS rates—by 0.25%! ")
    'the fed cuts rates by 0.25%'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _PUNCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


class ExactMatcher(Matcher):
    """1.0 where the normalised texts are equal, else 0.0.

    >>> ExactMatcher().score(["Lehman files."], ["lehman  FILES", "Bear Stearns"]).tolist()
    [[1.0, 0.0]]
    """

    name = "exact"
    threshold = 1.0

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        left = [normalize(t) for t in predicted]
        right = [normalize(t) for t in actual]
        index: dict[str, list[int]] = {}
        for j, text in enumerate(right):
            index.setdefault(text, []).append(j)
        out = np.zeros((len(left), len(right)))
        for i, text in enumerate(left):
            for j in index.get(text, ()):
                out[i, j] = 1.0
        return out
