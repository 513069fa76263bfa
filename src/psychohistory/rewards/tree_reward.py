"""Shared machinery of the rewards that score trees against cases."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

from psychohistory.cases import Case
from psychohistory.matching.base import Matcher
from psychohistory.resolution import Resolution, resolve_many
from psychohistory.rewards.base import Reward
from psychohistory.tree import ProbabilityTree, TreeLimits

DEFAULT_MALFORMED_PENALTY = -1.0

# resolutions memoised per matcher, so calibration and sharpness resolve each completion once
_MEMO: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, str], Resolution]] = (
    weakref.WeakKeyDictionary())
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 4096


def resolve_group(texts: list[str], cases: list[Case], trees: list[ProbabilityTree | None],
                  matcher: Matcher) -> list[Resolution | None]:
    """Resolutions of parsed completions, grouped by case so each group matches once."""
    with _MEMO_LOCK:
        memo = _MEMO.setdefault(matcher, OrderedDict())
    out: list[Resolution | None] = [None] * len(texts)
    todo: dict[str, list[int]] = {}
    for i, (text, case, tree) in enumerate(zip(texts, cases, trees, strict=True)):
        if tree is None:
            continue
        hit = memo.get((case.id, text))
        if hit is not None:
            out[i] = hit
        else:
            todo.setdefault(case.id, []).append(i)
    for indices in todo.values():
        case = cases[indices[0]]
        for i, res in zip(indices, resolve_many([trees[i] for i in indices], case, matcher),
                          strict=True):
            out[i] = res
            with _MEMO_LOCK:
                memo[(case.id, texts[i])] = res  # type: ignore[assignment]
                while len(memo) > _MEMO_SIZE:
                    memo.popitem(last=False)
    return out


class TreeReward(Reward):
    """A reward computed from each completion's resolution against its case.

    Subclasses implement :meth:`score`. Unparsable completions get ``malformed_penalty``
    and their reason in ``last_reasons``; they never raise.
    """

    def __init__(self, *, matcher: Matcher | str | None = None,
                 malformed_penalty: float = DEFAULT_MALFORMED_PENALTY,
                 limits: TreeLimits | None = None) -> None:
        super().__init__()
        self.matcher = _build_matcher(matcher)
        self.malformed_penalty = float(malformed_penalty)
        self.limits = limits

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        cases = self._cases(kwargs, len(completions))
        texts, trees = self.parse_all(completions, [case.seed for case in cases])
        resolutions = resolve_group(texts, cases, trees, self.matcher)
        return [self.malformed_penalty if r is None else self.score(r) for r in resolutions]

    def score(self, resolution: Resolution) -> float:
        raise NotImplementedError


def _build_matcher(matcher: Matcher | str | None) -> Matcher:
    if matcher is None or isinstance(matcher, str):
        from psychohistory.plugins import get_matcher

        return get_matcher(matcher or "cascade")
    return matcher
