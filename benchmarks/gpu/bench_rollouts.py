#!/usr/bin/env python
"""GRPO step time on one GPU: bare ``trl.GRPOTrainer`` against ``ph.Trainer`` with the engine.

In one process, for each model shape (random init of SmolLM2-135M's and Qwen2.5-1.5B's exact
shapes, bf16, the same seed so every run starts from the same weights) and each group size
(16 and 64 completions x 256 tokens, one prompt a step, the group is the step's batch):

* ``trl``: bare ``trl.GRPOTrainer`` with its defaults (transformers ``generate``, gradient
  checkpointing on) and peft LoRA r4 on all linear layers;
* ``engine``: ``ph.Trainer`` with its defaults, which on CUDA means the rollout engine
  (``rollout="auto"``) and the memory planner's choice of gradient checkpointing;
* ``raw``: plain ``model.generate`` of the same batch (no LoRA, no training) with the dynamic
  cache and with ``cache_implementation="static"`` (transformers compiles it), the ceiling the
  engine's in-step generation is compared with.

Both trainers get the same prompts (``load_dataset("historical")`` through ``to_grpo_dataset``,
seed 0) and the same rewards (calibration, diversity, format). Recorded per run: s/step
(median and all steps after the first, CUDA-synchronised), completion tokens/s, where each
step's time goes (generation, rewards, the training forward and log-prob passes, backward,
optimizer; each wrapped with a CUDA sync), the engine's own prefill/decode timings, peak
``max_memory_allocated``/``max_memory_reserved`` and the memory planner's estimate for the
same settings. JSON and markdown go to ``--out`` after every run, so a timeout keeps what was
measured. ``--deadline`` skips runs that would not finish in time.

Usage (PYTHONPATH=src; ``--smoke-cpu`` checks the script on a 2-layer model without a GPU)::

    python benchmarks/gpu/bench_rollouts.py --tokenizer .carry/smollm2-tokenizer --out "$OUT"
    python benchmarks/gpu/bench_rollouts.py --render a.json b.json --out benchmarks/results
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import argparse
import contextlib
import copy
import datetime as dt
import gc
import json
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

# one copy of the run metadata for the GPU scripts (this folder is on sys.path when run)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import gpu_name, versions

GIB = 1024**3
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKENIZER = ROOT / ".carry" / "smollm2-tokenizer"
REWARDS = ["calibration", "diversity", "format"]
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
                     "num_hidden_layers": 30, "num_attention_heads": 9,
                     "num_key_value_heads": 3, "vocab_size": 49152, "rope_theta": 100000.0,
                     "rms_norm_eps": 1e-5, "max_position_embeddings": 8192,
                     "planner": "smollm2-135m-instruct"},
    "qwen2.5-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                     "num_hidden_layers": 28, "num_attention_heads": 12,
                     "num_key_value_heads": 2, "vocab_size": 151936, "rope_theta": 1000000.0,
                     "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
                     "planner": "qwen2.5-1.5b"},
}
# rough seconds a run takes on an H200, for --deadline
COST = {"engine": 45, "trl": 110, "raw": 80}
START = time.perf_counter()


# ------------------------------------------------------------------ timing


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Profile:
    """Seconds per part of the current optimizer step (each part CUDA-synchronised)."""

    current: ClassVar[dict[str, float]] = defaultdict(float)
    steps: ClassVar[list[dict[str, float]]] = []
    ends: ClassVar[list[float]] = []
    begin: ClassVar[float] = 0.0

    @classmethod
    def reset(cls) -> None:
        cls.current, cls.steps, cls.ends = defaultdict(float), [], []

    @classmethod
    @contextlib.contextmanager
    def part(cls, name: str) -> Any:
        sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync()
            cls.current[name] += time.perf_counter() - t0


class StepTimer:
    """A transformers callback: step ends (synchronised) and the optimizer's time."""

    _opt: float = 0.0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        sync()
        Profile.reset()
        Profile.begin = time.perf_counter()

    def on_pre_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        sync()
        self._opt = time.perf_counter()

    def on_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        sync()
        Profile.current["optimizer"] += time.perf_counter() - self._opt

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        sync()
        Profile.ends.append(time.perf_counter())
        Profile.steps.append(dict(Profile.current))
        Profile.current = defaultdict(float)


