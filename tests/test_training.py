"""Training on the CPU with a tiny random-init llama (SmolLM2's tokenizer): real TRL, real peft."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import psychohistory as ph
from psychohistory.errors import ConfigError, RewardError
from psychohistory.training.config import SFTSettings, TrainerConfig
from psychohistory.training.models import tiny_random_model

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

CASES = ph.load_dataset("synthetic")[:2]


def tiny_config(tmp_path, **overrides):
    values = {"output_dir": str(tmp_path / "grpo"), "max_steps": 2, "num_generations": 2,
              "per_device_train_batch_size": 2, "max_completion_length": 12, "save_steps": 1}
    values.update(overrides)
    return TrainerConfig(**values)


def my_callable(completions, **kwargs):
    return [0.1 * len(str(c)) % 1 for c in completions]


def test_fit_trains_with_names_and_callables(tmp_path):
    model, tokenizer = tiny_random_model()
    trainer = ph.Trainer(model, tokenizer=tokenizer, config=tiny_config(tmp_path),
                         rewards=["calibration", "diversity", my_callable])
    result = trainer.fit(CASES)
    assert result.global_step == 2
    assert (Path(result.adapter_path) / "adapter_config.json").exists()
    logged = {k for entry in result.log_history for k in entry}
    assert {"rewards/calibration/mean", "rewards/diversity/mean",
            "rewards/my_callable/mean"} <= logged
    meta = json.loads((Path(result.adapter_path) / "psychohistory_train.json").read_text())
    assert meta["rewards"] == ["calibration", "diversity", "my_callable"]
    assert meta["weights"] == [1.0, 0.25, 1.0]


def test_non_finite_reward_stops_with_a_clear_error(tmp_path):
    model, tokenizer = tiny_random_model()
    trainer = ph.Trainer(model, tokenizer=tokenizer, config=tiny_config(tmp_path, max_steps=1),
                         rewards=[lambda completions, **kw: [float("nan")] * len(completions)])
    with pytest.raises(RewardError, match="non-finite"):
        trainer.fit(CASES)


@pytest.mark.parametrize(("extra", "message"), [
    ({"num_generation": 3}, "did you mean num_generations"),
    ({"bf16": True}, "set by psychohistory from the device"),
    ({"max_steps": 3}, "TrainerConfig field"),
])
def test_bad_pass_through_options_are_named(tmp_path, extra, message):
    model, tokenizer = tiny_random_model()
    config = tiny_config(tmp_path, extra=extra)
    with pytest.raises(ConfigError, match=message):
        ph.Trainer(model, tokenizer=tokenizer, config=config).fit(CASES)


RESUME_SCRIPT = """
import sys
import psychohistory as ph
from psychohistory.training.config import TrainerConfig
from psychohistory.training.models import tiny_random_model
model, tokenizer = tiny_random_model()
config = TrainerConfig(output_dir=sys.argv[1], max_steps=int(sys.argv[2]), num_generations=2,
                       per_device_train_batch_size=2, max_completion_length=12, save_steps=1)
result = ph.Trainer(model, tokenizer=tokenizer, config=config, rewards=["format"]).fit(
    ph.load_dataset("synthetic")[:2], resume=len(sys.argv) > 3)
