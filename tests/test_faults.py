"""Injected faults: each ends in a clear error or a defined penalty, never a hang, and nothing
already written is lost. docs/failures.md says, per fault, what the user sees."""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import psychohistory as ph
from judge_server import JudgeServer
from psychohistory.errors import ConfigError, PluginError, RewardError
from psychohistory.matching.base import Matcher
from psychohistory.matching.llm import LLMMatcher
from psychohistory.rewards import CompositeReward
from psychohistory.training.checkpoints import last_complete_checkpoint
from psychohistory.training.models import check_adapter

CASE = ph.Case(id="c", seed="S", outcomes=[ph.Outcome(id="a", event="Prices rise")])
TREE = '{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.9}]}'


# --------------------------------------------------------------------------- rewards


def register_reward(register_plugin, reward, name="faulty"):
    class Plugin:
        @ph.hookimpl
        def register_rewards(self, register):
            register(name, lambda: reward)

    register_plugin(Plugin(), "faulty-plugin")
    return ph.get_reward(name)


@pytest.mark.parametrize(("returned", "message"), [
    ("0.5", "returned a str ('0.5'), expected a list of 2 floats (None where not applicable)"),
    (None, "returned None, expected a list of 2 floats"),
    ({"a": 1.0, "b": 0.0}, "returned a dict, expected a list of 2 floats"),
    (0.5, "returned a float, expected a list of 2 floats"),
    ([1.0], "returned 1 values for 2 completions"),
    ([1.0, 0.0, 1.0], "returned 3 values for 2 completions"),
    ([1.0, math.nan], "returned non-finite nan at index 1"),
    ([-math.inf, 1.0], "returned non-finite -inf at index 0"),
    (["1.0", 1.0], "returned '1.0' at index 0, expected a float or None"),
    ([{"score": 1.0}, 1.0], "returned {'score': 1.0} at index 0, expected a float or None"),
    ([np.array([1.0, 2.0]), 1.0], "returned array([1., 2.]) at index 0"),
    ([True, 1.0], "returned True at index 0"),
])
def test_reward_returning_the_wrong_thing_names_the_plugin(register_plugin, returned, message):
    reward = register_reward(register_plugin, lambda completions, **kw: returned)
    with pytest.raises(RewardError, match=re.escape(message)) as info:
        reward(["a", "b"])
    assert info.value.plugin == "faulty-plugin"
    assert str(info.value).startswith("plugin 'faulty-plugin': reward 'faulty' ")


def test_reward_raising_while_its_values_are_read_names_the_plugin(register_plugin):
    def values(completions, **kwargs):
        yield 1.0
        raise RuntimeError("lost the database")

    reward = register_reward(register_plugin, values)
    with pytest.raises(RewardError, match=r"faulty-plugin.*raised RuntimeError: lost the database"):
        reward(["a", "b"])


def test_builtin_reward_without_its_case_column_names_the_plugin(fresh_plugins):
    with pytest.raises(RewardError, match=r"default_plugins.rewards.*needs a 'case' column"):
        ph.get_reward("calibration", matcher="exact")([TREE])


def test_numbers_of_any_kind_are_accepted(register_plugin):
    reward = register_reward(register_plugin,
                             lambda completions, **kw: np.array([0.5, 1], dtype=np.float32))
    assert reward(["a", "b"]) == [0.5, 1.0]


def test_none_for_everything_means_not_applicable(register_plugin):
    reward = register_reward(register_plugin, lambda completions, **kw: [None] * len(completions))
    assert reward(["a", TREE]) == [None, None]
    mix = CompositeReward([reward, ph.get_reward("format")], weights=[1.0, 0.5])
    assert mix(["a", TREE]) == [-0.5, 0.5]  # left out of the sum
    assert mix.last_values == {"faulty": [None, None], "format": [-1.0, 1.0]}
    assert CompositeReward([reward, reward])(["a"]) == [None]  # no part applies: neither does the sum


def test_composite_checks_plain_callables_too():
    def broken(completions, **kwargs):
        return [math.nan] * len(completions)

    mix = CompositeReward([ph.get_reward("format"), broken])
    with pytest.raises(RewardError, match=r"callable 'broken'.*non-finite nan at index 0"):
        mix([TREE])


