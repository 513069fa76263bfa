"""Checking cases and trees files: every bad record, with its line, in one pass."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psychohistory.cases import Case, iter_jsonl, validate_cases_file
from psychohistory.errors import CaseFormatError, TreeParseError
from psychohistory.tree import ProbabilityTree, parse_tree, tree_from_dict

KINDS = ("auto", "cases", "trees")
#: The top-level keys of a case and of a trees-file record (``seed`` is in both).
CASE_KEYS = frozenset(Case.model_fields)
TREE_KEYS = frozenset({"case_id", "completion", "tree", "seed", "children"})


@dataclass
class ValidationReport:
    path: Path
    kind: str
    n_good: int = 0
    problems: list[str] = field(default_factory=list)


def _listed(keys: Any) -> str:
    return ", ".join(repr(k) for k in sorted(keys))


def _unexpected(keys: set[str], allowed: frozenset[str]) -> str:
    """``'outcome' (did you mean 'outcomes'?)`` for each key not in ``allowed``."""
    parts = []
    for key in sorted(keys - allowed):
        close = difflib.get_close_matches(key, allowed, n=1)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return ", ".join(parts)


def _guess_kind(path: Path) -> str:
    """``"cases"`` or ``"trees"``, from the keys of the first JSON object, only where they fit
    one kind alone; otherwise ``CaseFormatError`` naming the line and the keys."""
    first_problem: CaseFormatError | None = None
    for line, record in iter_jsonl(path):
        if isinstance(record, CaseFormatError):
            first_problem = first_problem or record
            continue
        if not isinstance(record, dict):
            continue
        keys = set(record)
        fits_cases = keys <= CASE_KEYS and bool(keys - TREE_KEYS)
        fits_trees = keys <= TREE_KEYS and bool(keys - CASE_KEYS)
        if fits_cases != fits_trees:
            return "cases" if fits_cases else "trees"
        kind = "cases" if len(keys & CASE_KEYS) >= len(keys & TREE_KEYS) else "trees"
        allowed = CASE_KEYS if kind == "cases" else TREE_KEYS
        what = (f"unexpected keys {_unexpected(keys, allowed)}" if keys - allowed
                else f"keys {_listed(keys)} fit both kinds")
        raise CaseFormatError(
            f"cannot tell whether this is a cases or a trees file: {what}. A case has "
            f"{_listed(CASE_KEYS)}; a tree record has {_listed(TREE_KEYS)}. Fix the record "
            "or pass --kind cases or --kind trees (kind= in Python)", path=path, line=line)
    if first_problem is not None:
        raise CaseFormatError(f"no line holds a JSON object (first: {first_problem}); pass "
                              "--kind cases or --kind trees to see every bad line", path=path)
    raise CaseFormatError("no records: the file is empty", path=path)


def tree_from_record(record: dict[str, Any], *, seed: str) -> ProbabilityTree:
    """The tree of a trees-file record: ``{"completion": text}``, ``{"tree": {...}}`` or a tree.

    Raises ``TreeParseError`` like ``parse_tree``.
    """
    if "completion" in record:
        return parse_tree(str(record["completion"]), seed=seed)
    return tree_from_dict(record.get("tree", record), seed=seed)


def _tree_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    unknown = set(record) - TREE_KEYS
    if unknown:
        return (f"unexpected keys {_unexpected(unknown, TREE_KEYS)}; a tree record has "
                f"{_listed(TREE_KEYS)}")
    try:
        tree_from_record(record, seed=str(record.get("seed", "(seed)")))
    except TreeParseError as exc:
        return str(exc)
    return None


def validate_file(path: str | Path, *, kind: str = "auto") -> ValidationReport:
    """Validate a cases or trees JSONL file.

    ``kind="auto"`` decides from the first record's keys, and only where they fit one kind:
    keys that fit neither (a misspelt ``outcomes``) raise ``CaseFormatError`` with the line.
    A file with no records raises too. A case with no outcomes, and a tree record with keys
    a tree record does not have, are bad records.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "trees.jsonl"
    >>> _ = p.write_text('{"case_id": "a", "completion": "{\\\\"children\\\\": []}"}\\n{"case_id": "b", "children": [{"event": "E", "probability": 1.7}]}\\n')
    >>> report = validate_file(p)
    >>> report.kind, report.n_good, [msg.split(": ", 1)[1] for msg in report.problems]
    ('trees', 1, ['children[0].probability: 1.7 is not in [0, 1]'])
    >>> _ = p.write_text('{"id": "a", "seed": "S", "outcome": []}\\n')
    >>> validate_file(p)
    Traceback (most recent call last):
    ...
    psychohistory.errors.CaseFormatError: ...trees.jsonl:1: cannot tell whether this is a cases or a trees file: unexpected keys 'outcome' (did you mean 'outcomes'?)...
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    kind = _guess_kind(path) if kind == "auto" else kind
    report = ValidationReport(path, kind)
    if kind == "cases":
        cases, errors = validate_cases_file(path)
        problems: list[CaseFormatError] = list(errors)
        line_of: dict[str, int] = {}  # a good case's id is on its first line (repeats are bad)
        for line, record in iter_jsonl(path):
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                line_of.setdefault(record["id"], line)
        for case in cases:
            if case.outcomes:
                report.n_good += 1
            else:
                problems.append(CaseFormatError(
                    f"case {case.id!r} has no outcomes: nothing to score a forecast against",
                    path=path, line=line_of.get(case.id)))
        problems.sort(key=lambda e: e.line or 0)
        report.problems = [str(e) for e in problems]
    else:
        for line, record in iter_jsonl(path):
            problem = str(record) if isinstance(record, CaseFormatError) else _tree_problem(record)
            if problem is None:
                report.n_good += 1
            elif isinstance(record, CaseFormatError):
                report.problems.append(problem)
            else:
                report.problems.append(f"{path}:{line}: {problem}")
    if not report.n_good and not report.problems:
        raise CaseFormatError("no records: the file is empty", path=path)
    return report
