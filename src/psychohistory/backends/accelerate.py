"""The accelerate backend: multi-GPU training on one host through ``accelerate launch``.

The job (the Trainer's settings and the cases) is written to the output folder, then
``accelerate launch --num_processes N --module psychohistory.backends.worker JOB`` starts one
process per GPU; TRL's trainers are accelerate-native, so DDP needs nothing more. FSDP or
DeepSpeed are a ``strategy`` away (or any ``accelerate`` config file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psychohistory.backends.base import check_grpo_memory, check_sft_memory
from psychohistory.backends.worker import result_path, write_job
from psychohistory.cases import Case
from psychohistory.errors import ConfigError

STRATEGIES = ("ddp", "fsdp", "deepspeed")
# keep NVLink multicast off: on shared hosts it can take the GPUs down (see docs/backends.md)
SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
            "NVSHMEM_DISABLE_NVLS": "1"}


class AccelerateBackend:
    """Runs a job on ``num_processes`` GPUs of this host (``cpu=True``: processes on the CPU)."""

    name = "accelerate"

    def __init__(self, *, num_processes: int | None = None, strategy: str = "ddp",
                 config_file: str | None = None, cpu: bool = False,
                 mixed_precision: str | None = None, extra_args: Sequence[str] = ()) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.num_processes = num_processes
        self.strategy = strategy
        self.config_file = config_file
        self.cpu = cpu
        self.mixed_precision = mixed_precision
        self.extra_args = list(extra_args)

    def processes(self) -> int:
        if self.num_processes is not None:
            return self.num_processes
        if self.cpu:
            return 1
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError("no CUDA GPU found: pass num_processes= with cpu=True, or use "
                              "backend='local'")
        return count

    def command(self, job: Path) -> list[str]:
        cmd = [sys.executable, "-m", "accelerate.commands.launch",
               "--num_processes", str(self.processes()), "--num_machines", "1"]
        if self.config_file:
            cmd += ["--config_file", self.config_file]
        if self.cpu:
            cmd += ["--cpu"]
        else:
            cmd += ["--mixed_precision", self.mixed_precision or "bf16"]
        if self.strategy == "fsdp":
            cmd += ["--use_fsdp"]
        elif self.strategy == "deepspeed":
            cmd += ["--use_deepspeed"]
        elif self.processes() > 1:
            cmd += ["--multi_gpu"]
        return [*cmd, *self.extra_args, "--module", "psychohistory.backends.worker", str(job)]

    def _launch(self, job: Path) -> dict[str, Any]:
        env = {**os.environ, **SAFE_ENV}
        if not self.cpu and self.num_processes is not None and "CUDA_VISIBLE_DEVICES" not in env:
            # one GPU per process: a process that sees more GPUs would fall back to
            # DataParallel, which TRL refuses
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(self.num_processes))
        done = subprocess.run(self.command(job), env=env)
        if done.returncode != 0:
            raise RuntimeError(f"accelerate launch failed with exit code {done.returncode} "
                               f"(job {job}); the log above says why")
        return dict(json.loads(result_path(job).read_text()))

    def train_grpo(self, trainer: Any, cases: Sequence[Case], *, resume: bool = False) -> Any:
        from psychohistory.training.trainer import TrainResult

        if not isinstance(trainer.model, str):
            raise ConfigError("the accelerate backend starts new processes: pass the model as "
                              "a path or name, not a loaded object")
        check_grpo_memory(trainer)
        job = write_job(Path(trainer.config.output_dir) / "psychohistory_job.pkl",
                        {"kind": "grpo", "trainer": trainer, "cases": list(cases),
                         "resume": resume})
        return TrainResult(**self._launch(job))

    def train_sft(self, model: Any, cases: Sequence[Case], settings: Any, *,
                  tokenizer: Any = None, resume: bool = False) -> Any:
        from psychohistory.training.trainer import TrainResult

        if not isinstance(model, str):
            raise ConfigError("the accelerate backend needs the model as a path or name")
        check_sft_memory(model, settings)
        job = write_job(Path(settings.output_dir) / "psychohistory_job.pkl",
                        {"kind": "sft", "model": model, "settings": settings,
                         "cases": list(cases), "resume": resume})
        return TrainResult(**self._launch(job))
