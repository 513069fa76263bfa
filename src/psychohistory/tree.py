"""Probability trees: the schema a model writes, and the parser for what it really writes.

A node's ``probability`` is conditional on its parent having happened (the seed for depth 1).
``parse_tree`` takes raw model text (prose, fenced blocks, truncated output, megabytes of junk)
and either returns a valid tree or raises :class:`TreeParseError` naming where and what is
wrong. It never raises anything else and never runs longer than linear time in the input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from psychohistory.errors import TreeParseError

__all__ = [
    "EventNode",
    "NodeView",
    "ProbabilityTree",
    "TreeLimits",
    "TreeParseError",
    "parse_tree",
    "repair_truncated",
    "tree_from_dict",
]


@dataclass(frozen=True)
class TreeLimits:
    """Bounds that keep parsing and scoring cheap whatever a model writes.

    >>> TreeLimits(max_depth=2).max_depth
    2
    """

    max_depth: int = 5
    max_nodes: int = 100
    max_event_chars: int = 300
    max_input_chars: int = 200_000

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_nodes", "max_event_chars", "max_input_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TreeLimits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = TreeLimits()


class EventNode(BaseModel):
    """One predicted event, with its probability conditional on its parent.

    >>> EventNode(event="The pound falls", probability=0.8).probability
    0.8
    """

    model_config = ConfigDict(extra="ignore", frozen=False)

    event: str = Field(min_length=1, description="A single concrete event, stated briefly.")
    probability: float = Field(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Probability that the event happens, given that its parent happened.",
    )
    timeframe: str | None = Field(default=None, description="When, relative to the parent.")
    children: list[EventNode] = Field(
        default_factory=list, description="Events that may follow this one."
    )

    @field_validator("event")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("event is empty")
        return value.strip()


class ProbabilityTree(BaseModel):
    """A seed event and the events that may follow it.

    >>> tree = ProbabilityTree(seed="Brexit vote passes", children=[
    ...     EventNode(event="Cameron resigns", probability=0.7,
    ...               children=[EventNode(event="May becomes PM", probability=0.5)])])
    >>> [(view.depth, view.path_str, view.node.event) for view in tree.iter_nodes()]
    [(1, 'children[0]', 'Cameron resigns'), (2, 'children[0].children[0]', 'May becomes PM')]
    >>> len(tree), tree.depth
    (2, 2)
    """

    model_config = ConfigDict(extra="ignore")

    seed: str = Field(description="The event the forecast starts from.")
    children: list[EventNode] = Field(default_factory=list)

    def iter_nodes(self) -> Iterator[NodeView]:
        """Every node, depth first in document order, with its depth, path and parent."""
        stack: list[NodeView] = [
            NodeView(node, 1, (i,), None) for i, node in reversed(list(enumerate(self.children)))
        ]
        while stack:
            view = stack.pop()
            yield view
            for i in range(len(view.node.children) - 1, -1, -1):
                stack.append(NodeView(view.node.children[i], view.depth + 1, (*view.path, i), view))

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_nodes())

    @property
    def depth(self) -> int:
        """The depth of the deepest node (0 for a tree with no children)."""
        return max((view.depth for view in self.iter_nodes()), default=0)

    def to_json(self, *, indent: int | None = None) -> str:
        """The tree as JSON, leaving out empty ``timeframe`` fields."""
        return self.model_dump_json(indent=indent, exclude_none=True)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema of the tree, for prompts and grammar-constrained decoding."""
        return cls.model_json_schema()


@dataclass(frozen=True)
class NodeView:
    """A node seen from the tree: its depth (1 = child of the seed), path and parent view."""

    node: EventNode
    depth: int
    path: tuple[int, ...]
    parent: NodeView | None

    @property
    def path_str(self) -> str:
        return ".".join(f"children[{i}]" for i in self.path)


# --------------------------------------------------------------------------- parsing


