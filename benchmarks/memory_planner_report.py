"""Compare the memory planner with the peaks measured on the GPU; write memory_planner.md.

    python benchmarks/memory_planner_report.py

Reads benchmarks/results/memory_planner_measurements.json (written on the device by
benchmarks/gpu/measure_memory.py) and needs no GPU itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from psychohistory.backends.memory import plan_memory

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    data = json.loads((RESULTS / "memory_planner_measurements.json").read_text())
    rows = []
    for result in data["results"]:
        context = result["cuda_context_and_other_gib"]
        for run in result["runs"]:
            m = run["measured"]
            peak = m["max_memory_reserved_gib"] + context
            plan = plan_memory(result["model"], method="sft", lora_rank=4, seq_len=run["seq_len"],
                               batch_size=run["batch_size"], gpu="H100")
            rows.append(f"| {result['model']} | {run['seq_len']} x {run['batch_size']} | "
                        f"{m['max_memory_allocated_gib']:.2f} | {m['max_memory_reserved_gib']:.2f} | "
                        f"{peak:.2f} | {plan.estimated_gib:.2f} | "
                        f"{(plan.estimated_gib - peak) / peak:+.1%} |")
    refusal = plan_memory("gpt-oss-20b", method="grpo", lora_rank=4, gpu="A10G").summary()
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    text = f"""# Memory planner calibration

Regenerate with `python benchmarks/memory_planner_report.py` (no GPU needed).

Measured on the device: one LoRA (r4, alpha 8, all-linear) forward and backward in bf16 at
random init, without gradient checkpointing (`benchmarks/gpu/measure_memory.py`).

- Card: {data['card']} (the lease named an H100 kind and was served an H200; memory use does
  not depend on which)
- Date: {data['date']}; command: `{data['command']}` (with the wheels on PYTHONPATH, see
  `gpu_training.md`)
- Versions: {versions}
- Raw numbers: `memory_planner_measurements.json`

"Measured peak" = the allocator's peak reservation + the CUDA context
({data['results'][0]['cuda_context_and_other_gib']:.2f} GiB on the card): what a run needs free
on the GPU. "Planner" = `plan_memory(shape, method="sft", lora_rank=4, seq_len, batch_size)`.

| shape | tokens (seq x batch) | peak allocated GiB | peak reserved GiB | measured peak GiB | planner GiB | error |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

The two per-token constants (activation bytes per layer from the hidden and intermediate sizes,
and bytes per vocabulary entry for the logits) were fitted on the SmolLM2-135M and Qwen2.5-1.5B
rows; GPT-OSS-20B (mixture of experts, 20.9 B parameters) was held out. LoRA parameter counts
match peft's exactly for all three (peft's `all-linear` skips GPT-OSS's fused experts and its
router). GRPO adds the generation KV cache, which is not separately calibrated here.

The planner refuses GPT-OSS-20B LoRA on an A10G before anything starts:

```
$ psychohistory plan gpt-oss-20b --gpu A10G
{refusal}
```
"""
    (RESULTS / "memory_planner.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
