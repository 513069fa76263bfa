"""Merge the outcome bank's domain files into the bundled ``historical`` dataset.

    .venv/bin/python scripts/build_bank.py          # writes src/psychohistory/datasets/data/historical.jsonl
    .venv/bin/python scripts/build_bank.py --check  # only report; exit 1 if the bundled file is stale

Each ``data/bank/<domain>.jsonl`` is written by one author (``data/bank/AUTHORING.md``) and read
with the library's own loader, so a bad record stops the build with its file and line. Stories
told twice are dropped (the same id, or seeds alike and of the same year: the file read first
keeps its case; ``legacy.jsonl``, the first 58 cases, is read first). Outcomes a fact check
doubted are dropped as listed in ``data/bank/fact_check_drops.json``. Each case gets its split
from a hash of its id (``psychohistory.datasets.split_of``), so no story crosses splits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rapidfuzz import fuzz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from psychohistory.cases import Case, save_cases, validate_cases_file  # noqa: E402
from psychohistory.datasets import split_of  # noqa: E402

BANK = ROOT / "data" / "bank"
OUT = ROOT / "src" / "psychohistory" / "datasets" / "data" / "historical.jsonl"
DROPS = BANK / "fact_check_drops.json"
SAME_STORY = 88  # token_set_ratio of two seeds of the same year at or above this: one story


def bank_files() -> list[Path]:
    files = sorted(BANK.glob("*.jsonl"))
    legacy = BANK / "legacy.jsonl"
    return ([legacy] if legacy in files else []) + [f for f in files if f != legacy]


def apply_drops(case: Case, drops: dict[str, list[str]]) -> Case | None:
    """The case without the outcomes the fact check doubted (and their descendants)."""
    doubted = set(drops.get(case.id, []))
    if not doubted:
        return case
    if "*" in doubted:
        return None
    changed = True
    while changed:  # an outcome that followed a dropped one goes too
        changed = False
        for o in case.outcomes:
            if o.parent in doubted and o.id not in doubted:
                doubted.add(o.id)
                changed = True
    kept = [o for o in case.outcomes if o.id not in doubted]
    return case.model_copy(update={"outcomes": kept}) if len(kept) >= 3 else None


def merge(files: list[Path], drops: dict[str, list[str]]) -> tuple[list[Case], list[str]]:
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
            kept = apply_drops(case, drops)
            if kept is None:
                notes.append(f"dropped {path.name}:{case.id} (fact check: too few outcomes left)")
                continue
            cases.append(kept.model_copy(update={"split": split_of(kept.id)}))
    return cases, notes


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; fail if stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    drops = json.loads(DROPS.read_text()) if DROPS.exists() else {}
    cases, notes = merge(bank_files(), drops)
    for note in notes:
        print(note)
    print(json.dumps(card(cases), indent=1))
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
