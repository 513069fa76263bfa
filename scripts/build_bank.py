"""Merge the outcome bank's domain files into the bundled ``historical`` dataset.

    .venv/bin/python scripts/build_bank.py          # writes src/psychohistory/datasets/data/historical.jsonl
    .venv/bin/python scripts/build_bank.py --check  # only report; exit 1 if the bundled file is stale

Each ``data/bank/<domain>.jsonl`` is written by one author (``data/bank/AUTHORING.md``) and read
with the library's own loader, so a bad record stops the build with its file and line. Stories
told twice are dropped (the same id, or seeds alike and of the same year: the file read first
keeps its case; ``legacy.jsonl``, the first 58 cases, is read first). What the fact checkers
(``data/bank/fact_check/report_*.jsonl``) doubted is fixed or dropped: an outcome they could not
confirm goes (with the outcomes that followed from it), a date they doubted keeps only its
year, and a case whose seed they doubted, or that keeps fewer than 3 outcomes, goes.

Splits are by story: cases that share an event (an outcome or seed whose MiniLM embedding is
within ``LINK`` cosine of one in the other case, e.g. a mini-budget case and a leadership-contest
case that both end with the prime minister resigning) form one story, and every case of a story
gets the split of the story's first id by ``psychohistory.datasets.split_of``. So no event
crosses splits, even when two authors told parts of one story.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from psychohistory.cases import Case, save_cases, validate_cases_file  # noqa: E402
from psychohistory.datasets import split_of  # noqa: E402

BANK = ROOT / "data" / "bank"
OUT = ROOT / "src" / "psychohistory" / "datasets" / "data" / "historical.jsonl"
SAME_STORY = 88  # token_set_ratio of two seeds of the same year at or above this: one story
LINK = 0.9  # cosine of two events' embeddings at or above this: the same event, one story


def bank_files() -> list[Path]:
    files = sorted(BANK.glob("*.jsonl"))
    legacy = BANK / "legacy.jsonl"
    return ([legacy] if legacy in files else []) + [f for f in files if f != legacy]


def doubts() -> dict[str, dict[str, str]]:
    """case id -> outcome id (or "seed") -> "drop" or "date", from the fact-check reports."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((BANK / "fact_check").glob("report_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row["happened"] != "yes":
                out.setdefault(row["case_id"], {})[row["outcome_id"]] = "drop"
            elif row["date"] in ("wrong", "unsure"):
                out.setdefault(row["case_id"], {}).setdefault(row["outcome_id"], "date")
    return out


def apply_doubts(case: Case, doubted: dict[str, str]) -> Case | None:
    """The case without what the fact check doubted (see the module doc); None to drop it."""
    if not doubted:
        return case
    if doubted.get("seed") == "drop":
        return None
    dropped = {k for k, v in doubted.items() if v == "drop"}
    changed = True
    while changed:  # an outcome that followed a dropped one goes too
        changed = False
        for o in case.outcomes:
            if o.parent in dropped and o.id not in dropped:
                dropped.add(o.id)
                changed = True
    kept = [o.model_copy(update={"date": o.date[:4]}) if doubted.get(o.id) == "date" and o.date
            else o for o in case.outcomes if o.id not in dropped]
    if len(kept) < 3:
        return None
    date = case.date[:4] if doubted.get("seed") == "date" and case.date else case.date
    return case.model_copy(update={"outcomes": kept, "date": date})


def merge(files: list[Path], drops: dict[str, dict[str, str]]) -> tuple[list[Case], list[str]]:
    cases: list[Case] = []
    notes: list[str] = []
    for path in files:
        good, errors = validate_cases_file(path)
        if errors:
            raise SystemExit("\n".join(str(e) for e in errors))
        for case in good:
            clash = next((c for c in cases if c.id == case.id), None)
            if clash is None:
                year = (case.date or "")[:4]
                clash = next((c for c in cases if (c.date or "")[:4] == year and
                              fuzz.token_set_ratio(c.seed, case.seed) >= SAME_STORY), None)
            if clash is not None:
                notes.append(f"dropped {path.name}:{case.id} (same story as {clash.id})")
                continue
            kept = apply_doubts(case, drops.get(case.id, {}))
            if kept is None:
                notes.append(f"dropped {path.name}:{case.id} (fact check: too few outcomes left)")
                continue
            cases.append(kept)
    return assign_splits(cases), notes


