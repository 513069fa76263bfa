import json
from pathlib import Path

import pytest

import psychohistory as ph
from psychohistory.backends.memory import KNOWN_SHAPES, plan_memory
from psychohistory.errors import ConfigError, MemoryPlanError
from psychohistory.training.config import SFTSettings, TrainerConfig

ROOT = Path(__file__).resolve().parents[1]
CASES = ph.load_dataset("synthetic")[:2]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("trl")
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model()
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def tiny_config(out, **overrides):
    return TrainerConfig(**{"output_dir": str(out), "max_steps": 1, "num_generations": 2,
                            "per_device_train_batch_size": 2, "max_completion_length": 8,
                            "save_steps": 1, **overrides})


def test_backends_are_registered_plugins(fresh_plugins):
    from psychohistory.plugins import list_registered

    backends = list_registered("backend")
    assert {"local", "accelerate", "modal"} <= set(backends)
    assert {b.plugin for b in backends.values()} == {"psychohistory.default_plugins.backends"}


# ------------------------------------------------------------------------- planner


def test_planner_refuses_gpt_oss_lora_on_an_a10g():
    plan = ph.plan_memory("gpt-oss-20b", method="grpo", lora_rank=4, gpu="A10G")
    assert not plan.fits and plan.estimated_gib > 38
    text = plan.summary()
    assert "does NOT fit" in text and "A10G" in text and "4bit" in text
    assert ph.plan_memory("gpt-oss-20b", method="sft", gpu="H100", batch_size=1).fits


def test_planner_options_are_checked():
    with pytest.raises(ConfigError, match="method must be one of"):
        plan_memory("smollm2-135m-instruct", method="ppo")
    with pytest.raises(ConfigError, match="unknown GPU"):
        plan_memory("smollm2-135m-instruct", gpu="Voodoo5")
    assert plan_memory("smollm2-135m-instruct", gpu="Voodoo5", gpu_gib=6).gpu_gib == 6


def test_planner_reads_shapes_from_configs(tiny_model_dir):
    plan = plan_memory(tiny_model_dir, gpu="T4")
    assert plan.fits and plan.breakdown["weights"] < 0.1


MEASURED = ROOT / "benchmarks" / "results" / "memory_planner_measurements.json"


@pytest.mark.skipif(not MEASURED.exists(), reason="no GPU measurements recorded yet")
def test_planner_is_within_15_percent_of_measured_peaks():
    data = json.loads(MEASURED.read_text())
    checked = set()
    for result in data["results"]:
        context = result["cuda_context_and_other_gib"]
        for run in result["runs"]:
            measured = run["measured"]["max_memory_reserved_gib"] + context
            plan = plan_memory(result["model"], method="sft", lora_rank=4, seq_len=run["seq_len"],
                               batch_size=run["batch_size"], gpu="H100")
            assert abs(plan.estimated_gib - measured) / measured <= 0.15, (result["model"], run)
            checked.add(result["model"])
    assert len(checked) >= 3


def test_backends_refuse_what_cannot_fit_before_starting(monkeypatch):
    pytest.importorskip("modal")
    backend = ph.get_backend("modal")
    monkeypatch.setattr(backend, "call_remote", lambda *a: pytest.fail("must not start"))
    trainer = ph.Trainer("gpt-oss-20b", rewards=["calibration"], backend="modal")
    with pytest.raises(MemoryPlanError, match="A10G"):
        backend.train_grpo(trainer, CASES)
    assert "gpt-oss-20b" in KNOWN_SHAPES


# --------------------------------------------------------------------------- modal


def test_modal_app_is_built_offline():
    pytest.importorskip("modal")
    backend = ph.get_backend("modal")
    for kind in ("sft", "grpo"):
        spec = backend.parts[kind]._spec_
        assert spec.gpus == "A10G"
        assert list(spec.volumes) == ["/data"]
        assert "psychohistory-data" in repr(spec.volumes["/data"])
        assert "huggingface-secret" in repr(spec.secrets[0])
    assert backend.parts["options"]["timeout"] == 4 * 3600
    assert ph.get_backend("modal", gpu="H100").parts["grpo"]._spec_.gpus == "H100"


def test_modal_jobs_carry_what_the_function_needs():
    pytest.importorskip("modal")
    backend = ph.get_backend("modal")
    trainer = ph.Trainer("smollm2-135m-instruct", rewards=["calibration", "format"],
                         config=TrainerConfig(max_steps=3), sft_adapter="volume")
    job = backend.grpo_job(trainer, CASES, resume=True)
    assert job["kind"] == "grpo" and job["resume"] is True and len(job["cases"]) == 2
    assert job["trainer"]["rewards"] == ["calibration", "format"]
    assert job["trainer"]["config"]["max_steps"] == 3 and "output_dir" not in job["trainer"]["config"]
    json.dumps(job)  # it crosses the network: plain JSON only
    with pytest.raises(ConfigError, match="registered name"):
        backend.grpo_job(ph.Trainer("m", rewards=[lambda c, **k: [0.0] * len(c)]), CASES,
                         resume=False)


