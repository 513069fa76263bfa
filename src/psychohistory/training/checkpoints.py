"""Finding the checkpoint to resume from, skipping one cut off mid-save."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

logger = logging.getLogger("psychohistory.training")

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# transformers' Trainer writes this file last when it saves a checkpoint
_STATE = "trainer_state.json"
# the JSON files a resume reads besides the trainer state
_CONFIGS = ("adapter_config.json", "config.json")
# torch.save writes zip archives: a cut-off one has lost its central directory, at the end
_TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def unreadable_file(path: str | Path) -> str | None:
    """Why the weights or state file at ``path`` cannot be read, or ``None`` if it can.

    Cheap: a ``.safetensors`` file has its header parsed and checked to cover the whole
    file, a torch file (``.pt``, ``.pth``, ``.bin``) its zip directory read, a ``.json`` file
    is parsed; no tensor is loaded.

    >>> import tempfile, pathlib
    >>> cut = pathlib.Path(tempfile.mkdtemp()) / "adapter_model.safetensors"
    >>> _ = cut.write_bytes(b"partial")
    >>> unreadable_file(cut)
    'adapter_model.safetensors is not a readable safetensors file (...)'
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as handle:
                handle.keys()
        elif path.suffix in _TORCH_SUFFIXES:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except Exception as exc:  # safetensors raises its own SafetensorError
        kind = {".safetensors": "safetensors file", ".json": "JSON file"}.get(
            path.suffix, "torch zip archive")
        return f"{path.name} is not a readable {kind} ({exc})"
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or ``None`` if it can."""
    path = Path(path)
    state = path / _STATE
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"its {_STATE} is missing"
    except (OSError, ValueError) as exc:
        return f"its {_STATE} is incomplete ({exc})"
    if not isinstance(data, dict) or "global_step" not in data:
        return f"its {_STATE} has no global_step"
    files = sorted(p for p in path.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", *_TORCH_SUFFIXES) or p.name in _CONFIGS))
    for file in files:
        problem = unreadable_file(file)
        if problem is not None:
            return f"its {problem}"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that a resume can read.

    A run killed while saving leaves a checkpoint folder without (or with half of) its trainer
    state, or with weights cut off (a full disk, a lost machine); resuming from it would crash,
    so it is skipped with a warning saying what is wrong, and the one before it is used.
    Nothing is deleted.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in root.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is not None:
            logger.warning("skipping %s: %s (interrupted while saving?); trying the checkpoint "
                           "before it", path, problem)
            continue
        return str(path)
    return None
