"""What every reward shares: TRL's call contract, completion text, and the case column."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from psychohistory.cases import Case
from psychohistory.errors import TreeParseError
from psychohistory.tree import ProbabilityTree, TreeLimits, parse_tree

logger = logging.getLogger("psychohistory.rewards")


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a plain string, or a conversation's last message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            content = last.get("content", "")
            if isinstance(content, list):  # multimodal style: [{"type": "text", "text": ...}]
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content)
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


@lru_cache(maxsize=8192)
def _parse_cached(text: str, limits: TreeLimits | None, seed: str) -> ProbabilityTree | TreeParseError:
    try:
        return parse_tree(text, limits=limits, seed=seed)
    except TreeParseError as exc:
        return exc


def parse_completion(text: str, *, limits: TreeLimits | None, seed: str) -> ProbabilityTree:
    """``parse_tree``, memoised: the rewards of one step parse each completion once.

    The returned tree is shared between callers; treat it as read-only.
    """
    result = _parse_cached(text, limits, seed)
    if isinstance(result, TreeParseError):
        raise result
    return result


def as_case(value: Any) -> Case:
    """Accept a ``Case``, or the dict (or JSON string) a ``datasets`` column holds."""
    if isinstance(value, Case):
        return value
    if isinstance(value, str):
        return Case.model_validate_json(value)
    if isinstance(value, dict):
        return Case.model_validate(value)
    raise TypeError(f"the case column holds {type(value).__name__}, expected a Case or a dict")


class Reward:
    """Base of the built-in rewards: small, picklable callables with a stable ``__name__``.

    ``last_reasons`` keeps, per completion of the latest call, why it was penalised
    (``None`` when it was not), so malformed output is logged, never raised.
    """

    name = "reward"
    limits: TreeLimits | None = None

    def __init__(self) -> None:
        self.__name__ = self.name
        self.last_reasons: list[str | None] = []

    def parse_all(self, completions: list[Any], seeds: list[str] | None = None
                  ) -> tuple[list[str], list[ProbabilityTree | None]]:
        """Texts and trees (``None`` where unparsable, the reason in ``last_reasons``)."""
        texts = [completion_text(c) for c in completions]
        seeds = seeds or ["(seed)"] * len(texts)  # a placeholder where the seed plays no part
        trees: list[ProbabilityTree | None] = []
        self.last_reasons = []
        for text, seed in zip(texts, seeds, strict=True):
            try:
                trees.append(parse_completion(text, limits=self.limits, seed=seed))
                self.last_reasons.append(None)
            except TreeParseError as exc:
                logger.info("%s: malformed completion: %s", self.name, exc)
                trees.append(None)
                self.last_reasons.append(str(exc))
        return texts, trees

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        raise NotImplementedError

    def _cases(self, kwargs: dict[str, Any], n: int) -> list[Case]:
        if "case" not in kwargs:
            raise KeyError(
                f"reward {self.__name__!r} needs a 'case' column; build the dataset with "
                "psychohistory.to_grpo_dataset(cases)"
            )
        column = kwargs["case"]
        if len(column) != n:
            raise ValueError(f"'case' column has {len(column)} rows for {n} completions")
        return [as_case(value) for value in column]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