# -------------------------------------------------------------------------- matchers


class Scripted(Matcher):
    """A matcher plugin whose ``score`` is whatever the test says."""

    name = "scripted"

    def __init__(self, scores=None, error=None):
        self.scores, self.error = scores, error

    def score(self, predicted, actual):
        if self.error is not None:
            raise self.error
        return self.scores(len(predicted), len(actual))


def register_matcher(register_plugin, matcher):
    class Plugin:
        @ph.hookimpl
        def register_matchers(self, register):
            register("scripted", lambda: matcher)

    register_plugin(Plugin(), "matcher-plugin")
    return ph.get_matcher("scripted")


@pytest.mark.parametrize(("scores", "message"), [
    (lambda n, m: np.zeros((m, n)), "returned shape (2, 1), expected (1, 2)"),
    (lambda n, m: np.zeros(n * m), "returned shape (2,), expected (1, 2)"),
    (lambda n, m: None, "returned shape (), expected (1, 2)"),
    (lambda n, m: np.full((n, m), np.nan), "returned non-finite values (2 of 2: nan at [0, 0])"),
    (lambda n, m: np.array([[0.5, np.inf]]), "returned non-finite values (1 of 2: inf at [0, 1])"),
    (lambda n, m: np.array([[0.5, 1.5]]), "returned scores outside [0, 1] (1.5 at [0, 1])"),
    (lambda n, m: [["yes", "no"]], "returned list, not an array of numbers"),
])
def test_matcher_returning_a_bad_matrix_names_the_plugin(register_plugin, scores, message):
    matcher = register_matcher(register_plugin, Scripted(scores))
    with pytest.raises(PluginError, match=re.escape(message)) as info:
        matcher.score(["a"], ["b", "c"])
    assert str(info.value).startswith("plugin 'matcher-plugin': matcher 'scripted' score() ")
    with pytest.raises(PluginError, match="matcher-plugin"):
        matcher.match(["a"], ["b", "c"])
    # where the library uses it: the evaluator, and a tree reward (which names itself too)
    tree = ph.parse_tree('{"seed": "S", "children": [{"event": "a", "probability": 0.5}]}')
    case = ph.Case(id="c", seed="S", outcomes=[ph.Outcome(id="b", event="b"),
                                               ph.Outcome(id="c", event="c")])
    with pytest.raises(PluginError, match="plugin 'matcher-plugin': matcher 'scripted'"):
        ph.TreeEvaluator(matcher="scripted").evaluate(tree, case)
    with pytest.raises(RewardError, match=r"reward 'calibration'.*matcher-plugin.*'scripted'"):
        ph.get_reward("calibration", matcher="scripted")([tree.model_dump_json()], case=[case])


def test_matcher_raising_names_the_plugin(register_plugin):
    matcher = register_matcher(register_plugin, Scripted(error=ZeroDivisionError("boom")))
    with pytest.raises(PluginError, match=re.escape(
            "plugin 'matcher-plugin': matcher 'scripted' score() raised ZeroDivisionError: boom")):
        matcher.score(["a"], ["b"])
    # an error the library raises on purpose already says what to do: it passes unchanged
    matcher.matcher.error = ConfigError("verifier weights fail their hash check")
    with pytest.raises(ConfigError, match="hash check"):
        matcher.score(["a"], ["b"])


def test_checked_matchers_are_transparent_and_pickle(fresh_plugins):
    fuzzy = ph.get_matcher("fuzzy", threshold=0.7)
    assert isinstance(fuzzy, Matcher) and repr(fuzzy) == repr(fuzzy.matcher)
    fuzzy.threshold = 0.9  # writes through to the wrapped matcher
    assert fuzzy.matcher.threshold == 0.9 == fuzzy.threshold
    assert ph.get_matcher("exact").score([], ["a"]).shape == (0, 1)
    blob = pickle.dumps(fuzzy)
    code = ("import pickle, sys; m = pickle.loads(sys.stdin.buffer.read()); "
            "print(type(m).__name__, m.threshold, m.score(['Rates rise'], ['rates rise'])[0, 0])")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         check=True).stdout.decode()
    assert out.split() == ["CheckedMatcher", "0.9", "1.0"]


