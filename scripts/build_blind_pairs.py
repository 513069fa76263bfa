"""Assemble the bundled blind pair set from what its authors wrote, keeping it off the bank.

    .venv/bin/python scripts/build_blind_pairs.py    # writes src/psychohistory/datasets/data/event_pairs_blind.jsonl

``data/blind/event_pairs_blind.jsonl`` and ``data/blind2/event_pairs_blind2.jsonl`` were written by
two authors who saw neither the bank's paraphrases nor any matcher's scores (the second was given
only the bank's case ids, to steer clear of them). A story the bank also tells cannot stay blind,
so a topic is dropped when its seed is within ``SEED_LINK`` MiniLM cosine of a bank seed, or one
of its outcomes within ``EVENT_LINK`` of a bank outcome or paraphrase. Nothing here reads labels
against any score: the filter looks at texts only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SOURCES = [ROOT / "data/blind/event_pairs_blind.jsonl", ROOT / "data/blind2/event_pairs_blind2.jsonl"]
OUT = ROOT / "src/psychohistory/datasets/data/event_pairs_blind.jsonl"
SEED_LINK = 0.55
EVENT_LINK = 0.8


def near_stories(stories: dict[str, tuple[str, list[str]]], seeds: list[str],
                 events: list[str]) -> set[str]:
    """The names of ``stories`` (name -> its seed and outcome texts) that tell one of another
    set's stories: the seed within ``SEED_LINK`` MiniLM cosine of one of ``seeds``, or an
    outcome within ``EVENT_LINK`` of one of ``events``. Texts only."""
    from psychohistory.matching.embedding import EmbeddingMatcher

    if not stories:
        return set()
    emb = EmbeddingMatcher()
    names = list(stories)
    seed_sim = emb.score([stories[n][0] for n in names], seeds).max(axis=1)
    return {name for name, sim in zip(names, seed_sim, strict=True)
            if sim >= SEED_LINK or emb.score(stories[name][1], events).max() >= EVENT_LINK}


def main() -> int:
    from psychohistory.datasets import load_dataset

    pairs = []
    for source in SOURCES:
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.strip():
                pairs.append({**json.loads(line), "author": source.parent.name})
    bank = load_dataset("historical")
    topics: dict[str, dict[str, object]] = {}
    for p in pairs:
        topic = topics.setdefault(p["topic"], {"seed": p["seed"], "actual": set()})
        topic["actual"].add(p["actual"])  # type: ignore[union-attr]
    names = list(topics)
    bank_events = [t for c in bank for o in c.outcomes for t in (o.event, *o.paraphrases)]
    dropped = near_stories(
        {t: (str(topics[t]["seed"]), sorted(topics[t]["actual"]))  # type: ignore[arg-type]
         for t in names}, [c.seed for c in bank], bank_events)
    seen: set[tuple[str, str]] = set()
    kept = []
    for p in pairs:
        key = (p["predicted"], p["actual"])
        if p["topic"] in dropped or key in seen:
            continue
        seen.add(key)
        kept.append({k: p[k] for k in ("predicted", "actual", "label", "kind", "topic", "seed",
                                       "author")})
    OUT.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in kept), encoding="utf-8")
    print(f"{len(names)} topics, {len(dropped)} dropped as bank stories; {len(kept)} pairs over "
          f"{len(names) - len(dropped)} topics kept; by kind: "
          f"{dict(Counter(p['kind'] for p in kept).most_common())}; by author: "
          f"{dict(Counter(p['author'] for p in kept))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