def parse_tree(
    text: str | bytes,
    *,
    limits: TreeLimits | None = None,
    seed: str | None = None,
) -> ProbabilityTree:
    """Find the tree JSON in model output, validate it, and return the tree.

    The JSON may stand alone, inside prose, or in a fenced code block. ``seed`` fills in a
    tree whose JSON has no ``seed`` key (models often leave it out).

    >>> parse_tree('Sure! ```json\\n{"seed": "A", "children": [{"event": "B", "probability": 0.4}]}\\n```').children[0].event
    'B'
    >>> parse_tree('{"seed": "A", "children": [{"event": "B", "probability": 1.7}]}')
    Traceback (most recent call last):
    ...
    psychohistory.errors.TreeParseError: children[0].probability: 1.7 is not in [0, 1]
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TreeParseError(f"input is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise TreeParseError(f"expected text, got {type(text).__name__}")
    if len(text) > limits.max_input_chars:
        raise TreeParseError(
            f"input is {len(text):,} characters, over the limit of {limits.max_input_chars:,}"
        )
    data = _extract_json_object(text, max_nesting=4 * limits.max_depth + 8)
    return _build_tree(data, limits, seed)


def repair_truncated(text: str, *, limits: TreeLimits | None = None, seed: str | None = None,
                     tries: int = 20) -> ProbabilityTree | None:
    """The complete part of a tree cut off mid-way (output that hit its token limit).

    Cuts back to the last closed node and closes what is still open. ``None`` when nothing
    valid remains. Rewards use it to tell "too long" from "not a tree at all".

    >>> t = repair_truncated('{"seed": "S", "children": [{"event": "A", "probability": 0.5}, {"ev')
    >>> [n.node.event for n in t.iter_nodes()]
    ['A']
    """
    limits = limits or DEFAULT_LIMITS
    if not isinstance(text, str) or len(text) > limits.max_input_chars:
        return None
    start = text.find("{")
    if start < 0:
        return None
    # after each '}' or ']': the brackets still open there, innermost last
    cuts: list[tuple[int, str]] = []
    stack: list[str] = []
    for i, ch, _ in _brackets(text, start):
        if ch in "{[":
            stack.append("}" if ch == "{" else "]")
            continue
        stack.pop()
        if not stack:
            return None  # the object closed: not truncated, nothing to repair
        cuts.append((i + 1, "".join(reversed(stack))))
    for end, closers in reversed(cuts[-tries:]):
        try:
            return parse_tree(text[start:end] + closers, limits=limits, seed=seed)
        except TreeParseError:
            continue
    return None


def tree_from_dict(data: Any, *, limits: TreeLimits | None = None,
                   seed: str | None = None) -> ProbabilityTree:
    """Validate an already-decoded JSON object as a tree, with ``parse_tree``'s messages."""
    if not isinstance(data, dict):
        raise TreeParseError(f"expected a JSON object, got {_show(data)}")
    return _build_tree(data, limits or DEFAULT_LIMITS, seed)


def _extract_json_object(text: str, *, max_nesting: int) -> dict[str, Any]:
    """The most tree-like JSON object in ``text``, found in one linear scan.

    Candidates are the balanced top-level ``{...}`` spans (strings respected); each is decoded
    once. A span that parses and has ``children`` wins over one that merely parses.
    """
    fast = _fast_path(text, max_nesting)
    if fast is not None:
        return fast
    candidates = list(_object_spans(text, max_nesting))
    if not candidates:
        if "{" in text:
            raise TreeParseError("the JSON object is not closed (truncated output?)")
        raise TreeParseError("no JSON object found in the output")
    first_error: str | None = None
    parsed: list[dict[str, Any]] = []
    for start, end in candidates:
        try:
            value = json.loads(text[start:end], parse_constant=_reject_constant)
        except TreeParseError as exc:
            first_error = first_error or str(exc)
            continue
        except (ValueError, RecursionError) as exc:
            first_error = first_error or f"invalid JSON: {exc}"
            continue
        if isinstance(value, dict):
            if "children" in value:
                return value
            parsed.append(value)
    if parsed:
        return parsed[0]
    raise TreeParseError(first_error or "no JSON object found in the output")


