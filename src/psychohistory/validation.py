"""Checking cases and trees files: every bad record, with its line, in one pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psychohistory.cases import iter_jsonl, validate_cases_file
from psychohistory.errors import CaseFormatError, TreeParseError
from psychohistory.tree import ProbabilityTree, parse_tree, tree_from_dict

KINDS = ("auto", "cases", "trees")


@dataclass
class ValidationReport:
    path: Path
    kind: str
    n_good: int = 0
    problems: list[str] = field(default_factory=list)


def _guess_kind(path: Path) -> str:
    for _, record in iter_jsonl(path):
        if isinstance(record, dict):
            return "cases" if "outcomes" in record else "trees"
    return "cases"


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
    try:
        tree_from_record(record, seed=str(record.get("seed", "(seed)")))
    except TreeParseError as exc:
        return str(exc)
    return None


def validate_file(path: str | Path, *, kind: str = "auto") -> ValidationReport:
    """Validate a cases or trees JSONL file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "trees.jsonl"
    >>> _ = p.write_text('{"case_id": "a", "completion": "{\\\\"children\\\\": []}"}\\n{"case_id": "b", "children": [{"event": "E", "probability": 1.7}]}\\n')
    >>> report = validate_file(p)
    >>> report.kind, report.n_good, [msg.split(": ", 1)[1] for msg in report.problems]
    ('trees', 1, ['children[0].probability: 1.7 is not in [0, 1]'])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    kind = _guess_kind(path) if kind == "auto" else kind
    report = ValidationReport(path, kind)
    if kind == "cases":
        cases, errors = validate_cases_file(path)
        report.n_good = len(cases)
        report.problems = [str(e) for e in errors]
        return report
    for line, record in iter_jsonl(path):
        problem = str(record) if isinstance(record, CaseFormatError) else _tree_problem(record)
        if problem is None:
            report.n_good += 1
        elif isinstance(record, CaseFormatError):
            report.problems.append(problem)
        else:
            report.problems.append(f"{path}:{line}: {problem}")
    return report
