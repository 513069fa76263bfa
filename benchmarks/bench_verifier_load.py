#!/usr/bin/env python
"""How long the default verifier takes to load, and what skipping the head's initialisation saved.

The decoder verifier is the packaged SmolLM2 made into a one-logit classifier, with the shipped
tensors on top. Building that classifier used to initialise every new tensor at random, then
overwrite all of them (the base's weights, the shipped head). This times, alternately in one
run, the classifier built both ways, and the whole load (hash check, build, low-rank updates
folded in) as the library does it now.

Usage::

    python benchmarks/bench_verifier_load.py                 # writes benchmarks/results/verifier_load.*
    python benchmarks/bench_verifier_load.py --repeats 1 --out /tmp/b
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import datetime as dt
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"


def measure(repeats: int) -> dict[str, object]:
    import torch

    from psychohistory.matching.verifier import VerifierMatcher, decoder_classifier

    decoder_classifier()  # the base's first read (a GGUF is converted once, then cached)
    times: dict[str, list[float]] = {"classifier, head initialised (before)": [],
                                     "classifier, initialisation skipped (now)": [],
                                     "whole load (now)": []}
    for _ in range(repeats):
        for label in times:
            start = time.perf_counter()
            if label == "whole load (now)":
                VerifierMatcher(device="cpu").load()
            else:
                decoder_classifier(init_head="before" in label)
            times[label].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    before, now = (median[k] for k in list(times)[:2])
    return {"median_s": median, "runs": times, "speedup": before / now,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"torch threads {torch.get_num_threads()}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = measure(args.repeats)
    command = "python benchmarks/bench_verifier_load.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    result.update(date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  command=command, repeats=args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "verifier_load.json").write_text(json.dumps(result, indent=1) + "\n",
                                                 encoding="utf-8")
    lines = ["# Verifier load", "", f"- command: `{command}`", f"- date: {result['date']}",
             f"- machine: {result['machine']} (the verifier on the CPU)",
             f"- median of {args.repeats}, the three timed alternately", "",
             "| what | median s |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["median_s"].items()]  # type: ignore[union-attr]
    lines += ["", f"Skipping the initialisation the shipped weights overwrite builds the "
                  f"classifier **{result['speedup']:.1f}x** faster in the same run.", ""]
    (args.out / "verifier_load.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
