"""Bundled datasets: ``synthetic`` (generated, fictional) and ``historical`` (real, 1990-2024)."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from psychohistory.cases import Case, load_cases
from psychohistory.datasets.synthetic import generate_synthetic_cases

__all__ = ["DATASETS", "dataset_path", "generate_synthetic_cases", "list_datasets", "load_dataset"]

DATASETS = {
    "synthetic": "Generated cases with fictional actors (central banks, elections, mergers, "
                 "disasters, outbreaks); regenerate with generate_synthetic_cases(n, seed=...).",
    "historical": "Real seed events 1990-2024 (elections, referendums, financial crises, "
                  "pandemics, wars, mergers, disasters) with their real outcomes and sources.",
}
SPLITS = ("train", "test")


def list_datasets() -> dict[str, str]:
    """Bundled dataset names and one-line descriptions."""
    return dict(DATASETS)


def dataset_path(name: str) -> Path:
    """The JSONL file a bundled dataset ships as."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; bundled datasets: {', '.join(sorted(DATASETS))}")
    return Path(str(resources.files("psychohistory.datasets") / "data" / f"{name}.jsonl"))


def _split_of(case_id: str) -> str:
    # a stable hash, so a case stays in its split when others are added
    return "test" if hashlib.sha256(case_id.encode()).digest()[0] % 5 == 0 else "train"


def load_dataset(name: str, *, split: str | None = None) -> list[Case]:
    """Load a bundled dataset (or any cases JSONL file by path).

    ``split="test"`` keeps about a fifth of the cases (chosen by a hash of the case id, so it
    is stable), ``split="train"`` the rest; ``None`` keeps all.

    >>> cases = load_dataset("historical")
    >>> len(cases) >= 40 and all(case.outcomes for case in cases)
    True
    >>> train, test = load_dataset("historical", split="train"), load_dataset("historical", split="test")
    >>> len(train) + len(test) == len(cases) and not {c.id for c in train} & {c.id for c in test}
    True
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    path = Path(name) if name not in DATASETS else dataset_path(name)
    if name not in DATASETS and not path.exists():
        raise KeyError(f"unknown dataset {name!r}; bundled datasets: {', '.join(sorted(DATASETS))}"
                       " (or give the path of a cases .jsonl file)")
    cases = load_cases(path)
    if split is not None:
        cases = [case for case in cases if _split_of(case.id) == split]
    return cases
