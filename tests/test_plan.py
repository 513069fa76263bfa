"""`psychohistory plan` and the Trainer's own memory check give one answer for one run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import psychohistory as ph
from psychohistory.backends.base import PROMPT_TOKENS, check_grpo_memory
from psychohistory.backends.memory import plan_memory
from psychohistory.cli import cli
from psychohistory.errors import ConfigError, MemoryPlanError


def plan_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["plan", *args, "--json"])
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.output)


@pytest.mark.parametrize(("model", "gpu", "config"), [
    ("qwen2.5-1.5b", "A10G", {}),
    ("smollm2-135m-instruct", "T4", {"num_generations": 16, "per_device_train_batch_size": 64,
                                     "max_completion_length": 512}),
    ("llama-3.1-8b", "A10G", {"gradient_checkpointing": True}),
    ("gpt-oss-20b", "H100", {}),
])
def test_plan_and_the_trainer_check_agree(model, gpu, config):
    trainer = ph.Trainer(model, rewards=["format"], config=config)
    c = trainer.config
    args = [model, "--gpu", gpu, "--batch-size", str(c.per_device_train_batch_size),
            "--completion-length", str(c.max_completion_length)]
    if c.gradient_checkpointing is not None:
        args.append("--gradient-checkpointing" if c.gradient_checkpointing else
                    "--no-gradient-checkpointing")
    cli_plan = plan_json(*args)
    try:
        trainer_plan = check_grpo_memory(trainer, gpu=gpu)
    except MemoryPlanError as exc:
        trainer_plan = exc.plan
    assert cli_plan["estimated_gib"] == pytest.approx(trainer_plan.estimated_gib)
    assert cli_plan["fits"] == trainer_plan.fits
    assert cli_plan["gradient_checkpointing"] == trainer_plan.gradient_checkpointing
    assert cli_plan["seq_len"] == PROMPT_TOKENS + c.max_completion_length


def test_the_defaults_are_the_trainers():
    plan = plan_json("qwen2.5-1.5b", "--gpu", "A10G")
    assert plan["seq_len"] == PROMPT_TOKENS + 256 and plan["batch_size"] == 4
    assert plan["gradient_checkpointing"] is False and plan["fits"]
    sft = plan_json("qwen2.5-1.5b", "--gpu", "A10G", "--method", "sft")
    assert sft["seq_len"] == 1024 and sft["gradient_checkpointing"] is True


def test_plan_says_the_margin_and_the_largest_run_that_fits():
    result = CliRunner().invoke(cli, ["plan", "gpt-oss-20b", "--gpu", "H100", "--batch-size",
                                      "16"])
    text = result.output
    assert "usable 71.2 GiB (10% headroom, 7.9 GiB, kept free)" in text
    assert "largest batch that fits at 706 tokens a sequence:" in text
    assert "longest sequence at batch 16:" in text
    plan = plan_memory("gpt-oss-20b", gpu="H100", seq_len=706, batch_size=16, prompt_tokens=450)
    assert plan.max_batch_size >= 1
    bigger = plan_memory("gpt-oss-20b", gpu="H100", seq_len=706,
                         batch_size=plan.max_batch_size + 1)
    same = plan_memory("gpt-oss-20b", gpu="H100", seq_len=706, batch_size=plan.max_batch_size)
    assert same.fits and not bigger.fits
    longest = plan_memory("gpt-oss-20b", gpu="H100", seq_len=plan.max_seq_len, batch_size=16)
    assert longest.fits
    assert not plan_memory("gpt-oss-20b", gpu="H100", seq_len=plan.max_seq_len + 1,
                           batch_size=16).fits
    assert plan.max_completion_length == plan.max_seq_len - 450


def test_checkpointing_turns_on_only_when_needed():
    small = plan_memory("smollm2-135m-instruct", gpu="H100", seq_len=706, batch_size=4)
    large = plan_memory("qwen2.5-1.5b", gpu="H100", seq_len=706, batch_size=64)
    assert small.gradient_checkpointing is False
    assert large.gradient_checkpointing is True and large.fits
    off = plan_memory("qwen2.5-1.5b", gpu="H100", seq_len=706, batch_size=64,
                      gradient_checkpointing=False)
    assert not off.fits and off.estimated_gib > large.estimated_gib


@pytest.mark.parametrize("option", ["--batch-size", "--seq-len", "--lora-rank",
                                    "--completion-length", "--gpu-gib"])
def test_negative_and_zero_sizes_are_refused(option):
    for value in ("-4", "0"):
        result = CliRunner().invoke(cli, ["plan", "qwen2.5-1.5b", option, value])
        assert result.exit_code == 2 and "Invalid value" in result.output, result.output


def test_the_api_refuses_bad_sizes_by_name():
    for name, value in (("batch_size", -1), ("seq_len", 0), ("lora_rank", 2.5),
                        ("gpu_gib", -8.0), ("headroom", 1.5)):
        with pytest.raises(ConfigError, match=name):
            plan_memory("qwen2.5-1.5b", gpu="A10G", **{name: value})


def test_any_card_by_its_memory():
    plan = plan_json("qwen2.5-1.5b", "--gpu", "RTX-4090", "--gpu-gib", "23.5")
    assert plan["gpu"] == "RTX-4090" and plan["gpu_gib"] == 23.5
    result = CliRunner().invoke(cli, ["plan", "qwen2.5-1.5b", "--gpu", "RTX-4090"])
    assert result.exit_code == 2 and "gpu_gib" in result.output


def test_any_model_from_a_local_config_json(tmp_path):
    config = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
              "vocab_size": 128256, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 8192, "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_folder = plan_json(str(tmp_path), "--gpu", "L4")
    from_file = plan_json(str(tmp_path / "config.json"), "--gpu", "L4")
    assert from_folder["estimated_gib"] == from_file["estimated_gib"]
    assert 2.0 < from_folder["breakdown"]["weights"] < 2.6  # ~1.2 B parameters in bf16
    (tmp_path / "bad.json").write_text("{}")
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "cannot read a model shape" in result.output
