"""Merge the audit's labels into the bundled pair set, and measure the labellers' agreement.

    .venv/bin/python scripts/merge_audit_labels.py

``data/audit/labels/part_*.jsonl`` hold the labelled pairs (part 0: the first 206, labelled
in the session that built the audit; parts 1-4: the H200 run's trees, one labeller per part,
split by case). ``second.jsonl`` is a random 240 of parts 1-4 labelled again by a labeller
who saw neither the first labels nor any score: the agreement goes to the card. Writes
``src/psychohistory/datasets/data/event_pairs_audit.jsonl`` and prints the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "data" / "audit" / "labels"
TARGET = ROOT / "src" / "psychohistory" / "datasets" / "data" / "event_pairs_audit.jsonl"
FIELDS = ("predicted", "actual", "label", "kind", "topic", "stage", "role", "target")
KINDS = {"outcome": {1: {"match"}, 0: {"restates_seed", "other_outcome", "wrong_detail",
                                       "vague", "unrelated"}},
         "anchor": {1: {"restates_seed"}, 0: {"not_a_restatement"}}}


# what the labellers wrote for an anchor pair (KINDS) -> the kind in the merged set
ANCHOR_KINDS = {1: "anchor_restated", 0: "anchor_not_restated"}


def read(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        row.setdefault("topic", row.get("case_id"))
        if row["label"] not in (0, 1):
            raise SystemExit(f"{path.name}:{n}: label must be 0 or 1, got {row['label']!r}")
        allowed = KINDS.get(row.get("role", "outcome"), {}).get(row["label"], set())
        if path.name != "part_0.jsonl" and row["kind"] not in allowed:
            raise SystemExit(f"{path.name}:{n}: kind {row['kind']!r} for role {row['role']} "
                             f"label {row['label']}")
        rows.append(row)
    return rows


def kappa(a: list[int], b: list[int]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def main() -> int:
    merged: dict[tuple[str, str], dict] = {}
    for path in sorted(LABELS.glob("part_*.jsonl")):
        for row in read(path):
            merged.setdefault((row["predicted"], row["actual"]), {k: row.get(k) for k in FIELDS})
    for row in merged.values():  # an anchor's kind says so: "restates_seed" is also an
        if row["role"] == "anchor":  # outcome pair's reason for a no
            row["kind"] = ANCHOR_KINDS[row["label"]]
    with TARGET.open("w", encoding="utf-8") as handle:
        for row in merged.values():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    rows = list(merged.values())
    print(f"{len(rows)} labelled pairs -> {TARGET.relative_to(ROOT)}")
    print("by role and label:", dict(Counter((r["role"], r["label"]) for r in rows)))
    print("by kind:", dict(Counter(r["kind"] for r in rows)))
    second = read(LABELS / "second.jsonl")
    first = [merged[(r["predicted"], r["actual"])] for r in second]
    for role in ("outcome", "anchor", None):
        pairs = [(f["label"], s["label"]) for f, s in zip(first, second, strict=True)
                 if role is None or s["role"] == role]
        a, b = [x for x, _ in pairs], [y for _, y in pairs]
        agree = sum(x == y for x, y in pairs) / len(pairs)
        print(f"agreement ({role or 'all'}): {len(pairs)} pairs, {agree:.3f} same label, "
              f"kappa {kappa(a, b):.3f}; label 1: first {sum(a)}, second {sum(b)}")
    kinds = sum(f["kind"] == (ANCHOR_KINDS[s["label"]] if s["role"] == "anchor" else s["kind"])
                for f, s in zip(first, second, strict=True)) / len(second)
    print(f"same kind: {kinds:.3f}")
    for f, s in zip(first, second, strict=True):
        if f["label"] != s["label"]:
            print(f"  disagree ({s['role']}): first {f['label']} {f['kind']}, second "
                  f"{s['label']} {s['kind']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
