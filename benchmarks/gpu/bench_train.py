#!/usr/bin/env python
"""GPU training throughput of psychohistory's own ``Trainer`` (GRPO) and ``sft``.

A random-init model of SmolLM2-135M's exact shape (its ``config.json``) with SmolLM2's
tokenizer, bf16 on one CUDA GPU, trained through the library's public entry points:

* GRPO (``Trainer(...).fit``) with ``num_generations`` 4 and 16 (``per_device_train_batch_size``
  equal to it), ``max_completion_length`` 256, rewards calibration, diversity and format, on
  ``load_dataset("historical")``;
* SFT (``sft``) with batch 8 (the library's SFT defaults otherwise: LoRA r64, max_length 1024);
* the same with ``quantize="4bit"`` (NF4 through bitsandbytes) when bitsandbytes imports: the
  random model is saved with ``save_pretrained`` to a temp folder whose path goes to the
  library, since 4-bit loading goes through ``load_model``.

Recorded per run: seconds per optimizer step (median and mean over steps 2..N: the first is
warm-up), completion tokens/s for GRPO (TRL's ``completions/mean_length`` x completions per
step, over the same steps), training tokens/s for SFT (TRL's ``num_tokens``), and
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the run. Each run is its
own subprocess. Writes ``gpu_training.json`` and ``gpu_training.md`` to ``--out``.

Not a test: without CUDA it says so and exits 0 (``--smoke-cpu`` runs a 2-layer model for a
few steps on the CPU, to check the script itself). Usage (PYTHONPATH=src)::

    python benchmarks/gpu/bench_train.py --tokenizer .carry/smollm2-tokenizer --out "$OUT"
    python benchmarks/gpu/bench_train.py --runs grpo4-4bit sft-4bit --out "$OUT"
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import datetime as dt
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar

GIB = 1024**3
RUNS = {  # name: (method, num_generations or batch, quantize)
    "grpo4": ("grpo", 4, None),
    "grpo16": ("grpo", 16, None),
    "sft": ("sft", 8, None),
    "grpo4-4bit": ("grpo", 4, "4bit"),
    "grpo16-4bit": ("grpo", 16, "4bit"),
    "sft-4bit": ("sft", 8, "4bit"),
}
DEFAULT_TOKENIZER = Path(__file__).resolve().parents[2] / ".carry" / "smollm2-tokenizer"
REWARDS = ["calibration", "diversity", "format"]


class StepTimer:
    """A transformers callback: wall time at train begin and at each optimizer step's end."""

    times: ClassVar[list[float]] = []
    begin: ClassVar[float | None] = None

    def _sync(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def __getattr__(self, name: str) -> Any:  # every other event: do nothing
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        type(self).begin = time.perf_counter()
        type(self).times = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        type(self).times.append(time.perf_counter())


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets",
                 "bitsandbytes"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30).stdout.strip().splitlines()[0]
    except Exception:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def random_model(tokenizer_dir: Path, *, smoke: bool) -> tuple[Any, Any]:
    """SmolLM2-135M's exact config at random init (bf16 on CUDA; 2 layers fp32 for smoke)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig.from_pretrained(str(tokenizer_dir))
    if smoke:
        config.num_hidden_layers = 2
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model = model.float() if smoke else model.to(device="cuda", dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def run_one(name: str, *, tokenizer_dir: Path, grpo_steps: int, sft_steps: int,
            completion_length: int, smoke: bool) -> dict[str, Any]:
    import torch
    import transformers.trainer

    import psychohistory as ph
    from psychohistory.training.config import SFTSettings, TrainerConfig

    method, size, quantize = RUNS[name]
    if quantize == "4bit":
        import bitsandbytes  # noqa: F401 - fail early with a clear ImportError

    transformers.trainer.DEFAULT_CALLBACKS.append(StepTimer)
    cases = ph.load_dataset("historical")
    work = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    model, tokenizer = random_model(tokenizer_dir, smoke=smoke)
    n_params = sum(p.numel() for p in model.parameters())
    if quantize == "4bit":  # 4-bit goes through load_model, which takes a path
        saved = work / "model"
        model.save_pretrained(saved)
        tokenizer.save_pretrained(saved)
        del model
        model, tokenizer = str(saved), None
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if method == "grpo":
        steps = grpo_steps
        config = TrainerConfig(
            output_dir=str(work / "out"), max_steps=steps, num_generations=size,
            per_device_train_batch_size=size, max_completion_length=completion_length,
            save_steps=100_000, logging_steps=1, quantize=quantize)
        trainer = ph.Trainer(model, tokenizer=tokenizer, rewards=REWARDS, config=config)
        result = trainer.fit(cases)
        per_step = size  # completions per optimizer step (one process)
    else:
        steps = sft_steps
        settings = SFTSettings(output_dir=str(work / "out"), max_steps=steps,
                               per_device_train_batch_size=size, logging_steps=1,
                               save_steps=100_000, quantize=quantize)
        result = ph.sft(model, cases, settings=settings, tokenizer=tokenizer)
        per_step = size
    wall = time.perf_counter() - t0
    record: dict[str, Any] = {
        "run": name, "method": method, "quantize": quantize, "n_params": n_params,
        "max_steps": steps, "global_step": result.global_step, "wall_s": wall,
        "train_metrics": result.metrics,
    }
    if method == "grpo":
        record.update(num_generations=size, per_device_train_batch_size=size,
                      max_completion_length=completion_length, rewards=REWARDS)
    else:
        record.update(per_device_train_batch_size=size)
    if cuda:
        record["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        record["max_memory_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB

    ends = StepTimer.times
    durations = [b - a for a, b in zip([StepTimer.begin, *ends[:-1]], ends, strict=True)]
    record["step_s_all"] = durations
    measured = durations[1:]  # the first step is warm-up
    if measured:
        record["s_per_step_median"] = statistics.median(measured)
        record["s_per_step_mean"] = statistics.fmean(measured)
    logs = {e["step"]: e for e in result.log_history if "step" in e and "loss" in e}
    if method == "grpo":
        lengths = {s: e.get("completions/mean_length") for s, e in logs.items()}
        record["completion_mean_length_by_step"] = lengths
        steps_measured = range(2, len(durations) + 1)
        tokens = [lengths.get(s) for s in steps_measured]
        if measured and all(t is not None for t in tokens):
            record["completion_tokens_per_step_mean"] = statistics.fmean(
                t * per_step for t in tokens)
            record["completion_tokens_per_s"] = sum(t * per_step for t in tokens) / sum(measured)
        record["trl_step_time_by_step"] = {s: e.get("step_time") for s, e in logs.items()}
        rewards = [e.get("reward") for e in logs.values() if e.get("reward") is not None]
        record["reward_mean"] = statistics.fmean(rewards) if rewards else None
    else:
        seen = {s: e.get("num_tokens") for s, e in logs.items()}
        record["num_tokens_by_step"] = seen
        if measured and seen.get(1) is not None and seen.get(len(durations)) is not None:
            record["train_tokens_per_s"] = (seen[len(durations)] - seen[1]) / sum(measured)
    record["losses"] = [e.get("loss") for e in logs.values()]
    return record


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| run | quantize | batch (completions/step) | steps | s/step (median, excl. 1st) "
             "| s/step (mean) | completion tok/s | train tok/s | max allocated GiB "
             "| max reserved GiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['run']} | {RUNS[r['run']][2] or 'bf16'} | | | failed: "
                         f"{r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['run']} | {r['quantize'] or 'bf16'} | {r['per_device_train_batch_size']} | "
            f"{r['global_step']} | {fmt(r.get('s_per_step_median'), '.3f')} | "
            f"{fmt(r.get('s_per_step_mean'), '.3f')} | "
            f"{fmt(r.get('completion_tokens_per_s'), '.0f')} | "
            f"{fmt(r.get('train_tokens_per_s'), '.0f')} | "
            f"{fmt(r.get('max_memory_allocated_gib'), '.2f')} | "
            f"{fmt(r.get('max_memory_reserved_gib'), '.2f')} |")
    return "\n".join(lines)


def markdown(payload: dict[str, Any]) -> str:
    v = payload["versions"]
    out = [
        "# GPU training throughput (psychohistory Trainer / sft)", "",
        f"- card: {payload['card']}",
        f"- date (UTC): {payload['date']}",
        f"- command: `{payload['command']}`",
        "- versions: " + ", ".join(f"{k} {v[k]}" for k in
                                   ("torch", "transformers", "trl", "peft", "datasets",
                                    "accelerate", "bitsandbytes", "python")),
        "- model: random init of SmolLM2-135M-Instruct's exact config (LlamaForCausalLM, 30 "
        "layers, hidden 576, vocab 49152, tied; 134.5M params) with its tokenizer; bf16 on "
        "CUDA (4bit: NF4 + double quant, bf16 compute, via `load_model`, then peft's "
        "`prepare_model_for_kbit_training`, which keeps non-quantized weights in fp32); "
        "TRL 1.16's GRPOConfig and SFTConfig default to gradient checkpointing on, and the "
        "library does not change that, so every run here has it on",
        "- GRPO: `Trainer(model, rewards=['calibration','diversity','format'], "
        "config=TrainerConfig(num_generations=G, per_device_train_batch_size=G, "
        "max_completion_length=256, logging_steps=1))` on `load_dataset('historical')`; "
        "LoRA r4 all-linear; TRL's transformers `generate` (no vLLM); a random model almost "
        "never emits EOS, so completions run to the 256-token limit",
        "- SFT: `sft(model, cases, settings=SFTSettings(per_device_train_batch_size=8, "
        "logging_steps=1))` (LoRA r64, max_length 1024)",
        "- s/step: wall time between optimizer-step ends (CUDA synchronized), first step "
        "excluded as warm-up; completion tok/s = sum over those steps of "
        "completions/mean_length x completions per step, over their time (generation, "
        "reward and the update together)",
        "", table(payload["results"]), "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    parser.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER),
                        help="folder with SmolLM2's config.json and tokenizer files")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--grpo-steps", type=int, default=9, help="first one is warm-up")
    parser.add_argument("--sft-steps", type=int, default=21, help="first one is warm-up")
    parser.add_argument("--completion-length", type=int, default=256)
    parser.add_argument("--smoke-cpu", action="store_true",
                        help="a 2-layer model on the CPU for a few steps: checks the script")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("bench_train: torch is not installed; nothing to measure.")
        return 0
    if not torch.cuda.is_available() and not args.smoke_cpu:
        print("bench_train: no CUDA GPU here; this benchmark needs one. Nothing done "
              "(--smoke-cpu checks the script on the CPU).")
        return 0

    if args.one:
        try:
            record = run_one(args.one, tokenizer_dir=Path(args.tokenizer),
                             grpo_steps=args.grpo_steps, sft_steps=args.sft_steps,
                             completion_length=args.completion_length, smoke=args.smoke_cpu)
        except Exception as exc:
            traceback.print_exc()
            record = {"run": args.one, "error": f"{type(exc).__name__}: {exc}"[:300]}
        Path(args.json).write_text(json.dumps(record, indent=2, default=str))
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "card": gpu_name() if torch.cuda.is_available() else "cpu (smoke)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "versions": versions(), "results": [],
    }
    for name in args.runs:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            path = tmp.name
        cmd = [sys.executable, __file__, "--one", name, "--json", path,
               "--tokenizer", args.tokenizer, "--grpo-steps", str(args.grpo_steps),
               "--sft-steps", str(args.sft_steps),
               "--completion-length", str(args.completion_length)]
        if args.smoke_cpu:
            cmd.append("--smoke-cpu")
        print(f"== {name}", flush=True)
        proc = subprocess.run(cmd)
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            record = {"run": name, "error": f"subprocess exited {proc.returncode}"}
        Path(path).unlink(missing_ok=True)
        payload["results"].append(record)
        print(json.dumps({k: v for k, v in record.items()
                          if k not in ("step_s_all", "completion_mean_length_by_step",
                                       "num_tokens_by_step", "losses", "train_metrics")},
                         default=str), flush=True)
        # written after every run, so a later crash or timeout keeps the earlier numbers
        (out / "gpu_training.json").write_text(json.dumps(payload, indent=2, default=str))
        (out / "gpu_training.md").write_text(markdown(payload))
    print(table(payload["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
