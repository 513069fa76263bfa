"""The Modal backend: training on Modal GPUs (A10G by default), checkpoints on a volume.

The memory planner runs first with the chosen GPU, so a run that cannot fit (GPT-OSS-20B
LoRA on an A10G) is refused here, before a container starts or money is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psychohistory.backends.base import check_grpo_memory, check_sft_memory
from psychohistory.backends.modal_app import DEFAULT_GPU, DEFAULT_TIMEOUT, build_app
from psychohistory.cases import Case
from psychohistory.errors import ConfigError


class ModalBackend:
    """Runs SFT and GRPO as Modal functions on ``gpu`` (any Modal GPU string)."""

    name = "modal"

    def __init__(self, *, gpu: str = DEFAULT_GPU, timeout: int = DEFAULT_TIMEOUT,
                 cases_name: str = "cases", package: str = "psychohistory[train]") -> None:
        try:
            import modal  # noqa: F401
        except ImportError as exc:
            raise ConfigError("the modal backend needs modal: pip install "
                              "'psychohistory[modal]'") from exc
        self.gpu = gpu
        self.timeout = timeout
        self.cases_name = cases_name
        self.app, self.parts = build_app(gpu=gpu, timeout=timeout, package=package)

    def grpo_job(self, trainer: Any, cases: Sequence[Case], *, resume: bool) -> dict[str, Any]:
        if not isinstance(trainer.model, str):
            raise ConfigError("the modal backend runs remotely: pass the model as a hub name "
                              "or a path inside the image, not a loaded object")
        rewards = []
        for reward in trainer.rewards:
            if not isinstance(reward, str):
                raise ConfigError("the modal backend takes rewards by registered name (install "
                                  f"plugins in the image); got {reward!r}")
            rewards.append(reward)
        config = trainer.config.to_dict()
        config.pop("output_dir")
        return {"kind": "grpo", "cases_name": self.cases_name, "resume": resume,
                "cases": [c.model_dump() for c in cases],
                "trainer": {"model": trainer.model, "rewards": rewards,
                            "weights": trainer.weights, "matcher": trainer.matcher,
                            "config": config, "sft_adapter": trainer.sft_adapter,
                            "eval_cases": [c.model_dump(mode="json")
                                           for c in trainer.eval_cases]}}

    def sft_job(self, model: Any, cases: Sequence[Case], settings: Any, *,
                resume: bool) -> dict[str, Any]:
        import dataclasses

        if not isinstance(model, str):
            raise ConfigError("the modal backend needs the model as a name or path")
        values = dataclasses.asdict(settings)
        values.pop("output_dir")
        return {"kind": "sft", "cases_name": self.cases_name, "resume": resume,
                "cases": [c.model_dump() for c in cases], "model": model, "settings": values}

    def call_remote(self, kind: str, job: dict[str, Any]) -> dict[str, Any]:
        """The network boundary: run the Modal function and wait for its result."""
        with self.app.run():
            return dict(self.parts[kind].remote(job))

    def train_grpo(self, trainer: Any, cases: Sequence[Case], *, resume: bool = False) -> Any:
        from psychohistory.training.trainer import TrainResult

        check_grpo_memory(trainer, gpu=self.gpu)
        return TrainResult(**self.call_remote("grpo", self.grpo_job(trainer, cases, resume=resume)))

    def train_sft(self, model: Any, cases: Sequence[Case], settings: Any, *,
                  tokenizer: Any = None, resume: bool = False) -> Any:
        from psychohistory.training.trainer import TrainResult

        check_sft_memory(model, settings, gpu=self.gpu)
        return TrainResult(**self.call_remote("sft", self.sft_job(model, cases, settings,
                                                                  resume=resume)))