print("STEP", result.global_step, result.resumed_from)
"""


def test_interrupted_run_resumes_from_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), "6"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint-2" / "trainer_state.json").exists():
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # interrupted mid-run, like a lost machine
    proc.wait()
    assert (out / "checkpoint-2").exists()
    assert not (out / "final").exists()
    # and a later save cut off before its trainer state was written: it must be skipped
    (out / "checkpoint-99").mkdir()
    (out / "checkpoint-99" / "adapter_model.safetensors").write_bytes(b"partial")
    done = subprocess.run([sys.executable, str(script), str(out), "6", "resume"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("STEP"))
    step, resumed = line.split()[1:]
    assert step == "6"
    assert "checkpoint-" in resumed and 2 <= int(resumed.rsplit("-", 1)[1]) < 99
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6


def test_resume_skips_checkpoints_cut_off_mid_save(tmp_path, caplog):
    from psychohistory.training.checkpoints import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "missing") is None
    for step, state in ((2, '{"global_step": 2}'), (10, '{"global_step": 10}'),
                        (11, '{"global_st'), (12, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-final-notes").mkdir()
    with caplog.at_level("WARNING", logger="psychohistory.training"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-12" in caplog.text and "checkpoint-11" in caplog.text


def test_plain_trl_grpo_trainer_with_our_rewards(tmp_path):
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = tiny_random_model()
    args = GRPOConfig(output_dir=str(tmp_path / "plain"), max_steps=1, num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=12, use_cpu=True,
                      bf16=False, report_to="none", reward_weights=[1.0, 0.5])
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                          reward_funcs=[ph.get_reward("calibration"), ph.get_reward("sharpness")],
                          train_dataset=ph.to_grpo_dataset(CASES),
                          peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("rewards/sharpness/mean" in entry for entry in trainer.state.log_history)


def test_sft_then_grpo_and_hot_swapped_inference(tmp_path):
    import warnings

    model, tokenizer = tiny_random_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sft_result = ph.sft(model, CASES, tokenizer=tokenizer, settings=SFTSettings(
            output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2,
            lora_r=8, lora_alpha=16, max_length=256, save_steps=10))
        assert (Path(sft_result.adapter_path) / "adapter_config.json").exists()

        base, tokenizer = tiny_random_model()
        grpo = ph.Trainer(base, tokenizer=tokenizer, rewards=["format"],
                          sft_adapter=sft_result.adapter_path,
                          config=tiny_config(tmp_path, max_steps=1)).fit(CASES)
    # `make demo` printed transformers' checkpointing deprecations from inside TRL and peft
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], \
        [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]

    model, tokenizer = tiny_random_model()
    inference = ph.ProbabilityTreeInference(model, tokenizer=tokenizer, max_new_tokens=8,
                                            retries=0)
    base_weights = model.model.embed_tokens.weight
    assert inference.load_adapter(sft_result.adapter_path, "sft") == "sft"
    assert inference.load_adapter(grpo.adapter_path, "grpo") == "grpo"
    assert inference.load_adapter(sft_result.adapter_path, "sft") == "sft"
    assert inference.load_adapter(None) is None
    # the base weights were never reloaded: the same tensor object serves all adapters
    assert inference.model.base_model.model.model.embed_tokens.weight is base_weights
    assert set(inference.adapters) == {"sft", "grpo"}
    outputs = inference.generate_trees([CASES[0].seed], [CASES[0].context])
    assert len(outputs) == 1 and outputs[0].text is not None
    with pytest.raises(ConfigError, match="already loaded"):
        inference.load_adapter(grpo.adapter_path, "sft")


def test_ground_truth_loss_and_perplexity():
    import math

    from psychohistory.training.loss import ground_truth_loss

    model, tokenizer = tiny_random_model()
    result = ground_truth_loss(model, tokenizer, CASES)
    assert result.tokens > 50
    # a random-init model is close to uniform over the vocabulary
    assert abs(result.loss - math.log(len(tokenizer))) < 1.0
    assert result.perplexity == pytest.approx(math.exp(result.loss))


def test_inference_of_a_peft_model_computes_with_its_adapter():
    # a training callback hands inference the model under training: its adapter must be on
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_random_model()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  init_lora_weights=False))
    inference = ph.ProbabilityTreeInference(peft_model, tokenizer=tokenizer, max_new_tokens=4)
    ids = tokenizer("The vote passes", return_tensors="pt")
    with torch.no_grad():
        with inference.active_adapter():
            on = peft_model(**ids).logits
        with peft_model.disable_adapter():
            off = peft_model(**ids).logits
    assert not torch.allclose(on, off)


def test_held_out_cases_are_scored_every_eval_steps(tmp_path):
    model, tokenizer = tiny_random_model()
    trainer = ph.Trainer(model, tokenizer=tokenizer, rewards=["format"], matcher="exact",
                         config=tiny_config(tmp_path, eval_steps=1), eval_cases=CASES[:1])
    result = trainer.fit(CASES)
    rows = [json.loads(line) for line in
            (tmp_path / "grpo" / "dev_eval.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert {"brier", "coverage", "unparsable_rate"} <= set(rows[0])
    assert any("dev_brier" in entry for entry in result.log_history)
    meta = json.loads((Path(result.adapter_path) / "psychohistory_train.json").read_text())
    assert meta["cases"]["count"] == len(CASES) and len(meta["cases"]["sha256"]) == 64
    assert meta["eval_cases"]["count"] == 1 and meta["matcher"].startswith("exact")


def test_eval_steps_without_eval_cases_is_refused():
    with pytest.raises(ConfigError, match="no eval_cases"):
        ph.Trainer(rewards=["format"], config={"eval_steps": 5})


def test_loading_an_adapter_raises_no_future_warning(tmp_path):
    import warnings

    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_random_model()
    get_peft_model(model, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(
        tmp_path / "adapter")
    base, tokenizer = tiny_random_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ph.ProbabilityTreeInference(base, tokenizer=tokenizer).load_adapter(
            str(tmp_path / "adapter"), "a")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], \
        [str(w.message) for w in caught]


def test_checkpointing_is_asked_for_by_the_name_transformers_does_not_warn_about():
    import dataclasses
    import warnings

    from trl import GRPOConfig

    from psychohistory.training.models import checkpointing_option

    option = checkpointing_option(GRPOConfig, True)
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert list(option) == (["activation_checkpointing"] if "activation_checkpointing" in names
                            else ["gradient_checkpointing"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GRPOConfig(output_dir="unused", use_cpu=True, report_to=[], **option)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)
                and "checkpointing" in str(w.message)], [str(w.message) for w in caught]
