"""Bundled datasets: ``synthetic`` (generated, fictional) and ``historical`` (real, 1990-2024)."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from psychohistory.cases import SPLITS, Case, load_cases
from psychohistory.datasets.synthetic import generate_synthetic_cases

__all__ = ["DATASETS", "SPLITS", "dataset_path", "generate_synthetic_cases", "list_datasets",
           "load_dataset", "split_of"]

DATASETS = {
    "synthetic": "Generated cases with fictional actors (central banks, elections, mergers, "
                 "disasters, outbreaks); regenerate with generate_synthetic_cases(n, seed=...).",
    "historical": "The outcome bank: real seed events 1990-2024 in 12+ domains with their real "
                  "dated outcomes, sources, forecaster-style paraphrases and near-misses, split "
                  "by case into train / dev / test.",
}


def list_datasets() -> dict[str, str]:
    """Bundled dataset names and one-line descriptions."""
    return dict(DATASETS)


def dataset_path(name: str) -> Path:
    """The JSONL file a bundled dataset ships as."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; bundled datasets: {', '.join(sorted(DATASETS))}")
    return Path(str(resources.files("psychohistory.datasets") / "data" / f"{name}.jsonl"))


def split_of(case_id: str) -> str:
    """``train`` (70%), ``dev`` (10%) or ``test`` (20%), by a stable hash of the case id.

    A case keeps its split when others are added, and a story never crosses splits.

    >>> split_of("brexit-2016") in SPLITS
    True
    """
    bucket = int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "big") % 100
    return "train" if bucket < 70 else "dev" if bucket < 80 else "test"


def load_dataset(name: str, *, split: str | None = None) -> list[Case]:
    """Load a bundled dataset (or any cases JSONL file by path).

    ``split`` keeps the cases of one split: a case's own ``split`` field where it has one
    (the bundled cases do), else :func:`split_of` its id. ``None`` keeps all. ``name`` may
    carry the split after a colon: ``"historical:test"``.

    >>> cases = load_dataset("historical")
    >>> len(cases) >= 40 and all(case.outcomes for case in cases)
    True
    >>> parts = [load_dataset("historical", split=s) for s in SPLITS]
    >>> sum(map(len, parts)) == len(cases)
    True
    >>> load_dataset("historical:dev") == load_dataset("historical", split="dev")
    True
    >>> ids = [{c.id for c in part} for part in parts]
    >>> not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    True
    """
    head, sep, tail = name.rpartition(":")
    if sep and tail in SPLITS and split is None and not Path(name).exists():
        name, split = head, tail  # "historical:test", the form config files and the CLI take
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    path = Path(name) if name not in DATASETS else dataset_path(name)
    if name not in DATASETS and not path.exists() and (path.suffix or "/" in name):
        raise FileNotFoundError(f"cases file not found: {name}")
    if name not in DATASETS and not path.exists():
        raise KeyError(f"unknown dataset {name!r}; bundled datasets: {', '.join(sorted(DATASETS))}"
                       " (or give the path of a cases .jsonl file)")
    cases = load_cases(path)
    if split is not None:
        cases = [case for case in cases if (case.split or split_of(case.id)) == split]
    return cases
