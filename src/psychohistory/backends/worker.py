"""The process a launcher starts: ``python -m psychohistory.backends.worker JOB``.

A job is a pickle of ``{"kind": "grpo" | "sft", ...}`` written by a backend. Every process
of a multi-GPU launch runs it (TRL and accelerate split the work); the main process writes
the result next to the job as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any


def write_job(path: Path, job: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(job, handle)
    return path


def result_path(job_path: Path) -> Path:
    return job_path.with_suffix(".result.json")


def run_job(job_path: Path) -> Any:
    with job_path.open("rb") as handle:
        job = pickle.load(handle)
    if job["kind"] == "grpo":
        from psychohistory.training.trainer import run_grpo

        result = run_grpo(job["trainer"], job["cases"], resume=job["resume"])
    elif job["kind"] == "sft":
        from psychohistory.training.sft import run_sft

        result = run_sft(job["model"], job["cases"], job["settings"], resume=job["resume"])
    else:
        raise ValueError(f"unknown job kind {job['kind']!r} in {job_path}")
    if int(os.environ.get("RANK", "0")) == 0:
        result_path(job_path).write_text(json.dumps(dataclasses.asdict(result), default=str))
    return result


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m psychohistory.backends.worker JOB.pkl")
    run_job(Path(args[0]))


if __name__ == "__main__":
    main()
