"""Cases: a seed event and what really followed it, read from and written to JSONL."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from psychohistory.errors import CaseFormatError
from psychohistory.tree import EventNode, ProbabilityTree

__all__ = [
    "NEAR_MISS_KINDS",
    "SPLITS",
    "Case",
    "CaseFormatError",
    "NearMiss",
    "Outcome",
    "iter_jsonl",
    "load_cases",
    "save_cases",
    "validate_cases_file",
]


#: How a near-miss differs from the outcome it imitates.
NEAR_MISS_KINDS = ("reversal", "swapped_entity", "changed_number", "stage_of_story",
                   "same_actor_other_event", "negation")
#: The splits a bundled case can belong to (fixed per case, so no story crosses splits).
SPLITS = ("train", "dev", "test")


def check_date(value: str | None) -> str | None:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (a real calendar date), or ``None``.

    Partial dates say how precisely a day is known; a guessed day is worse than none.

    >>> check_date("2016-06"), check_date(None)
    ('2016-06', None)
    """
    if value is None:
        return None
    import datetime

    parts = value.split("-")
    if not (1 <= len(parts) <= 3 and len(parts[0]) == 4
            and all(p.isdigit() and p.isascii() for p in parts)
            and all(len(p) == 2 for p in parts[1:])):
        raise ValueError(f"{value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = (int(p) for p in [*parts, "01", "01"][:3])
    try:
        datetime.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date ({exc})") from None
    return value


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


class NearMiss(BaseModel):
    """A text that looks like an outcome but is another event (``kind`` says how it differs).

    >>> NearMiss(event="Theresa May loses the Conservative leadership vote", kind="reversal").kind
    'reversal'
    """

    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1)
    kind: str

    @field_validator("event")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in NEAR_MISS_KINDS:
            raise ValueError(f"{value!r} is not one of {', '.join(NEAR_MISS_KINDS)}")
        return value


class Outcome(BaseModel):
    """An event that actually happened; ``parent`` names the outcome it followed from.

    ``paraphrases`` (how a forecaster would have written the same event in advance) and
    ``near_misses`` (look-alike texts that are other events) are optional; bundled real
    cases carry them to train and test matchers.

    >>> Outcome(id="o2", event="Theresa May becomes prime minister", date="2016-07-13", parent="o1").parent
    'o1'
    >>> Outcome(id="o1", event="Cameron resigns", paraphrases=["cameron resigns"])
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Outcome
    ...paraphrase 1 repeats the outcome's own text...
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    event: str = Field(min_length=1)
    date: str | None = None
    parent: str | None = None
    paraphrases: list[str] = Field(default_factory=list)
    near_misses: list[NearMiss] = Field(default_factory=list)

    _check_date = field_validator("date")(classmethod(lambda cls, v: check_date(v)))

    @model_validator(mode="after")
    def _check_texts(self) -> Outcome:
        seen = {_normal(self.event): "the outcome's own text"}
        for i, text in enumerate(self.paraphrases, start=1):
            key = _normal(text)
            if not key:
                raise ValueError(f"paraphrase {i} is blank")
            if key in seen:
                raise ValueError(f"paraphrase {i} repeats {seen[key]}")
            seen[key] = f"paraphrase {i}"
        for i, miss in enumerate(self.near_misses, start=1):
            key = _normal(miss.event)
            if key in seen:
                raise ValueError(f"near_misses {i} repeats {seen[key]}")
            seen[key] = f"near_misses {i}"
        return self


class Case(BaseModel):
    """A seed event with the outcomes that followed it.

    Depth is derived from ``parent`` links; a dangling parent or a cycle is an error.

    >>> case = Case(id="c1", seed="Brexit vote passes", outcomes=[
    ...     Outcome(id="o1", event="Cameron resigns"),
    ...     Outcome(id="o2", event="May becomes PM", parent="o1")])
    >>> case.depth_of("o2"), [o.id for o in case.children_of(None)]
    (2, ['o1'])
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    seed: str = Field(min_length=1)
    context: str = ""
    date: str | None = None
    domain: str | None = None
    source: str | None = None
    split: str | None = None
    outcomes: list[Outcome] = Field(default_factory=list)

    _check_date = field_validator("date")(classmethod(lambda cls, v: check_date(v)))

    @field_validator("split")
    @classmethod
    def _known_split(cls, value: str | None) -> str | None:
        if value is not None and value not in SPLITS:
            raise ValueError(f"{value!r} is not one of {', '.join(SPLITS)}")
        return value

    @model_validator(mode="after")
    def _check_links(self) -> Case:
        ids: dict[str, Outcome] = {}
        for outcome in self.outcomes:
            if outcome.id in ids:
                raise ValueError(f"outcome id {outcome.id!r} appears twice")
            ids[outcome.id] = outcome
        for outcome in self.outcomes:
            if outcome.parent is not None and outcome.parent not in ids:
                raise ValueError(f"outcome {outcome.id!r} has unknown parent {outcome.parent!r}")
        for outcome in self.outcomes:  # walk up; more steps than outcomes means a cycle
            seen, node = 0, outcome
            while node.parent is not None:
                seen += 1
                if seen > len(ids):
                    raise ValueError(f"outcome {outcome.id!r} is in a parent cycle")
                node = ids[node.parent]
        return self

    def outcome(self, outcome_id: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.id == outcome_id:
                return outcome
        raise KeyError(f"case {self.id!r} has no outcome {outcome_id!r}")

    def depth_of(self, outcome_id: str) -> int:
        """1 for a direct consequence of the seed, 2 for its children, and so on."""
        depth, node = 1, self.outcome(outcome_id)
        while node.parent is not None:
            depth += 1
            node = self.outcome(node.parent)
        return depth

    def children_of(self, parent_id: str | None) -> list[Outcome]:
        """The outcomes that followed ``parent_id`` (``None``: the seed)."""
        return [o for o in self.outcomes if o.parent == parent_id]

    def to_tree(self, probability: float = 1.0) -> ProbabilityTree:
        """The ground-truth tree: every outcome as a node, nested by its parent links."""

        def build(parent: str | None) -> list[EventNode]:
            return [
                EventNode(event=o.event, probability=probability, children=build(o.id))
                for o in self.children_of(parent)
            ]

        return ProbabilityTree(seed=self.seed, children=build(None))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any | CaseFormatError]]:
    """Yield ``(line_number, value)`` for each non-blank line; a bad line yields the error.

    Errors are yielded, not raised, so callers can report every bad record in one pass.
    """
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield number, CaseFormatError(f"not UTF-8: {exc.reason}", path=path, line=number)
            except json.JSONDecodeError as exc:
                yield number, CaseFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})",
                                              path=path, line=number)
            except RecursionError:
                yield number, CaseFormatError("invalid JSON: nested too deeply", path=path,
                                              line=number)
            except ValueError as exc:  # e.g. an integer too long to convert
                yield number, CaseFormatError(f"invalid JSON: {exc}", path=path, line=number)


