"""The Modal app: an image with psychohistory[train], a volume, a secret, GPU functions.

``modal run examples/modal_run.py`` (or ``Trainer(backend="modal")``) uses it. The function
bodies are :func:`run_on_volume`, the same code the local backend runs, pointed at the
volume mounted at ``/data``:

    psychohistory-data/
      cases/<name>.jsonl
      models/sft/checkpoint-N, models/sft/final
      models/grpo/checkpoint-N, models/grpo/final
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

APP_NAME = "psychohistory"
VOLUME_NAME = "psychohistory-data"
SECRET_NAME = "huggingface-secret"
DATA_DIR = "/data"
DEFAULT_GPU = "A10G"
DEFAULT_TIMEOUT = 4 * 3600
PYTHON_VERSION = "3.11"


def data_dir() -> Path:
    """Where the volume is mounted (``PSYCHOHISTORY_MODAL_DATA`` overrides it for local runs)."""
    return Path(os.environ.get("PSYCHOHISTORY_MODAL_DATA", DATA_DIR))


def model_dir(kind: str) -> Path:
    return data_dir() / "models" / kind


def run_on_volume(job: dict[str, Any]) -> dict[str, Any]:
    """Body of every training function: cases to the volume, train, commit, report.

    ``job``: ``{"kind": "grpo" | "sft", "cases": [case dicts], "cases_name": str,
    "resume": bool, "trainer": {...} | "settings": {...}, "model": str}``.
    """
    import dataclasses

    from psychohistory.cases import Case, load_cases, save_cases

    cases = [Case.model_validate(c) for c in job["cases"]]
    cases_file = data_dir() / "cases" / f"{job.get('cases_name', 'cases')}.jsonl"
    if cases:
        save_cases(cases, cases_file)
    else:
        cases = load_cases(cases_file)
    output_dir = model_dir(job["kind"])
    if job["kind"] == "grpo":
        from psychohistory.training.config import TrainerConfig
        from psychohistory.training.trainer import Trainer, run_grpo

        spec = dict(job["trainer"])
        config = TrainerConfig.from_dict({**spec.pop("config"), "output_dir": str(output_dir)})
        sft_adapter = spec.pop("sft_adapter", None)
        if sft_adapter == "volume":
            sft_adapter = str(model_dir("sft") / "final")
        from psychohistory.cases import Case

        eval_cases = [Case.model_validate(c) for c in spec.pop("eval_cases", [])]
        trainer = Trainer(spec.pop("model"), config=config, sft_adapter=sft_adapter,
                          eval_cases=eval_cases, **spec)
        result = run_grpo(trainer, cases, resume=job.get("resume", False))
    elif job["kind"] == "sft":
        from psychohistory.training.config import SFTSettings
        from psychohistory.training.sft import run_sft

        settings = SFTSettings.from_dict({**job["settings"], "output_dir": str(output_dir)})
        result = run_sft(job["model"], cases, settings, resume=job.get("resume", False))
    else:
        raise ValueError(f"unknown job kind {job['kind']!r}")
    _commit_volume()
    return dataclasses.asdict(result)


def _commit_volume() -> None:
    # inside a Modal container the volume must be committed for other functions to see writes
    if os.environ.get("MODAL_TASK_ID"):
        import modal

        modal.Volume.from_name(VOLUME_NAME).commit()


def build_app(*, gpu: str = DEFAULT_GPU, timeout: int = DEFAULT_TIMEOUT,
              package: str = "psychohistory[train]") -> tuple[Any, dict[str, Any]]:
    """The ``modal.App`` and its functions (``sft``, ``grpo``), built without any network."""
    import modal

    image = (
        modal.Image.debian_slim(python_version=PYTHON_VERSION)
        .pip_install(package)
        .env({"TOKENIZERS_PARALLELISM": "false"})
        .add_local_python_source("psychohistory")
    )
    volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
    secret = modal.Secret.from_name(SECRET_NAME)
    app = modal.App(APP_NAME, image=image)
    options: dict[str, Any] = {"gpu": gpu, "volumes": {DATA_DIR: volume}, "secrets": [secret],
               "timeout": timeout}
    functions = {
        "sft": app.function(name="sft", serialized=True, **options)(run_on_volume),
        "grpo": app.function(name="grpo", serialized=True, **options)(run_on_volume),
    }
    return app, {"app": app, "image": image, "volume": volume, "secret": secret,
                 "options": options, **functions}