# ------------------------------------------------------------------- the LLM judge

FAST = {"timeout": 0.5, "max_retries": 2, "backoff": 0.01}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("mode", "status", "error", "message", "requests"), [
    ("hang", 503, ConnectionError, "after 3 attempts: timed out (0.5 s)", 3),
    ("trickle", 503, ConnectionError, "after 3 attempts: timed out (0.5 s)", 3),
    ("status", 500, ConnectionError, "after 3 attempts: HTTP 500 injected fault", 3),
    ("status", 429, ConnectionError, "after 3 attempts: HTTP 429", 3),
    ("not-json", 503, ConnectionError, "after 3 attempts: a reply that is not JSON: b'<html>", 3),
    ("cut", 503, ConnectionError, "after 3 attempts: the connection closed mid-reply", 3),
    ("close", 503, ConnectionError, "after 3 attempts: RemoteDisconnected", 3),
    ("not-http", 503, ConnectionError, "after 3 attempts: BadStatusLine", 3),
    ("no-choices", 503, ConfigError, "JSON without choices[0].message.content ({'message': "
                                     "\"model 'm' is not loaded\"}); is it an OpenAI-compatible", 1),
    ("status", 401, ConfigError, "refused the request: HTTP 401", 1),
])
def test_judge_fault_ends_in_a_clear_error_within_seconds(mode, status, error, message, requests):
    # a trickled reply arrives a byte every 0.2 s: under the socket timeout, so only the
    # whole-reply deadline stops it (it would take ~20 s a request otherwise)
    with JudgeServer(mode=mode, status=status, delay=0.2 if mode == "trickle" else 0) as server:
        judge = LLMMatcher(backend="openai", base_url=server.url, model="m", **FAST)
        start = time.perf_counter()
        with pytest.raises(error, match=re.escape(message)) as info:
            judge.score(["Rates rise"], ["Rates fall"])
        elapsed = time.perf_counter() - start
    assert server.url in str(info.value)
    assert len(server.requests) == requests
    assert elapsed < 4, elapsed


def test_judge_that_is_not_listening_fails_within_seconds():
    judge = LLMMatcher(backend="openai", base_url=f"http://127.0.0.1:{free_port()}", model="m",
                       **FAST)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="after 3 attempts: ConnectionRefusedError"):
        judge.score(["Rates rise"], ["Rates fall"])
    assert time.perf_counter() - start < 4


@pytest.mark.parametrize("mode", ["hang", "status", "not-json", "cut", "close", "not-http"])
def test_judge_recovers_from_one_fault(mode):
    with JudgeServer(mode=mode, fail_first=1, status=500) as server:
        judge = LLMMatcher(backend="openai", base_url=server.url, model="m", **FAST)
        start = time.perf_counter()
        assert judge.score(["A b c"], ["A b c d"])[0, 0] == 1.0
        assert time.perf_counter() - start < 3
        assert len(server.requests) == 2


def test_judge_answer_that_is_neither_yes_nor_no_is_the_documented_no(caplog):
    with JudgeServer(mode="babble") as server, caplog.at_level(
            logging.WARNING, logger="psychohistory.matching.llm"):
        judge = LLMMatcher(backend="openai", base_url=server.url, model="m", **FAST)
        assert judge.score(["A b c"], ["A b c d"])[0, 0] == 0.0
        assert len(server.requests) == 1  # a reply, not a fault: not retried
    assert "counted as no" in caplog.text


def test_dead_judge_fails_once_not_once_per_pair():
    with JudgeServer(mode="hang") as server:
        judge = LLMMatcher(backend="openai", base_url=server.url, model="m", timeout=0.3,
                           max_retries=1, backoff=0.01, concurrency=2)
        start = time.perf_counter()
        with pytest.raises(ConnectionError, match="after 2 attempts: timed out"):
            judge.score([f"Event {i}" for i in range(20)], ["Another event"])
        elapsed = time.perf_counter() - start
    # the first failure stops the rest: no pair starts, and none in flight retries, after it
    assert elapsed < 2.5, elapsed
    assert len(server.requests) <= 4