def test_modal_functions_run_the_local_code_on_the_volume_layout(tmp_path, monkeypatch,
                                                                 tiny_model_dir):
    pytest.importorskip("modal")
    monkeypatch.setenv("PSYCHOHISTORY_MODAL_DATA", str(tmp_path))
    backend = ph.get_backend("modal")
    # the one boundary we cannot cross here: Modal's servers. Run the function body locally.
    monkeypatch.setattr(backend, "call_remote", lambda kind, job: backend.parts[kind].local(job))
    sft = backend.train_sft(tiny_model_dir, CASES, SFTSettings(
        max_steps=1, per_device_train_batch_size=2, lora_r=4, lora_alpha=8, max_length=512,
        save_steps=1))
    assert sft.adapter_path == str(tmp_path / "models" / "sft" / "final")
    assert (tmp_path / "models" / "sft" / "checkpoint-1").is_dir()
    trainer = ph.Trainer(tiny_model_dir, rewards=["format"], backend="modal",
                         config=tiny_config(tmp_path / "ignored"), sft_adapter="volume")
    result = backend.train_grpo(trainer, CASES)
    assert result.adapter_path == str(tmp_path / "models" / "grpo" / "final")
    assert (tmp_path / "models" / "grpo" / "checkpoint-1").is_dir()
    assert len(ph.load_cases(tmp_path / "cases" / "cases.jsonl")) == 2


# ---------------------------------------------------------------------- accelerate


def test_accelerate_command_line():
    backend = ph.get_backend("accelerate", num_processes=2, strategy="fsdp")
    cmd = backend.command(Path("job.pkl"))
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert "--use_fsdp" in cmd and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-3:] == ["--module", "psychohistory.backends.worker", "job.pkl"]
    with pytest.raises(ConfigError, match="strategy"):
        ph.get_backend("accelerate", strategy="horovod")


def test_accelerate_backend_launches_real_processes(tmp_path, tiny_model_dir):
    trainer = ph.Trainer(tiny_model_dir, rewards=["format"], config=tiny_config(tmp_path / "run"),
                         backend="accelerate",
                         backend_options={"cpu": True, "num_processes": 1})
    result = trainer.fit(CASES)
    assert result.global_step == 1
    assert (Path(result.adapter_path) / "adapter_config.json").exists()


@pytest.mark.skipif(not MEASURED.exists(), reason="no GPU measurements recorded yet")
def test_planner_counts_lora_parameters_like_peft():
    data = json.loads(MEASURED.read_text())
    for result in data["results"]:
        assert KNOWN_SHAPES[result["model"]].lora_params(4) == result["lora_trainable_params"]


def test_the_results_table_config_builds_and_travels_to_modal_unchanged():
    # configs/results_table.toml: both tables build their settings, and the GRPO job that the
    # Modal backend would send carries the eval cases and settings as plain JSON
    from psychohistory.cli import _cases, _load_config_file

    path = Path(__file__).resolve().parents[1] / "configs" / "results_table.toml"
    sft = _load_config_file(path, "sft")
    grpo = _load_config_file(path, "grpo")
    assert sft["model"] == grpo["model"] == "smollm2-135m-instruct"
    settings = SFTSettings.from_dict({k: v for k, v in sft.items() if k not in ("model", "cases")})
    assert (settings.lora_r, settings.lora_alpha) == (64, 128) and not settings.extra
    eval_cases = _cases(grpo.pop("eval_cases"))
    train_cases = _cases(grpo.pop("cases"))
    grpo.pop("model")
    config = TrainerConfig.from_dict(grpo)
    assert (config.num_generations, config.max_steps, config.lora_r) == (16, 300, 4)
    assert config.eval_steps == 50 and not config.extra
    assert {c.split for c in train_cases} == {"train"} and {c.split for c in eval_cases} == {"dev"}
    pytest.importorskip("modal")
    trainer = ph.Trainer("smollm2-135m-instruct", config=config, eval_cases=eval_cases,
                         backend="modal")
    job = ph.get_backend("modal").grpo_job(trainer, train_cases[:2], resume=False)
    json.dumps(job)
    assert len(job["trainer"]["eval_cases"]) == len(eval_cases)
    assert job["trainer"]["config"]["eval_steps"] == 50