def _fast_path(text: str, max_nesting: int) -> dict[str, Any] | None:
    """The common case in C speed: the text between the first '{' and the last '}' is the tree.

    Anything unusual (no such span, invalid JSON, no ``children``, deep nesting) falls back
    to the linear scanner, which finds the right object and the right error message.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    chunk = text[start:end + 1]
    if chunk.count("{") > 2 * max_nesting and _nesting(chunk) > max_nesting:
        return None
    try:
        value = json.loads(chunk, parse_constant=_reject_constant)
    except (TreeParseError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and "children" in value else None


def _nesting(chunk: str) -> int:
    depth = deepest = 0
    for ch in chunk:
        if ch in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "}]":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise TreeParseError(f"{name} is not a valid JSON number")


def _brackets(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """``(index, bracket, depth after it)`` for each bracket outside JSON strings.

    Quotes open strings only inside an object (prose apostrophes and quotes around the JSON
    do not), and only ``{`` opens at the top level: ``[1]`` in prose is not JSON we want.
    """
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = depth > 0
        elif ch == "{" or (ch == "[" and depth):
            depth += 1
            yield i, ch, depth
        elif ch in "}]" and depth:
            depth -= 1
            yield i, ch, depth


def _object_spans(text: str, max_nesting: int) -> Iterator[tuple[int, int]]:
    start = -1
    for i, ch, depth in _brackets(text):
        if ch == "{" and depth == 1:
            start = i
        elif depth > max_nesting:
            raise TreeParseError(f"JSON is nested more than {max_nesting} levels deep (over "
                                 "the limit that max_depth sets)")
        elif ch in "}]" and depth == 0:
            yield start, i + 1


def _build_tree(data: dict[str, Any], limits: TreeLimits, seed: str | None) -> ProbabilityTree:
    raw_seed = data.get("seed", seed)
    if raw_seed is None:
        raise TreeParseError("missing field", path="seed")
    if not isinstance(raw_seed, str) or not raw_seed.strip():
        raise TreeParseError(f"must be a non-empty string, got {_show(raw_seed)}", path="seed")
    counter = [0]
    children = _build_children(data.get("children", []), "", 1, limits, counter)
    return ProbabilityTree.model_construct(seed=raw_seed.strip(), children=children)


def _build_children(
    raw: Any, prefix: str, depth: int, limits: TreeLimits, counter: list[int]
) -> list[EventNode]:
    where = f"{prefix}children" if prefix else "children"
    if not isinstance(raw, list):
        raise TreeParseError(f"must be a list, got {_show(raw)}", path=where)
    if raw and depth > limits.max_depth:
        raise TreeParseError(f"tree is deeper than the limit of {limits.max_depth}", path=where)
    nodes = []
    for i, item in enumerate(raw):
        path = f"{where}[{i}]"
        counter[0] += 1
        if counter[0] > limits.max_nodes:
            raise TreeParseError(f"tree has more than {limits.max_nodes} nodes", path=path)
        nodes.append(_build_node(item, path, depth, limits, counter))
    return nodes


def _build_node(
    raw: Any, path: str, depth: int, limits: TreeLimits, counter: list[int]
) -> EventNode:
    if not isinstance(raw, dict):
        raise TreeParseError(f"must be an object, got {_show(raw)}", path=path)
    if "event" not in raw:
        raise TreeParseError("missing field", path=f"{path}.event")
    event = raw["event"]
    if not isinstance(event, str):
        raise TreeParseError(f"must be a string, got {_show(event)}", path=f"{path}.event")
    event = event.strip()
    if not event:
        raise TreeParseError("is empty", path=f"{path}.event")
    if len(event) > limits.max_event_chars:
        raise TreeParseError(
            f"is {len(event)} characters, over the limit of {limits.max_event_chars}",
            path=f"{path}.event",
        )
    if "probability" not in raw:
        raise TreeParseError("missing field", path=f"{path}.probability")
    prob = raw["probability"]
    if isinstance(prob, bool) or not isinstance(prob, int | float):
        raise TreeParseError(f"must be a number, got {_show(prob)}", path=f"{path}.probability")
    prob = float(prob)
    if not math.isfinite(prob):
        raise TreeParseError(f"{prob} is not finite", path=f"{path}.probability")
    if not 0.0 <= prob <= 1.0:
        raise TreeParseError(f"{_show(raw['probability'])} is not in [0, 1]", path=f"{path}.probability")
    timeframe = raw.get("timeframe")
    if timeframe is not None and not isinstance(timeframe, str):
        timeframe = str(timeframe) if isinstance(timeframe, int | float) else None
    children = _build_children(raw.get("children", []), f"{path}.", depth + 1, limits, counter)
    return EventNode.model_construct(
        event=event, probability=prob, timeframe=timeframe, children=children
    )


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
