#!/usr/bin/env python
"""Measured peak GPU memory of LoRA forward+backward, next to ``plan_memory``'s estimate.

For three architectures at random init in bf16 on one CUDA GPU (SmolLM2-135M's shape,
Qwen2.5-1.5B's shape, GPT-OSS-20B's architecture: ``GptOssConfig`` with 24 layers and 32
experts, 20.91B parameters; its bare defaults are gpt-oss-120b's), wrapped
in a peft LoRA (r=4, alpha 8, ``target_modules="all-linear"``): one forward and backward
with ``labels = input_ids`` at (seq_len 1024, batch 1) and (seq_len 512, batch 4), after
``torch.cuda.reset_peak_memory_stats``. A first, unmeasured pass warms up cuBLAS and the
allocator; both passes' peaks are recorded. Next to each measurement:
``plan_memory(KNOWN_SHAPES key, method="sft", lora_rank=4, seq_len, batch_size, gpu="H100")``
with its breakdown and the relative error ``(estimate - measured) / measured``.

Each model runs in its own subprocess (a clean CUDA context and allocator). Writes
``memory_planner_measurements.json`` to ``--out``. Not a test: without CUDA it says so and
exits 0. Usage (PYTHONPATH=src, with torch, transformers and peft importable)::

    python benchmarks/gpu/measure_memory.py --out "$OUT"
    python benchmarks/gpu/measure_memory.py --models smollm2-135m-instruct --out /tmp/m
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime as dt
import gc
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_train import gpu_name, versions  # one copy of the run metadata helpers

GIB = 1024**3
SHAPES = ((1024, 1), (512, 4))
MODELS = ("smollm2-135m-instruct", "qwen2.5-1.5b", "gpt-oss-20b")


def build_config(key: str, *, tiny: bool = False) -> Any:
    from transformers import GptOssConfig, LlamaConfig, Qwen2Config

    if key == "smollm2-135m-instruct":
        return LlamaConfig(hidden_size=576, num_hidden_layers=2 if tiny else 30,
                           num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                           intermediate_size=1536, vocab_size=49152,
                           max_position_embeddings=8192, tie_word_embeddings=True,
                           rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    if key == "qwen2.5-1.5b":
        return Qwen2Config(hidden_size=1536, num_hidden_layers=2 if tiny else 28,
                           num_attention_heads=12, num_key_value_heads=2,
                           intermediate_size=8960, vocab_size=151936,
                           max_position_embeddings=32768, tie_word_embeddings=True)
    if key == "gpt-oss-20b":
        # GptOssConfig()'s bare defaults are gpt-oss-120b (36 layers, 128 experts, ~117B);
        # gpt-oss-20b is the same config with 24 layers and 32 experts (4 active): 20.91B
        return GptOssConfig(num_hidden_layers=2 if tiny else 24,
                            num_local_experts=4 if tiny else 32, num_experts_per_tok=4)
    raise KeyError(key)


def measure_one(key: str, *, tiny: bool = False) -> dict[str, Any]:
    """Build ``key`` on the GPU in bf16, add LoRA, and measure each (seq_len, batch)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from psychohistory.backends.memory import KNOWN_SHAPES, plan_memory

    device = torch.device("cuda")
    torch.manual_seed(0)
    config = build_config(key, tiny=tiny)
    torch.cuda.reset_peak_memory_stats()
    free0, total = torch.cuda.mem_get_info()
    t0 = time.perf_counter()
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    weights_alloc = torch.cuda.memory_allocated()
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                             target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    after_lora_alloc = torch.cuda.memory_allocated()
    free1, _ = torch.cuda.mem_get_info()
    context_gib = ((total - free1) - torch.cuda.memory_reserved()) / GIB
    shape = KNOWN_SHAPES[key]
    record: dict[str, Any] = {
        "model": key, "architecture": type(model.get_base_model()).__name__,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "n_params": n_params, "planner_n_params": shape.n_params,
        "lora_trainable_params": trainable, "planner_lora_params": shape.lora_params(4),
        "weights_allocated_gib": weights_alloc / GIB,
        "after_lora_allocated_gib": after_lora_alloc / GIB,
        "cuda_context_and_other_gib": context_gib, "build_s": build_s,
        "tiny": tiny, "runs": [],
    }
    for seq_len, batch in SHAPES:
        run: dict[str, Any] = {"seq_len": seq_len, "batch_size": batch}
        plan = plan_memory(key, method="sft", lora_rank=4, seq_len=seq_len,
                           batch_size=batch, gpu="H100")
        run["plan_estimated_gib"] = plan.estimated_gib
        run["plan_breakdown"] = plan.breakdown
        run["plan_fits"] = plan.fits
        try:
            for attempt in ("warmup", "measured"):
                model.zero_grad(set_to_none=True)
                gc.collect()
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                ids = torch.randint(0, config.vocab_size, (batch, seq_len), device=device)
                t0 = time.perf_counter()
                out = model(input_ids=ids, labels=ids)
                out.loss.backward()
                torch.cuda.synchronize()
                elapsed = time.perf_counter() - t0
                peak_alloc = torch.cuda.max_memory_allocated()
                peak_res = torch.cuda.max_memory_reserved()
                free, _ = torch.cuda.mem_get_info()
                run[attempt] = {
                    "allocated_before_gib": before / GIB,
                    "max_memory_allocated_gib": peak_alloc / GIB,
                    "max_memory_reserved_gib": peak_res / GIB,
                    "device_used_after_gib": (total - free) / GIB,
                    "fwd_bwd_s": elapsed, "loss": float(out.loss),
                }
                del out, ids
            measured = run["measured"]
            est = plan.estimated_gib
            run["rel_err_vs_allocated"] = (est - measured["max_memory_allocated_gib"]) / \
                measured["max_memory_allocated_gib"]
            run["rel_err_vs_reserved"] = (est - measured["max_memory_reserved_gib"]) / \
                measured["max_memory_reserved_gib"]
            # the planner's "overhead" is meant to include the CUDA context: compare too
            with_ctx = measured["max_memory_reserved_gib"] + context_gib
            run["reserved_plus_context_gib"] = with_ctx
            run["rel_err_vs_reserved_plus_context"] = (est - with_ctx) / with_ctx
        except torch.cuda.OutOfMemoryError as exc:
            run["error"] = f"OOM: {str(exc).splitlines()[0]}"
            gc.collect()
            torch.cuda.empty_cache()
        record["runs"].append(run)
        print(json.dumps({"model": key, **{k: v for k, v in run.items()
                                            if k not in ("plan_breakdown",)}}), flush=True)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    record["free_at_start_gib"] = free0 / GIB
    record["total_gib"] = total / GIB
    return record


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| model | seq x batch | measured alloc GiB | measured reserved GiB | plan GiB | "
             "err vs alloc | err vs reserved |", "|---|---|---|---|---|---|---|"]
    for rec in results:
        if "error" in rec and not rec.get("runs"):
            lines.append(f"| {rec['model']} | - | {rec['error']} | | | | |")
            continue
        for run in rec["runs"]:
            if "measured" not in run:
                lines.append(f"| {rec['model']} | {run['seq_len']}x{run['batch_size']} | "
                             f"{run.get('error')} | | {run['plan_estimated_gib']:.2f} | | |")
                continue
            m = run["measured"]
            lines.append(
                f"| {rec['model']} | {run['seq_len']}x{run['batch_size']} | "
                f"{m['max_memory_allocated_gib']:.2f} | {m['max_memory_reserved_gib']:.2f} | "
                f"{run['plan_estimated_gib']:.2f} | {run['rel_err_vs_allocated']:+.1%} | "
                f"{run['rel_err_vs_reserved']:+.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--tiny", action="store_true", help="2-layer versions (a smoke run)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("measure_memory: torch is not installed; nothing to measure.")
        return 0
    if not torch.cuda.is_available():
        print("measure_memory: no CUDA GPU here; this script measures GPU memory and "
              "needs one. Nothing done.")
        return 0

    if args.one:  # child process: one model
        record = measure_one(args.one, tiny=args.tiny)
        Path(args.json).write_text(json.dumps(record, indent=2))
        return 0

    results = []
    for key in args.models:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            path = tmp.name
        cmd = [sys.executable, __file__, "--one", key, "--json", path] + (
            ["--tiny"] if args.tiny else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd)
        if proc.returncode == 0 and Path(path).stat().st_size:
            record = json.loads(Path(path).read_text())
        else:
            record = {"model": key, "error": f"subprocess exited {proc.returncode}", "runs": []}
        record["wall_s"] = time.perf_counter() - t0
        results.append(record)
        Path(path).unlink(missing_ok=True)

    payload = {
        "what": "peak GPU memory of one LoRA (r=4, alpha 8, all-linear) forward+backward, "
                "bf16, random init, labels=input_ids; vs plan_memory(method='sft', gpu='H100')",
        "card": gpu_name(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "versions": versions(), "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_planner_measurements.json").write_text(json.dumps(payload, indent=2))
    print(table(results))
    print(f"wrote {out / 'memory_planner_measurements.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