def _case_from_record(record: Any, path: Path, line: int) -> Case:
    if not isinstance(record, dict):
        raise CaseFormatError(f"expected a JSON object, got {type(record).__name__}",
                              path=path, line=line)
    try:
        return Case.model_validate(record)
    except ValidationError as exc:
        raise CaseFormatError(_first_problem(exc), path=path, line=line) from None


def _first_problem(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(problems)


def validate_cases_file(path: str | Path) -> tuple[list[Case], list[CaseFormatError]]:
    """Every good case and every bad record (with its line) in a cases file."""
    path = Path(path)
    cases: list[Case] = []
    errors: list[CaseFormatError] = []
    seen: dict[str, int] = {}
    for line, record in iter_jsonl(path):
        if isinstance(record, CaseFormatError):
            errors.append(record)
            continue
        try:
            case = _case_from_record(record, path, line)
        except CaseFormatError as exc:
            errors.append(exc)
            continue
        if case.id in seen:
            errors.append(CaseFormatError(
                f"case id {case.id!r} already used on line {seen[case.id]}", path=path, line=line))
            continue
        seen[case.id] = line
        cases.append(case)
    return cases, errors


def load_cases(path: str | Path) -> list[Case]:
    """Read a JSONL file of cases; the first bad record raises ``CaseFormatError(line=...)``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cases.jsonl"
    >>> _ = p.write_text('{"id": "a", "seed": "S", "outcomes": []}\\n{"id": "b"}\\n')
    >>> load_cases(p)
    Traceback (most recent call last):
    ...
    psychohistory.errors.CaseFormatError: ...cases.jsonl:2: seed: Field required
    """
    cases, errors = validate_cases_file(path)
    if errors:
        raise errors[0]
    return cases


def save_cases(cases: Iterable[Case], path: str | Path) -> Path:
    """Write cases as JSONL atomically: a crash mid-write leaves the old file intact.

    >>> import tempfile, pathlib
    >>> path = save_cases([Case(id="c", seed="S")], pathlib.Path(tempfile.mkdtemp()) / "c.jsonl")
    >>> path.read_text()
    '{"id": "c", "seed": "S", "context": "", "outcomes": []}\\n'
    """
    return write_jsonl((_record(case) for case in cases), path)


def _record(case: Case) -> dict[str, Any]:
    record = case.model_dump(exclude_none=True)
    for outcome in record["outcomes"]:  # optional lists only where they hold something
        for key in ("paraphrases", "near_misses"):
            if not outcome[key]:
                del outcome[key]
    return record


def write_jsonl(records: Iterable[Any], path: str | Path) -> Path:
    """Write JSON records one per line through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
