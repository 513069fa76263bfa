"""psychohistory-brevity: reward short, headline-like event text.

Long event descriptions are hard to match and usually pack several events into one node.
This reward is 1.0 when every event has at most ``max_words`` words and falls linearly to 0
as the average overflow grows; unparsable completions get 0 (the ``format`` reward already
penalises them).
"""

from __future__ import annotations

from typing import Any

import psychohistory as ph


class BrevityReward:
    """Share of brevity: 1.0 when all events are at most ``max_words`` words long."""

    def __init__(self, *, max_words: int = 12) -> None:
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        self.max_words = max_words
        self.__name__ = "brevity"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        from psychohistory.rewards import completion_text

        rewards: list[float | None] = []
        for completion in completions:
            try:
                tree = ph.parse_tree(completion_text(completion), seed="(seed)")
            except ph.TreeParseError:
                rewards.append(0.0)
                continue
            lengths = [len(view.node.event.split()) for view in tree.iter_nodes()]
            if not lengths:
                rewards.append(0.0)
                continue
            overflow = sum(max(0, n - self.max_words) for n in lengths) / len(lengths)
            rewards.append(max(0.0, 1.0 - overflow / self.max_words))
        return rewards


@ph.hookimpl
def register_rewards(register: Any) -> None:
    register("brevity", BrevityReward)