def story_roots(cases: list[Case]) -> list[int]:
    """For each case, the index of the first case of its story (union-find over shared events)."""
    from psychohistory.matching.embedding import EmbeddingMatcher

    texts, owner = [], []
    for k, case in enumerate(cases):
        for text in (case.seed, *(o.event for o in case.outcomes)):
            texts.append(text)
            owner.append(k)
    vectors = EmbeddingMatcher().encode(texts)
    parent = list(range(len(cases)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owners = np.array(owner)
    for start in range(0, len(texts), 512):  # blocks keep the similarity matrix small
        sims = vectors[start:start + 512] @ vectors.T
        for i, j in zip(*np.nonzero(sims >= LINK), strict=True):
            a, b = root(int(owners[start + i])), root(int(owners[j]))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(k) for k in range(len(cases))]


def assign_splits(cases: list[Case]) -> list[Case]:
    roots = story_roots(cases)
    sizes = Counter(roots)
    shared = [cases[r].id for r, n in sizes.items() if n > 1]
    print(f"{len(sizes)} stories; {sum(n for n in sizes.values() if n > 1)} cases "
          f"in {len(shared)} stories told by more than one case; largest: {max(sizes.values())}")
    return [case.model_copy(update={"split": split_of(cases[r].id)})
            for case, r in zip(cases, roots, strict=True)]


def card(cases: list[Case]) -> dict[str, object]:
    outcomes = [o for c in cases for o in c.outcomes]
    full = sum(1 for o in outcomes if len(o.paraphrases) >= 3 and len(o.near_misses) >= 2)
    return {
        "cases": len(cases), "outcomes": len(outcomes),
        "outcomes with >= 3 paraphrases and >= 2 near-misses": f"{full} ({full / max(1, len(outcomes)):.1%})",
        "paraphrases": sum(len(o.paraphrases) for o in outcomes),
        "near-misses": sum(len(o.near_misses) for o in outcomes),
        "near-miss kinds": dict(Counter(m.kind for o in outcomes for m in o.near_misses).most_common()),
        "domains": dict(Counter(c.domain for c in cases).most_common()),
        "splits": dict(Counter(c.split for c in cases).most_common()),

        "cases with depth >= 2": sum(any(o.parent for o in c.outcomes) for c in cases),
        "outcome dates to the day": sum(1 for o in outcomes if o.date and len(o.date) == 10),
    }


def fact_check_summary() -> dict[str, object]:
    """What the fact checkers (who wrote none of the cases) found in their samples."""
    rows = [json.loads(line) for path in sorted((BANK / "fact_check").glob("report_*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    outcomes = [r for r in rows if r["outcome_id"] != "seed"]
    doubted = [r for r in rows if r["happened"] != "yes" or r["date"] in ("wrong", "unsure")]
    return {
        "cases checked": len({r["case_id"] for r in rows}), "outcomes checked": len(outcomes),
        "seeds checked": len(rows) - len(outcomes),
        "did not happen as written": sum(r["happened"] == "no" for r in rows),
        "unsure it happened": sum(r["happened"] == "unsure" for r in rows),
        "date wrong": sum(r["date"] == "wrong" for r in rows),
        "date unsure": sum(r["date"] == "unsure" for r in rows),
        "doubted (any of the above)": f"{len(doubted)} of {len(rows)} "
                                      f"({len(doubted) / max(1, len(rows)):.1%})",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; fail if stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cases, notes = merge(bank_files(), doubts())
    for note in notes:
        print(note)
    print(json.dumps({**card(cases), "fact check": fact_check_summary()}, indent=1))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        tmp = args.out.with_suffix(".check.jsonl")
        save_cases(cases, tmp)
        stale = tmp.read_text(encoding="utf-8") != current
        tmp.unlink()
        print("stale" if stale else "up to date")
        return 1 if stale else 0
    save_cases(cases, args.out)
    print(f"wrote {len(cases)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