def test_judge_failure_through_the_registry_names_the_plugin(fresh_plugins):
    with JudgeServer(mode="status", status=500) as server:
        matcher = ph.get_matcher("llm", base_url=server.url, model="m", **FAST)
        with pytest.raises(PluginError, match=re.escape(
                "plugin 'psychohistory.default_plugins.matchers': matcher 'llm' score() raised "
                f"ConnectionError: judge endpoint {server.url}/v1/chat/completions failed after "
                "3 attempts: HTTP 500")) as info:
            matcher.score(["Rates rise"], ["Rates fall"])
    assert isinstance(info.value.__cause__, ConnectionError)


# ----------------------------------------------------------------------- checkpoints


def write_checkpoint(folder: Path, step: int) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file({"base_model.model.q_proj.lora_A.weight": np.zeros((4, 64), np.float32)},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    with zipfile.ZipFile(folder / "optimizer.pt", "w") as archive:  # torch.save's format
        archive.writestr("optimizer/data.pkl", b"\x80\x02}q\x00." * 50)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step,
                                                           "log_history": []}))


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("broken", ["adapter_model.safetensors", "trainer_state.json",
                                    "optimizer.pt", "adapter_config.json"])
def test_truncated_checkpoint_is_skipped_for_the_one_before(tmp_path, caplog, broken):
    write_checkpoint(tmp_path / "checkpoint-2", 2)
    write_checkpoint(tmp_path / "checkpoint-4", 4)
    cut_in_half(tmp_path / "checkpoint-4" / broken)
    before = snapshot(tmp_path)
    with caplog.at_level(logging.WARNING, logger="psychohistory.training"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert f"skipping {tmp_path / 'checkpoint-4'}: its {broken}" in caplog.text
    assert snapshot(tmp_path) == before  # nothing deleted or rewritten


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path, caplog):
    write_checkpoint(tmp_path / "checkpoint-3", 3)
    cut_in_half(tmp_path / "checkpoint-3" / "adapter_model.safetensors")
    with caplog.at_level(logging.WARNING, logger="psychohistory.training"):
        assert last_complete_checkpoint(tmp_path) is None
    assert "adapter_model.safetensors is not a readable safetensors file" in caplog.text


@pytest.mark.slow
def test_sft_resumes_from_the_checkpoint_before_a_truncated_one(tmp_path, caplog):
    pytest.importorskip("trl")
    from psychohistory.training.config import SFTSettings
    from psychohistory.training.models import tiny_random_model

    cases = ph.load_dataset("synthetic")[:2]

    def settings(steps):
        return SFTSettings(output_dir=str(tmp_path / "sft"), max_steps=steps,
                           per_device_train_batch_size=2, lora_r=4, lora_alpha=8,
                           max_length=128, save_steps=1, save_total_limit=None,
                           gradient_checkpointing=False)

    model, tokenizer = tiny_random_model()
    ph.sft(model, cases, tokenizer=tokenizer, settings=settings(2))
    out = tmp_path / "sft"
    final = out / "final"
    assert (final / "adapter_model.safetensors").is_file()  # safetensors, never a pickle
    assert not list(out.rglob("*.bin")) or all(p.name == "training_args.bin"
                                               for p in out.rglob("*.bin"))
    cut_in_half(out / "checkpoint-2" / "adapter_model.safetensors")
    kept = snapshot(out / "checkpoint-1")
    model, tokenizer = tiny_random_model()
    with caplog.at_level(logging.WARNING, logger="psychohistory.training"):
        result = ph.sft(model, cases, tokenizer=tokenizer, settings=settings(3), resume=True)
    assert result.resumed_from == str(out / "checkpoint-1")
    assert result.global_step == 3
    assert "checkpoint-2: its adapter_model.safetensors is not a readable" in caplog.text
    assert snapshot(out / "checkpoint-1") == kept
    assert check_adapter(result.adapter_path) == Path(result.adapter_path)


# -------------------------------------------------------------------- adapter paths


def adapter_folder(folder: Path) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    save_file({"base_model.model.q_proj.lora_A.weight": np.zeros((4, 64), np.float32)},
              str(folder / "adapter_model.safetensors"))
    return folder


