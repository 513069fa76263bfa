"""Probability trees: the schema a model writes, and the parser for what it really writes.

A node's ``probability`` is conditional on its parent having happened (the seed for depth 1).
``parse_tree`` takes raw model text (prose, fenced blocks, truncated output, megabytes of junk)
and either returns a valid tree or raises :class:`TreeParseError` naming where and what is
wrong. It never raises anything else and never runs longer than linear time in the input.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator
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
    "TruncationRepair",
    "parse_tree",
    "repair_truncated",
    "repair_truncated_report",
    "tree_from_dict",
]


@dataclass(frozen=True)
class TreeLimits:
    """Bounds that keep parsing and scoring cheap whatever a model writes.

    >>> TreeLimits(max_depth=2).max_depth
    2
    """

    max_depth: int = 8  # the outcome bank's deepest real chain is 7: a true tree must pass
    max_nodes: int = 100
    max_event_chars: int = 300
    max_input_chars: int = 200_000

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_nodes", "max_event_chars", "max_input_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
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

    The JSON itself is read strictly: a duplicate key, a ``NaN``/``Infinity``/``-Infinity``
    literal or a lone surrogate (``"\\ud800"``) anywhere in the object is an error naming its
    JSON path. Output that is a bare object (nothing before it, or nothing but the opening
    fence of a code block) must end with it: ``{...}}`` or ``{...} more`` is an error naming
    the offset of the extra text. An object with prose before it, or a fenced block with
    prose around it, is found as before.

    >>> parse_tree('Sure! ```json\\n{"seed": "A", "children": [{"event": "B", "probability": 0.4}]}\\n```').children[0].event
    'B'
    >>> parse_tree('{"seed": "A", "children": [{"event": "B", "probability": 1.7}]}')
    Traceback (most recent call last):
    ...
    psychohistory.errors.TreeParseError: children[0].probability: 1.7 is not in [0, 1]
    >>> parse_tree('{"seed": "A", "children": [], "children": [{"event": "B", "probability": 0.4}]}')
    Traceback (most recent call last):
    ...
    psychohistory.errors.TreeParseError: children: duplicate key in the same object
    >>> parse_tree('{"seed": "A", "children": []}}')
    Traceback (most recent call last):
    ...
    psychohistory.errors.TreeParseError: unexpected text after the JSON object (which ends at character 29): '}'
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


@dataclass(frozen=True)
class TruncationRepair:
    """What :func:`repair_truncated_report` changed to turn cut-off output into a tree.

    The JSON that parsed is ``text[start:end] + closed``: everything before ``start`` (prose
    before the first ``{``) and the ``cut_chars`` characters after ``end`` (the unfinished
    node) were dropped, and the brackets in ``closed`` (innermost first) were appended.

    >>> r = repair_truncated_report('{"seed": "S", "children": [{"event": "A", "probability": 0.5}, {"ev')
    >>> r.cut_chars, r.closed, str(r)
    (6, ']}', "cut 6 characters after character 61 and closed ']}'")
    """

    tree: ProbabilityTree
    start: int
    end: int
    cut_chars: int
    closed: str

    def __str__(self) -> str:
        return f"cut {self.cut_chars} characters after character {self.end} and closed {self.closed!r}"


def repair_truncated(text: str, *, limits: TreeLimits | None = None, seed: str | None = None,
                     tries: int = 20) -> ProbabilityTree | None:
    """The complete part of a tree cut off mid-way (output that hit its token limit).

    Cuts back to the last closed node and closes what is still open. ``None`` when nothing
    valid remains, or when the object is closed (nothing was truncated). Rewards use it to
    tell "too long" from "not a tree at all". :func:`repair_truncated_report` returns the
    same tree with a record of what was cut and closed.

    >>> t = repair_truncated('{"seed": "S", "children": [{"event": "A", "probability": 0.5}, {"ev')
    >>> [n.node.event for n in t.iter_nodes()]
    ['A']
    """
    repair = repair_truncated_report(text, limits=limits, seed=seed, tries=tries)
    return repair.tree if repair is not None else None


# the brackets still open at a point of the text: the innermost's closer, then the rest
_Open = tuple[str, "_Open | None"]


def repair_truncated_report(text: str, *, limits: TreeLimits | None = None,
                            seed: str | None = None, tries: int = 20) -> TruncationRepair | None:
    """Like :func:`repair_truncated`, with what was mended: a :class:`TruncationRepair`.

    Tries the last ``tries`` places where a node or list closed, latest first; the mended
    text goes through :func:`parse_tree`, so it is held to the same strict rules. Linear
    in the length of ``text`` (times ``tries``), however deep it nests.
    """
    limits = limits or DEFAULT_LIMITS
    if not isinstance(text, str) or len(text) > limits.max_input_chars:
        return None
    start = text.find("{")
    if start < 0:
        return None
    # After each '}' or ']' that leaves the object open: the brackets still open there, as
    # a linked list (innermost first) so that keeping one costs O(1), not O(depth).
    open_: _Open | None = None
    cuts: deque[tuple[int, _Open]] = deque(maxlen=max(tries, 0))
    for i, ch, _ in _brackets(text, start):
        if ch in "{[":
            open_ = ("}" if ch == "{" else "]", open_)
            continue
        assert open_ is not None  # _brackets yields a closer only inside the object
        open_ = open_[1]
        if open_ is None:
            return None  # the object closed: not truncated, nothing to repair
        cuts.append((i + 1, open_))
    for end, still_open in reversed(cuts):
        closers = "".join(_unwind(still_open))
        try:
            tree = parse_tree(text[start:end] + closers, limits=limits, seed=seed)
        except TreeParseError:
            continue
        return TruncationRepair(tree, start, end, len(text) - end, closers)
    return None


def _unwind(node: _Open | None) -> Iterator[str]:
    while node is not None:
        yield node[0]
        node = node[1]


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
    parsed: list[tuple[dict[str, Any], int, int]] = []
    for start, end in candidates:
        chunk = text[start:end]
        if parsed and "children" not in chunk:  # only a tree can beat the fallback we have
            continue
        try:
            value = _strict_loads(chunk)
        except TreeParseError as exc:
            first_error = first_error or str(exc)
            continue
        except (ValueError, RecursionError) as exc:
            first_error = first_error or f"invalid JSON: {exc}"
            continue
        if isinstance(value, dict):
            if "children" in value:
                _check_nothing_after(text, start, end)
                return value
            parsed.append((value, start, end))
    if parsed:
        value, start, end = parsed[0]
        _check_nothing_after(text, start, end)
        return value
    raise TreeParseError(first_error or "no JSON object found in the output")


def _fast_path(text: str, max_nesting: int) -> dict[str, Any] | None:
    """The common case in C speed: the text between the first '{' and the last '}' is the tree.

    Anything unusual (no such span, invalid or non-strict JSON, no ``children``, deep
    nesting) falls back to the linear scanner, which finds the right object and the right
    error message.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    chunk = text[start:end + 1]
    if chunk.count("{") > 2 * max_nesting and _nesting(chunk) > max_nesting:
        return None
    try:
        value = _strict_loads(chunk)
    except (ValueError, RecursionError):  # TreeParseError is a ValueError
        return None
    if not (isinstance(value, dict) and "children" in value):
        return None
    _check_nothing_after(text, start, end + 1)  # the scanner would pick this same span
    return value


def _nesting(chunk: str) -> int:
    depth = deepest = 0
    for ch in chunk:
        if ch in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "}]":
            depth -= 1
    return deepest


# --------------------------------------------------------------------------- strict JSON

_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # pairs too: a false alarm costs a walk
# what may follow the "```" that opens a fenced block, up to the object: "json\n"
_FENCE_TAG = re.compile(r"[\w.+-]*\s*")


class _Constant:
    """A ``NaN``/``Infinity``/``-Infinity`` literal, left in place so its path can be named."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _strict_loads(chunk: str) -> Any:
    """``json.loads``, refusing duplicate keys, non-finite literals and lone surrogates.

    The hooks only take notes; the value is walked (to name the JSON path) only when a
    note was taken, so valid JSON pays for one small Python call per object.
    """
    dupes: list[tuple[dict[str, Any], str]] = []  # holding the dicts keeps their ids unique
    constants: list[_Constant] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            dupes.append((obj, _first_repeat(k for k, _ in items)))
        return obj

    def constant(name: str) -> _Constant:
        constants.append(_Constant(name))
        return constants[-1]

    value = json.loads(chunk, object_pairs_hook=pairs, parse_constant=constant)
    if dupes or constants or _may_hold_surrogates(chunk):
        _reject_non_strict(value, {id(obj): key for obj, key in dupes})
    return value


def _may_hold_surrogates(chunk: str) -> bool:
    """Cheap tests first: most trees are ASCII without ``\\u`` escapes."""
    if "\\u" in chunk and _ESCAPED_SURROGATE.search(chunk):
        return True
    if chunk.isascii():
        return False
    try:
        chunk.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _first_repeat(keys: Iterable[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no key repeats")


def _reject_non_strict(value: Any, dupes: dict[int, str]) -> None:
    """Raise at the first duplicate key, non-finite literal or lone surrogate, by JSON path."""
    # depth first in document order; a path string is built only for containers
    stack: list[tuple[dict[str, Any] | list[Any], str]] = [(value, "")]
    while stack:
        container, path = stack.pop()
        if isinstance(container, dict):
            if id(container) in dupes:
                raise TreeParseError("duplicate key in the same object",
                                     path=_key_path(path, dupes[id(container)]))
            items: Iterable[tuple[Any, Any]] = container.items()
        else:
            items = enumerate(container)
        nested = []
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                raise TreeParseError(_surrogate_message(key, "key"), path=_key_path(path, key))
            if isinstance(item, dict | list):
                nested.append((item, _child_path(path, key)))
            elif isinstance(item, _Constant):
                raise TreeParseError(f"{item.name} is not a valid JSON number",
                                     path=_child_path(path, key))
            elif isinstance(item, str) and _SURROGATE.search(item):
                raise TreeParseError(_surrogate_message(item, "string"), path=_child_path(path, key))
        stack.extend(reversed(nested))


def _child_path(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else _key_path(path, key)


def _key_path(path: str, key: str) -> str:
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"  # ensure_ascii: the message stays printable


def _surrogate_message(text: str, what: str) -> str:
    match = _SURROGATE.search(text)
    assert match is not None
    return (f"{what} has a lone surrogate {ascii(match.group())[1:-1]} at index {match.start()} "
            "(not valid Unicode)")


def _check_nothing_after(text: str, start: int, end: int) -> None:
    """A bare object, alone or alone in a fenced block, must not be followed by more text."""
    before = text[:start]
    if not before.strip():
        rest, where = text[end:], "the JSON object"
    elif before.count("```") % 2 and _FENCE_TAG.fullmatch(before, before.rfind("```") + 3):
        rest, where = text[end:].split("```", 1)[0], "the JSON object in the fenced block"
    else:
        return  # an object inside prose: what follows it is prose
    extra = rest.lstrip()
    if extra:
        raise TreeParseError(f"unexpected text after {where} (which ends at character {end}): "
                             f"{extra[:20]!a}")


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
    _check_unicode(raw_seed, "seed")  # parse_tree has checked; tree_from_dict has not
    counter = [0]
    try:
        children = _build_children(data.get("children", []), "", 1, limits, counter)
    except RecursionError:  # only a huge max_depth lets the JSON nest this far
        raise TreeParseError("tree is nested too deeply to validate") from None
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
    _check_unicode(event, f"{path}.event")
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
    if isinstance(prob, int) and not 0 <= prob <= 1:  # before float(): 10**400 overflows
        raise TreeParseError(f"{_show(prob)} is not in [0, 1]", path=f"{path}.probability")
    prob = float(prob)
    if not math.isfinite(prob):
        raise TreeParseError(f"{prob} is not finite", path=f"{path}.probability")
    if not 0.0 <= prob <= 1.0:
        raise TreeParseError(f"{_show(raw['probability'])} is not in [0, 1]", path=f"{path}.probability")
    timeframe = raw.get("timeframe")
    if timeframe is not None and not isinstance(timeframe, str):
        timeframe = str(timeframe) if isinstance(timeframe, int | float) else None
    if timeframe is not None:
        _check_unicode(timeframe, f"{path}.timeframe")
    children = _build_children(raw.get("children", []), f"{path}.", depth + 1, limits, counter)
    return EventNode.model_construct(
        event=event, probability=prob, timeframe=timeframe, children=children
    )


def _check_unicode(text: str, path: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise TreeParseError(_surrogate_message(text, "string"), path=path)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
