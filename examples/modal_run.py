"""Train on Modal GPUs: ``modal run examples/modal_run.py`` (needs ``pip install 'psychohistory[modal]'``).

    modal run examples/modal_run.py                                  # GRPO on an A10G
    modal run examples/modal_run.py --kind sft+grpo --max-steps 100  # SFT, then GRPO on top
    modal run examples/modal_run.py --cases my_cases.jsonl --cases-name mine
    PSYCHOHISTORY_MODAL_GPU=H100 modal run examples/modal_run.py --model Qwen/Qwen2.5-1.5B-Instruct

The app comes from ``psychohistory.backends.modal_app.build_app``: an image with
``psychohistory[train]``, the volume ``psychohistory-data`` mounted at ``/data``, the secret
``huggingface-secret`` (an ``HF_TOKEN`` for gated models) and one GPU function per kind. The
cases travel inside the job and are written to the volume; checkpoints land there too:

    /data/cases/<cases-name>.jsonl
    /data/models/sft/checkpoint-N, /data/models/sft/final
    /data/models/grpo/checkpoint-N, /data/models/grpo/final

``--cases volume`` reuses the cases file already on the volume. The memory planner runs here,
before anything starts, and refuses a run that cannot fit the GPU. ``--tiny`` (a random-init
tiny model saved to a local temp folder) is for offline tests that replace ``call_remote``
with the function's ``.local``; on Modal, name a model the image can load.

Importing this file builds the app without any network access.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from psychohistory.backends.modal_app import DEFAULT_GPU, build_app

GPU = os.environ.get("PSYCHOHISTORY_MODAL_GPU", DEFAULT_GPU)
app, parts = build_app(gpu=GPU)


def call_remote(kind: str, job: dict[str, Any]) -> dict[str, Any]:
    """The network boundary: run the GPU function on Modal and wait for its result."""
    return dict(parts[kind].remote(job))


def tiny_model_path(folder: str) -> str:
    """Save a random-init tiny llama (SmolLM2's tokenizer) where a model path is needed."""
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_local_cases(cases: str) -> list[dict[str, Any]]:
    """The cases to upload with the job ([] keeps the file already on the volume)."""
    import psychohistory as ph

    if cases == "volume":
        return []
    bundled = Path(cases).suffix != ".jsonl"
    return [c.model_dump() for c in ph.load_dataset(cases, split="train" if bundled else None)]


def plan_or_refuse(model: str, *, method: str, lora_rank: int, tokens: int, batch: int) -> None:
    """The memory planner, before any container starts (MemoryPlanError when it cannot fit)."""
    from psychohistory.backends.base import PROMPT_TOKENS
    from psychohistory.backends.memory import plan_memory, require_fit

    plan = require_fit(plan_memory(model, method=method, lora_rank=lora_rank, gpu=GPU,
                                   seq_len=PROMPT_TOKENS + tokens, batch_size=batch))
    print("memory plan:", plan.summary())


@app.local_entrypoint()
def main(kind: str = "grpo", model: str = "smollm2-135m-instruct", cases: str = "historical",
         cases_name: str = "cases", max_steps: int = 50, resume: bool = False,
         tiny: bool = False, out: str = "") -> dict[str, Any]:
    """Run ``kind`` ("sft", "grpo" or "sft+grpo") on Modal; results are printed (and written
    to ``out``/modal_results.json when ``--out`` is given)."""
    from psychohistory.training.config import SFTSettings, TrainerConfig

    if kind not in ("sft", "grpo", "sft+grpo"):
        raise SystemExit(f"--kind must be sft, grpo or sft+grpo, got {kind!r}")
    with tempfile.TemporaryDirectory(prefix="psychohistory-tiny-") as tmp:
        if tiny:
            model = tiny_model_path(tmp)
            uploaded = load_local_cases("synthetic")[:2]
            sft_settings = SFTSettings(max_steps=1, per_device_train_batch_size=2, lora_r=4,
                                       lora_alpha=8, max_length=256, save_steps=1)
            grpo_config = TrainerConfig(max_steps=1, num_generations=2,
                                        per_device_train_batch_size=2, max_completion_length=8,
                                        save_steps=1)
        else:
            uploaded = load_local_cases(cases)
            sft_settings = SFTSettings(max_steps=max_steps, max_length=1024, save_steps=25)
            grpo_config = TrainerConfig(max_steps=max_steps, max_completion_length=256,
                                        save_steps=10)

        results: dict[str, Any] = {}
        if kind in ("sft", "sft+grpo"):
            plan_or_refuse(model, method="sft", lora_rank=sft_settings.lora_r,
                           tokens=sft_settings.max_length,
                           batch=sft_settings.per_device_train_batch_size)
            settings = dataclasses.asdict(sft_settings)
            settings.pop("output_dir")  # the function writes to /data/models/sft
            results["sft"] = call_remote("sft", {
                "kind": "sft", "model": model, "settings": settings, "cases": uploaded,
                "cases_name": cases_name, "resume": resume})
            print(f"sft: {results['sft']['global_step']} steps -> {results['sft']['adapter_path']}")
            uploaded = []  # on the volume now: GRPO reads it from there
        if kind in ("grpo", "sft+grpo"):
            plan_or_refuse(model, method="grpo", lora_rank=grpo_config.lora_r,
                           tokens=grpo_config.max_completion_length,
                           batch=grpo_config.per_device_train_batch_size)
            config = grpo_config.to_dict()
            config.pop("output_dir")  # the function writes to /data/models/grpo
            results["grpo"] = call_remote("grpo", {
                "kind": "grpo", "cases": uploaded, "cases_name": cases_name, "resume": resume,
                "trainer": {
                    "model": model,
                    "rewards": ["calibration", "sharpness", "diversity", "format"],
                    "weights": None, "matcher": None, "config": config,
                    # "volume": merge /data/models/sft/final before training
                    "sft_adapter": "volume" if kind == "sft+grpo" else None}})
            print(f"grpo: {results['grpo']['global_step']} steps -> "
                  f"{results['grpo']['adapter_path']}")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        target = Path(out) / "modal_results.json"
        target.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print("wrote", target)
    return results