def not_adapters(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, what the error must say after naming the path)."""
    out = {}
    (empty := tmp_path / "empty").mkdir()
    out["empty folder"] = (empty, "has no adapter_config.json: it is an empty folder")
    (junk := tmp_path / "junk").mkdir()
    (junk / "notes.txt").write_text("hello")
    (junk / "weights.npy").write_bytes(b"\x93NUMPY")
    out["random files"] = (junk, "has no adapter_config.json: it holds notes.txt, weights.npy")
    (file := tmp_path / "adapter.safetensors").write_bytes(b"not a folder")
    out["a file"] = (file, "is a file, not an adapter folder")
    out["missing"] = (tmp_path / "runs" / "sft" / "final", ": no such file or folder")
    (model := tmp_path / "model").mkdir()
    (model / "config.json").write_text("{}")
    out["a full model"] = (model, "it holds config.json, so it looks like a full model")
    run = tmp_path / "run"
    adapter_folder(run / "final")
    out["the run, not its final"] = (run, f"did you mean {run / 'final'}?")
    no_weights = adapter_folder(tmp_path / "no-weights")
    (no_weights / "adapter_model.safetensors").unlink()
    out["no weights"] = (no_weights, "has adapter_config.json but no adapter_model.safetensors")
    pickled = adapter_folder(tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    out["a pickle"] = (pickled, "holds adapter_model.bin, a pickle")
    cut = adapter_folder(tmp_path / "cut")
    cut_in_half(cut / "adapter_model.safetensors")
    out["cut off"] = (cut, "adapter_model.safetensors is not a readable safetensors file")
    bad_config = adapter_folder(tmp_path / "bad-config")
    cut_in_half(bad_config / "adapter_config.json")
    out["config cut off"] = (bad_config, "adapter_config.json is not readable JSON")
    other = adapter_folder(tmp_path / "other-config")
    (other / "adapter_config.json").write_text('{"model_type": "llama"}')
    out["not a peft config"] = (other, "adapter_config.json has no peft_type")
    return out


def test_adapter_paths_that_are_not_adapters_are_named(tmp_path):
    for label, (path, message) in not_adapters(tmp_path).items():
        with pytest.raises(ConfigError, match=re.escape(message)) as info:
            check_adapter(path)
        assert str(info.value).startswith(f"adapter {path}"), label
    good = adapter_folder(tmp_path / "good")
    assert check_adapter(good) == good
    assert check_adapter("someone/their-lora") is None  # a Hub id: peft fetches and checks it


def test_inference_refuses_a_non_adapter_before_touching_the_model(tmp_path):
    # no model is loaded at all: a stand-in would break the moment peft touched it
    model, tokenizer = object(), object()
    inference = ph.ProbabilityTreeInference(model, tokenizer=tokenizer)
    for path, message in not_adapters(tmp_path).values():
        with pytest.raises(ConfigError, match=re.escape(message)):
            inference.load_adapter(str(path), "sft")
    assert inference.model is model and inference.adapters == {} and inference.active is None


def test_inference_checks_its_adapter_before_loading_the_model(tmp_path, monkeypatch):
    from psychohistory.training import models

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the adapter path was checked")

    monkeypatch.setattr(models, "load_model", never)
    (empty := tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"adapter {empty} has no adapter_config")):
        ph.ProbabilityTreeInference("smollm2-135m-instruct", adapter=str(empty))


def test_a_matcher_that_batches_blocks_is_checked_block_by_block(register_plugin):
    class Blocks(Scripted):
        def score_blocks(self, blocks):
            return [np.zeros((len(p), len(a))) for p, a in blocks][:-1]  # one block short

    matcher = register_matcher(register_plugin, Blocks(lambda n, m: np.zeros((n, m))))
    with pytest.raises(PluginError, match=r"score_blocks\(\) returned 1 blocks for 2"):
        matcher.score_blocks([(["a"], ["b"]), (["c"], ["d"])])


def test_a_matcher_without_score_blocks_gets_one_checked_score_per_block(register_plugin):
    plain = register_matcher(register_plugin, Scripted(lambda n, m: np.full((n, m), np.nan)))
    with pytest.raises(PluginError, match=r"score\(\) returned non-finite"):
        plain.score_blocks([(["a"], ["b"])])
