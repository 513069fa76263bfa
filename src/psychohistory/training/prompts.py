"""Every prompt the library sends a forecasting model lives here.

The system message states the task and carries the tree's JSON Schema (compact, so small
models keep it in view); one worked example follows, because SmolLM2-135M writes prose
zero-shot but valid JSON after one example. The example is fictional, so it leaks nothing
about any bundled case.
"""

from __future__ import annotations

import json
from typing import Any

from psychohistory.tree import EventNode, ProbabilityTree

SYSTEM = (
    "You are a careful forecaster. Given a seed event, list the concrete events that may "
    "follow it, each with the probability that it happens given that its parent happened, "
    "nested to at most three levels. Events are short headlines about one event each, "
    "distinct from their siblings. Probabilities are honest: use high values only for "
    "near-certain events. Answer with JSON only, matching this JSON Schema:\n{schema}"
)

EXAMPLE_SEED = "The central bank of Norland raises its policy rate by 75 basis points"
EXAMPLE_CONTEXT = "Inflation in Norland is 9.1%, the highest in 30 years"
EXAMPLE_TREE = ProbabilityTree(seed=EXAMPLE_SEED, children=[
    EventNode(event="The Norland krona strengthens against the euro", probability=0.7),
    EventNode(event="Mortgage rates in Norland rise above 6%", probability=0.8, children=[
        EventNode(event="House prices in Norland fall for three months", probability=0.6)]),
    EventNode(event="Norland's inflation falls below 5% within a year", probability=0.3),
])


def compact_schema() -> str:
    """The tree's JSON Schema without titles and descriptions (fewer prompt tokens)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("title", "description") or not isinstance(v, str)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(ProbabilityTree.json_schema()), separators=(",", ":"))


def user_message(seed: str, context: str = "") -> str:
    text = f"Seed event: {seed}"
    if context:
        text += f"\nContext: {context}"
    return text + "\nWrite the probability tree as JSON."


def build_messages(seed: str, context: str = "", *, example: bool = True) -> list[dict[str, str]]:
    """The chat that asks for one tree.

    >>> [m["role"] for m in build_messages("A", "B")]
    ['system', 'user', 'assistant', 'user']
    """
    messages = [{"role": "system", "content": SYSTEM.format(schema=compact_schema())}]
    if example:
        messages += [
            {"role": "user", "content": user_message(EXAMPLE_SEED, EXAMPLE_CONTEXT)},
            {"role": "assistant", "content": EXAMPLE_TREE.to_json()},
        ]
    messages.append({"role": "user", "content": user_message(seed, context)})
    return messages


def build_prompt(tokenizer: Any, seed: str, context: str = "", *, example: bool = True) -> str:
    """The chat rendered with the model's chat template, ready for generation."""
    return str(tokenizer.apply_chat_template(build_messages(seed, context, example=example),
                                             tokenize=False, add_generation_prompt=True))
