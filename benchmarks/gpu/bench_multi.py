#!/usr/bin/env python
"""GRPO on 1 vs 2 GPUs of one host through psychohistory's ``accelerate`` backend.

The job of ``bench_train.py`` (a random-init model of SmolLM2-135M's exact shape, saved to a
temp folder since the backend starts new processes and needs a path; rewards calibration,
diversity and format; ``num_generations`` = ``per_device_train_batch_size`` = G;
``max_completion_length`` 256; ``load_dataset("historical")``), run as
``Trainer(path, backend="accelerate", backend_options={"num_processes": N})`` for N = 1 and 2
on the same machine. With N processes each step trains N x G completions (G per GPU).

Per run: s/step from TRL's logged ``step_time`` (rank 0's ``training_step``: generation,
rewards, forward and backward; not the optimizer step), median over steps 2..N; s/step from
``train_runtime`` / steps (all steps, warm-up included); the launcher's wall time; completion
tokens per step and per second. Writes ``gpu_multi.json`` and ``gpu_multi.md`` to ``--out``.

N = 1 with several GPUs visible fails in TRL (GRPOTrainer refuses the ``nn.DataParallel`` that
transformers' Trainer uses when one process sees several GPUs; the backend does not restrict the
visible GPUs), so time N = 1 with ``CUDA_VISIBLE_DEVICES=0 ... --processes 1``.

Not a test: without CUDA it says so and exits 0; with one GPU it runs N = 1 only. Usage::

    PYTHONPATH=src python benchmarks/gpu/bench_multi.py --processes 2 --out "$OUT"
    CUDA_VISIBLE_DEVICES=0 PYTHONPATH=src python benchmarks/gpu/bench_multi.py --processes 1 --out "$OUT"
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# NVLink multicast stays off (shared hosts); the backend sets these too
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")

import argparse
import datetime as dt
import json
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import DEFAULT_TOKENIZER, REWARDS, gpu_name, random_model, versions


def run(path: str, processes: int, generations: int, *, steps: int, completion_length: int,
        work: Path) -> dict[str, Any]:
    import psychohistory as ph
    from psychohistory.training.config import TrainerConfig

    cases = ph.load_dataset("historical")
    config = TrainerConfig(
        output_dir=str(work / f"np{processes}_g{generations}"), max_steps=steps,
        num_generations=generations, per_device_train_batch_size=generations,
        max_completion_length=completion_length, save_steps=100_000, logging_steps=1)
    trainer = ph.Trainer(path, rewards=REWARDS, config=config, backend="accelerate",
                         backend_options={"num_processes": processes})
    t0 = time.perf_counter()
    result = trainer.fit(cases)
    wall = time.perf_counter() - t0
    logs = [e for e in result.log_history if "step" in e and "loss" in e]
    step_times = [e.get("step_time") for e in logs]
    lengths = [e.get("completions/mean_length") for e in logs]
    per_step = processes * generations
    record: dict[str, Any] = {
        "num_processes": processes, "num_generations": generations,
        "per_device_train_batch_size": generations, "completions_per_step": per_step,
        "max_steps": steps, "global_step": result.global_step, "launcher_wall_s": wall,
        "train_metrics": result.metrics, "trl_step_time_by_step": step_times,
        "completion_mean_length_by_step": lengths,
    }
    measured = [t for t in step_times[1:] if t is not None]
    if measured:
        record["s_per_step_median_trl"] = statistics.median(measured)
        record["s_per_step_mean_trl"] = statistics.fmean(measured)
        toks = [(ln or 0) * per_step for ln in lengths[1:]]
        record["completion_tokens_per_step_mean"] = statistics.fmean(toks)
        record["completion_tokens_per_s_trl"] = sum(toks) / sum(measured)
    runtime = result.metrics.get("train_runtime")
    if runtime and result.global_step:
        record["s_per_step_from_train_runtime"] = runtime / result.global_step
    return record


def markdown(payload: dict[str, Any]) -> str:
    v = payload["versions"]
    lines = [
        "# GRPO on 1 vs 2 GPUs (accelerate backend)", "",
        f"- card: {payload['card']} (x{payload['gpus']})",
        f"- date (UTC): {payload['date']}",
        f"- command: `{payload['command']}`",
        "- versions: " + ", ".join(f"{k} {v[k]}" for k in
                                   ("torch", "transformers", "trl", "peft", "accelerate",
                                    "datasets", "python")),
        "- job: random-init SmolLM2-135M shape (bf16), LoRA r4 all-linear, rewards "
        "calibration+diversity+format, max_completion_length 256, "
        "per_device_train_batch_size = num_generations = G, `load_dataset('historical')`, "
        "`Trainer(path, backend='accelerate', backend_options={'num_processes': N})` (DDP, "
        "`accelerate launch --mixed_precision bf16`); with N processes a step trains N x G "
        "completions",
        "- s/step (TRL): median of TRL's logged `step_time` over steps 2..N (rank 0's "
        "training_step: generation + rewards + forward/backward; the optimizer step is not "
        "in it); s/step (runtime): `train_runtime` / steps, warm-up step included",
        "",
        "| G | processes | completions/step | s/step (TRL, median) | s/step (runtime) | "
        "completion tok/s | launcher wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        if "error" in r:
            lines.append(f"| {r['num_generations']} | {r['num_processes']} | | failed: "
                         f"{r['error']} | | | |")
            continue

        def f(key: str, spec: str, r: dict[str, Any] = r) -> str:
            return "-" if r.get(key) is None else format(r[key], spec)

        lines.append(f"| {r['num_generations']} | {r['num_processes']} | "
                     f"{r['completions_per_step']} | {f('s_per_step_median_trl', '.3f')} | "
                     f"{f('s_per_step_from_train_runtime', '.3f')} | "
                     f"{f('completion_tokens_per_s_trl', '.0f')} | "
                     f"{f('launcher_wall_s', '.1f')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    parser.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    parser.add_argument("--generations", type=int, nargs="+", default=[4])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=9, help="first one is warm-up")
    parser.add_argument("--completion-length", type=int, default=256)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("bench_multi: torch is not installed; nothing to measure.")
        return 0
    if not torch.cuda.is_available():
        print("bench_multi: no CUDA GPU here; this benchmark needs GPUs. Nothing done.")
        return 0
    gpus = torch.cuda.device_count()
    processes = [n for n in args.processes if n <= gpus]
    if len(processes) < len(args.processes):
        print(f"bench_multi: {gpus} GPU(s) here; running num_processes {processes} only")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_multi_"))
    model, tokenizer = random_model(Path(args.tokenizer), smoke=False)
    saved = work / "model"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    del model
    torch.cuda.empty_cache()

    payload: dict[str, Any] = {
        "card": gpu_name(), "gpus": gpus,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "versions": versions(), "results": [],
    }
    for generations in args.generations:
        for n in processes:
            print(f"== G={generations} num_processes={n}", flush=True)
            try:
                record = run(str(saved), n, generations, steps=args.steps,
                             completion_length=args.completion_length, work=work)
            except Exception as exc:
                traceback.print_exc()
                record = {"num_processes": n, "num_generations": generations,
                          "error": f"{type(exc).__name__}: {exc}"[:300]}
            payload["results"].append(record)
            print(json.dumps({k: v for k, v in record.items()
                              if k not in ("train_metrics",)}, default=str), flush=True)
            (out / "gpu_multi.json").write_text(json.dumps(payload, indent=2, default=str))
            (out / "gpu_multi.md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