def instrument() -> None:
    """Wrap TRL's step parts once (class level: bare TRL and ph.Trainer alike)."""
    import accelerate
    import torch
    from trl import GRPOTrainer

    if getattr(GRPOTrainer, "_bench_wrapped", False):
        return

    def wrap(cls: Any, name: str, label: Any) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with Profile.part(label() if callable(label) else label):
                return original(self, *args, **kwargs)

        setattr(cls, name, wrapper)

    wrap(GRPOTrainer, "_generate", "generation")
    wrap(GRPOTrainer, "_calculate_rewards", "rewards")
    wrap(GRPOTrainer, "_get_per_token_logps_and_entropies",
         lambda: "training forward" if torch.is_grad_enabled() else "no-grad log-prob passes")
    wrap(accelerate.Accelerator, "backward", "backward")
    GRPOTrainer._bench_wrapped = True  # type: ignore[attr-defined]


# ------------------------------------------------------------------ setup


def model_config(shape: str, tokenizer: Any, *, smoke: bool) -> Any:
    from transformers import AutoConfig

    spec = dict(SHAPES[shape])
    spec.pop("planner")
    model_type = spec.pop("model_type")
    if smoke:
        spec.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2)
    return AutoConfig.for_model(model_type, tie_word_embeddings=True,
                                bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id, **spec)


