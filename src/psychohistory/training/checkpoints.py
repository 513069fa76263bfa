"""Finding the checkpoint to resume from, skipping one cut off mid-save."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger("psychohistory.training")

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# transformers' Trainer writes this file last when it saves a checkpoint
_STATE = "trainer_state.json"


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` whose trainer state is written and parses.

    A run killed while saving leaves a checkpoint folder without (or with half of) its trainer
    state; resuming from it would crash, so it is skipped with a warning and the one before it
    is used.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in root.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        try:
            json.loads((path / _STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("skipping %s: its %s is missing or incomplete (interrupted while "
                           "saving?)", path, _STATE)
            continue
        return str(path)
    return None