def fresh_model(config: Any, *, smoke: bool) -> Any:
    """The same random weights every time (seed 0), bf16 on the GPU (fp32 on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cpu" if smoke else "cuda"
    torch.manual_seed(0)
    # a copy: trainers set use_cache=False on the config they train, which would leave a
    # later run's generate without a KV cache
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            copy.deepcopy(config), dtype=torch.float32 if smoke else torch.bfloat16)
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def cleanup() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"max_memory_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            "max_memory_reserved_gib": torch.cuda.max_memory_reserved() / GIB}


# ------------------------------------------------------------------ runs


def summarise_steps(record: dict[str, Any], group: int, log_history: list[dict[str, Any]]) -> None:
    durations = [b - a for a, b in zip([Profile.begin, *Profile.ends[:-1]], Profile.ends,
                                       strict=True)]
    measured = durations[1:]
    record["step_s_all"] = durations
    if measured:
        record["s_per_step_median"] = statistics.median(measured)
        record["s_per_step_mean"] = statistics.fmean(measured)
    logs = [e for e in log_history if "loss" in e and "step" in e]
    lengths = [e.get("completions/mean_length") for e in logs]
    record["completion_mean_length_by_step"] = lengths
    tokens = [n * group for n in lengths[1:] if n is not None]
    if measured and len(tokens) == len(measured):
        record["completion_tokens_per_s"] = sum(tokens) / sum(measured)
    parts = Profile.steps[1:]
    if parts:
        names = sorted({k for p in parts for k in p})
        record["profile_median_s"] = {k: statistics.median(p.get(k, 0.0) for p in parts)
                                      for k in names}
        if measured:
            record["profile_median_s"]["other"] = statistics.median(
                d - sum(p.values()) for d, p in zip(measured, parts, strict=True))
    for key in ("rollout/prefill_s", "rollout/decode_s", "rollout/total_s",
                "rollout/tokens_per_s", "rollout/cuda_graph", "rollout/sync_s"):
        values = [e[key] for e in logs[1:] if key in e]
        if values:
            record[key.replace("/", "_") + "_median"] = statistics.median(values)
    record["rewards_by_step"] = [e.get("reward") for e in logs]


def run_trl(config: Any, tokenizer: Any, cases: list[Any], *, group: int, steps: int,
            completion: int, smoke: bool, work: Path) -> dict[str, Any]:
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    import psychohistory as ph
    from psychohistory.training.data import to_grpo_dataset
    from psychohistory.training.trainer import build_rewards

    model = fresh_model(config, smoke=smoke)
    rewards = build_rewards(REWARDS, ph.Trainer(model, tokenizer=tokenizer).build_matcher())
    args = GRPOConfig(output_dir=str(work / "trl"), max_steps=steps, num_generations=group,
                      per_device_train_batch_size=group, max_completion_length=completion,
                      bf16=not smoke, use_cpu=smoke, logging_steps=1, save_strategy="no",
                      report_to="none", seed=0)
    peft = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    grpo = GRPOTrainer(model=model, reward_funcs=list(rewards), args=args,
                       train_dataset=to_grpo_dataset(cases), processing_class=tokenizer,
                       peft_config=peft)
    grpo.train()
    record: dict[str, Any] = {"gradient_checkpointing": bool(args.gradient_checkpointing),
                              "learning_rate": args.learning_rate}
    summarise_steps(record, group, grpo.state.log_history)
    del grpo, model
    return record


def run_engine(config: Any, tokenizer: Any, cases: list[Any], *, group: int, steps: int,
               completion: int, smoke: bool, work: Path) -> dict[str, Any]:
    import psychohistory as ph
    from psychohistory.training.config import TrainerConfig

    model = fresh_model(config, smoke=smoke)
    settings = TrainerConfig(output_dir=str(work / "engine"), max_steps=steps,
                             num_generations=group, per_device_train_batch_size=group,
                             max_completion_length=completion, save_steps=10**6,
                             logging_steps=1, rollout="engine" if smoke else "auto")
    result = ph.Trainer(model, tokenizer=tokenizer, rewards=REWARDS, config=settings).fit(cases)
    meta = json.loads((Path(result.adapter_path) / "psychohistory_train.json").read_text())
    record: dict[str, Any] = {"gradient_checkpointing": meta.get("gradient_checkpointing"),
                              "generation": meta.get("generation"),
                              "learning_rate": settings.learning_rate}
    summarise_steps(record, group, result.log_history)
    del result, model
    return record


def run_raw(config: Any, tokenizer: Any, cases: list[Any], *, group: int, completion: int,
            smoke: bool, caches: list[str]) -> dict[str, Any]:
    """Plain ``generate`` of one prompt x group, every sequence to ``completion`` tokens."""
    import torch

    from psychohistory.training.prompts import build_messages

    model = fresh_model(config, smoke=smoke).eval()
    prompt = tokenizer.apply_chat_template(build_messages(cases[0].seed, cases[0].context),
                                           add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    ids = torch.tensor([prompt] * group, device=model.device)
    record: dict[str, Any] = {"prompt_tokens": len(prompt)}
    for cache in caches:
        options: dict[str, Any] = {"cache_implementation": cache} if cache != "dynamic" else {}
        times = []
        try:
            for _ in range(2):  # the first call warms up (and compiles, for static)
                sync()
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=completion, min_new_tokens=completion,
                                         do_sample=True, top_k=0, **options)
                sync()
                times.append(time.perf_counter() - t0)
            new = out.shape[1] - ids.shape[1]
            best = statistics.median(times[1:])  # one timed call: the lease is short
            record[cache] = {"first_call_s": times[0], "s_median": best, "new_tokens": new,
                             "tokens_per_s": group * new / best, "all_s": times}
        except Exception as exc:
            traceback.print_exc()
            record[cache] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(f"   raw {cache}: {record[cache]}", flush=True)
    del model
    return record


def planner_estimate(shape: str, *, group: int, completion: int, checkpointing: bool | None,
                     engine: bool, context_gib: float) -> dict[str, Any]:
    import torch

    from psychohistory.backends.base import PROMPT_TOKENS
    from psychohistory.backends.memory import plan_memory

    total = torch.cuda.get_device_properties(0).total_memory / GIB if \
        torch.cuda.is_available() else 80.0
    plan = plan_memory(SHAPES[shape]["planner"], method="grpo", lora_rank=4, gpu="this GPU",
                       gpu_gib=total * 0.97, seq_len=PROMPT_TOKENS + completion,
                       batch_size=group, gradient_checkpointing=checkpointing,
                       rollout_engine=engine)
    return {"estimated_gib": plan.estimated_gib, "breakdown": plan.breakdown,
            "gradient_checkpointing": plan.gradient_checkpointing, "context_gib": context_gib}


# ------------------------------------------------------------------ report


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def planner_now(r: dict[str, Any]) -> float | None:
    """The current planner's estimate for a run's settings (the JSON keeps the run-time one)."""
    from psychohistory.backends.base import PROMPT_TOKENS
    from psychohistory.backends.memory import plan_memory

    if r.get("gradient_checkpointing") is None:
        return None
    return plan_memory(SHAPES[r["shape"]]["planner"], method="grpo", lora_rank=4, gpu="H200",
                       seq_len=PROMPT_TOKENS + r["completion"], batch_size=r["group"],
                       gradient_checkpointing=r["gradient_checkpointing"],
                       rollout_engine=r["run"] == "engine").estimated_gib


def generation_tokens_per_s(r: dict[str, Any]) -> float | None:
    if r.get("rollout_total_s_median"):
        return r["group"] * r["completion"] / r["rollout_total_s_median"]
    generation = r.get("profile_median_s", {}).get("generation")
    return r["group"] * r["completion"] / generation if generation else None


def table(results: list[dict[str, Any]], context: float = 0.0) -> str:
    lines = ["| shape | group x tokens | trainer | s/step (median) | completion tok/s "
             "| speed-up | in-step generation tok/s | raw static tok/s | gen / raw "
             "| grad. ckpt | peak allocated + ctx GiB | peak reserved + ctx GiB "
             "| planner GiB | allocated / planner |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_key = {(r["shape"], r["group"], r["run"]): r for r in results}
    for r in results:
        if r["run"] == "raw":
            continue
        key = (r["shape"], r["group"])
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['shape']} | {r['group']} x {r['completion']} | {r['run']} | "
                         f"{r.get('error') or r.get('skipped')} ||||||||||")
            continue
        base = by_key.get((*key, "trl"), {})
        speedup = (base.get("s_per_step_median") / r["s_per_step_median"]
                   if base.get("s_per_step_median") and r.get("s_per_step_median") else None)
        raw_record = by_key.get((*key, "raw"), {})
        raw = None if raw_record.get("invalid") else \
            raw_record.get("static", {}).get("tokens_per_s")
        gen = generation_tokens_per_s(r)
        allocated = r.get("max_memory_allocated_gib")
        reserved = r.get("max_memory_reserved_gib")
        plan = planner_now(r)
        lines.append(
            f"| {r['shape']} | {r['group']} x {r['completion']} | {r['run']} | "
            f"{fmt(r.get('s_per_step_median'), '.2f')} | "
            f"{fmt(r.get('completion_tokens_per_s'), '.0f')} | "
            f"{fmt(speedup, '.1f') + 'x' if speedup else '-'} | {fmt(gen, '.0f')} | "
            f"{fmt(raw, '.0f')} | {fmt(gen / raw if gen and raw else None, '.0%')} | "
            f"{'on' if r.get('gradient_checkpointing') else 'off'} | "
            f"{fmt(allocated + context if allocated else None, '.1f')} | "
            f"{fmt(reserved + context if reserved else None, '.1f')} | {fmt(plan, '.1f')} | "
            f"{fmt((allocated + context) / plan if allocated and plan else None, '.2f')} |")
    return "\n".join(lines)


def profile_table(results: list[dict[str, Any]]) -> str:
    names = ["generation", "rewards", "training forward", "no-grad log-prob passes", "backward",
             "optimizer", "other"]
    lines = ["| shape | group | trainer | step | " + " | ".join(names)
             + " | engine prefill | engine decode |",
             "|---|---|---|---|" + "---|" * (len(names) + 2)]
    for r in results:
        prof = r.get("profile_median_s")
        if not prof:
            continue
        lines.append(f"| {r['shape']} | {r['group']} | {r['run']} | "
                     f"{fmt(r.get('s_per_step_median'), '.2f')} | "
                     + " | ".join(fmt(prof.get(n), ".3f") for n in names) + " | "
                     f"{fmt(r.get('rollout_prefill_s_median'), '.3f')} | "
                     f"{fmt(r.get('rollout_decode_s_median'), '.3f')} |")
    return "\n".join(lines)


def raw_lines(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        if r["run"] != "raw":
            continue
        note = f" - NOT VALID: {r['invalid']}" if r.get("invalid") else ""
        parts = ", ".join(f"{c}: {fmt(r[c].get('tokens_per_s'), '.0f')} tok/s "
                          f"({fmt(r[c].get('s_median'), '.2f')} s)" for c in ("dynamic", "static")
                          if isinstance(r.get(c), dict))
        out.append(f"- raw `generate`, {r['shape']}, {r['group']} x {r['completion']}: "
                   f"{parts}{note}")
    return out


def markdown(payloads: list[dict[str, Any]]) -> str:
    out = ["# GRPO rollouts on one GPU: bare TRL against ph.Trainer with the rollout engine", "",
           "- models: random init (seed 0, bf16, tied embeddings) of SmolLM2-135M's and "
           "Qwen2.5-1.5B's exact shapes, SmolLM2's tokenizer; every run of a call rebuilds "
           "the same weights; one prompt a step (`load_dataset('historical')`, seed 0; its "
           "chat-templated prompts are ~490 tokens), the group is the step's batch; rewards "
           "calibration, diversity, format; a random model never ends a completion early, so "
           "every completion has 256 tokens",
           "- `trl`: bare `trl.GRPOTrainer` with its defaults (transformers `generate`, "
           "gradient checkpointing on, lr 1e-6) and peft LoRA r4 alpha 8 on all linear layers; "
           "`engine`: `ph.Trainer` with its defaults (the rollout engine, LoRA r4 alpha 8, "
           "lr 5e-5, the planner's choice of gradient checkpointing)",
           "- s/step: wall time between optimizer steps (CUDA-synchronised), median over the "
           "5 steps after the first; completion tok/s over the same steps; in-step generation "
           "tok/s: the group's tokens over the engine's whole rollout (weights refresh, "
           "tokenization, prefill, decode, copy back; TRL: over `_generate`)",
           "- memory: peak `max_memory_allocated` / `max_memory_reserved` over the run plus the "
           "CUDA context measured at start; planner: `plan_memory` as the Trainer calls it "
           "(450 + 256 tokens, the run's group and checkpointing), by the planner as it is now",
           ""]
    for p in payloads:
        v = p["versions"]
        out += [f"## {p.get('title', p['date'])}", "",
                f"- card {p['card']}; date (UTC) {p['date']}",
                f"- command: `{p['command']}`",
                "- versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)), ""]
        out += [table(p["results"], p.get("cuda_context_gib", 0.0)), ""]
        out += [*raw_lines(p["results"]), ""]
        out += ["Where a step's time goes (median seconds; each part CUDA-synchronised; "
                "`other` is the rest: data, advantages, logging):", "",
                profile_table(p["results"]), ""]
        out += [f"- {n}" for n in p.get("notes", [])] + [""]
    return "\n".join(out)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    parser.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--groups", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--runs", nargs="+", default=["engine", "raw", "trl"],
                        choices=["engine", "raw", "trl"])
    parser.add_argument("--raw-groups", nargs="+", type=int, default=[64])
    parser.add_argument("--raw-caches", nargs="+", default=["dynamic", "static"])
    parser.add_argument("--steps", type=int, default=6, help="the first is warm-up")
    parser.add_argument("--completion-length", type=int, default=256)
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds from start after which no run starts that would not end")
    parser.add_argument("--name", default="gpu_rollouts")
    parser.add_argument("--smoke-cpu", action="store_true")
    parser.add_argument("--render", nargs="+", help="merge these JSON files into --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        payloads = []
        for path in args.render:
            data = json.loads(Path(path).read_text())
            payloads += data.get("runs", [data])
        (out / f"{args.name}.json").write_text(json.dumps({"runs": payloads}, indent=2,
                                                          default=str))
        (out / f"{args.name}.md").write_text(markdown(payloads))
        for p in payloads:
            print(table(p["results"], p.get("cuda_context_gib", 0.0)))
        return 0

    import torch
    import transformers.trainer

    if not torch.cuda.is_available() and not args.smoke_cpu:
        print("bench_rollouts: no CUDA GPU here; nothing done (--smoke-cpu checks the script).")
        return 0
    from transformers import AutoTokenizer

    import psychohistory as ph

    transformers.trainer.DEFAULT_CALLBACKS.append(StepTimer)  # type: ignore[arg-type]
    instrument()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cases = ph.load_dataset("historical")
    context = 0.0
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
        free, total = torch.cuda.mem_get_info()
        context = (total - free - torch.cuda.memory_reserved()) / GIB
    payload: dict[str, Any] = {
        "card": gpu_name() if torch.cuda.is_available() else "cpu (smoke)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "versions": versions(), "cuda_context_gib": context, "results": []}

    def save() -> None:
        (out / f"{args.name}.json").write_text(json.dumps(payload, indent=2, default=str))
        (out / f"{args.name}.md").write_text(markdown([payload]))

    for shape in args.shapes:
        config = model_config(shape, tokenizer, smoke=args.smoke_cpu)
        plan: list[tuple[str, int]] = []
        for run in args.runs:
            for group in (args.raw_groups if run == "raw" else args.groups):
                plan.append((run, group))
        for run, group in plan:
            record: dict[str, Any] = {"shape": shape, "run": run, "group": group,
                                      "completion": args.completion_length}
            elapsed = time.perf_counter() - START
            if args.deadline and elapsed + COST[run] * (3 if shape.startswith("qwen") else 2) \
                    / 2 > args.deadline:
                record["skipped"] = f"deadline ({elapsed:.0f} s elapsed)"
                payload["results"].append(record)
                save()
                print(f"== {shape} {run} {group}: skipped", flush=True)
                continue
            print(f"== {shape} {run} {group} (t={elapsed:.0f}s)", flush=True)
            cleanup()
            t0 = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(prefix=f"bench_{run}_") as tmp:
                    common = {"group": group, "completion": args.completion_length,
                              "smoke": args.smoke_cpu}
                    if run == "trl":
                        record.update(run_trl(config, tokenizer, cases, steps=args.steps,
                                              work=Path(tmp), **common))
                    elif run == "engine":
                        record.update(run_engine(config, tokenizer, cases, steps=args.steps,
                                                 work=Path(tmp), **common))
                    else:
                        record.update(run_raw(config, tokenizer, cases, caches=args.raw_caches,
                                              **common))
                record.update(memory())
                if run != "raw":
                    record["planner"] = planner_estimate(
                        shape, group=group, completion=args.completion_length,
                        checkpointing=record.get("gradient_checkpointing"),
                        engine=run == "engine", context_gib=context)
            except Exception as exc:
                traceback.print_exc()
                record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            record["wall_s"] = time.perf_counter() - t0
            payload["results"].append(record)
            save()
            brief = {k: v for k, v in record.items() if not isinstance(v, list | dict)}
            print(json.dumps(brief, default=str), flush=True)
            print("   profile:", record.get("profile_median_s"), flush=True)
    print(table(payload["results"], context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
