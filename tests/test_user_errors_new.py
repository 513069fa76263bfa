"""Mistakes new users made, each failing with a message that says what is wrong and where.

Real files in ``tmp_path``, the real CLI (click's ``CliRunner``, or a subprocess where the
process's start-up matters: plugins load there), no mocks of psychohistory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from psychohistory import hookspecs, plugins
from psychohistory.cli import cli
from psychohistory.errors import CaseFormatError, ConfigError
from psychohistory.training.config import SFTSettings, TrainerConfig
from psychohistory.training.models import SMOLLM2, load_model, resolve_model
from psychohistory.training.trainer import Trainer
from psychohistory.validation import validate_file

OUTCOMES = [{"id": "o1", "event": "Cameron resigns"}]


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def validate(path: Path, *args: str):
    return CliRunner().invoke(cli, ["validate", str(path), *args], catch_exceptions=False)


# ------------------------------------------------------------------ 1. validate never guesses


@pytest.mark.parametrize("typo", ["outcome", "outcoms"])
def test_validate_refuses_to_guess_from_a_misspelt_outcomes_key(tmp_path, typo):
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "a", "seed": "S", typo: OUTCOMES},
        {"id": "b", "seed": "S", "outcomes": OUTCOMES},
        {"id": "c", "seed": "S", "outcomes": OUTCOMES}])
    result = validate(path)
    assert result.exit_code == 1
    assert "trees" not in result.output.split("cannot tell")[0]  # no "trees: 3 good"
    assert f"{path}:1:" in result.output
    assert f"unexpected keys {typo!r} (did you mean 'outcomes'?)" in result.output
    assert "--kind cases" in result.output
    with pytest.raises(CaseFormatError) as info:  # the library says the same, with the line
        validate_file(path)
    assert info.value.line == 1 and info.value.path == str(path)


def test_validate_with_kind_reports_the_misspelt_record_and_keeps_the_rest(tmp_path):
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "a", "seed": "S", "outcome": OUTCOMES},
        {"id": "b", "seed": "S", "outcomes": OUTCOMES}])
    result = validate(path, "--kind", "cases")
    assert result.exit_code == 1
    assert f"{path}:1: outcome: Extra inputs are not permitted" in result.output
    assert "cases: 1 good, 1 bad" in result.output


def test_validate_refuses_keys_that_fit_both_kinds(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"seed": "S"}])
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:1: cannot tell" in result.output and "fit both kinds" in result.output


def test_validate_still_tells_cases_from_trees_by_unambiguous_keys(tmp_path):
    cases = write_jsonl(tmp_path / "cases.jsonl", [{"id": "a", "seed": "S",
                                                    "outcomes": OUTCOMES}])
    trees = write_jsonl(tmp_path / "trees.jsonl", [
        {"case_id": "a", "completion": '{"seed": "S", "children": []}'},
        {"seed": "S", "children": [{"event": "E", "probability": 0.5}]}])
    assert "cases: 1 good, 0 bad" in validate(cases).output
    assert "trees: 2 good, 0 bad" in validate(trees).output


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
@pytest.mark.parametrize("kind", ["auto", "cases", "trees"])
def test_validate_refuses_an_empty_file(tmp_path, text, kind):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    result = validate(path, "--kind", kind)
    assert result.exit_code == 1
    assert f"{path}: no records: the file is empty" in result.output
    assert "0 good" not in result.output


def test_validate_reports_a_case_with_no_outcomes_with_its_line(tmp_path):
    path = write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "a", "seed": "S", "outcomes": OUTCOMES},
        {"id": "b", "seed": "S", "outcomes": []},
        {"id": "c", "seed": "S"}])
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:2: case 'b' has no outcomes" in result.output
    assert f"{path}:3: case 'c' has no outcomes" in result.output
    assert "cases: 1 good, 2 bad" in result.output


def test_validate_reports_unknown_keys_of_tree_records_with_their_line(tmp_path):
    path = write_jsonl(tmp_path / "trees.jsonl", [
        {"case_id": "a", "completion": '{"seed": "S", "children": []}'},
        {"case_id": "b", "completon": '{"seed": "S", "children": []}'},
        {"case_id": "c", "tree": {"seed": "S", "children": []}, "score": 1}])
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:2: unexpected keys 'completon' (did you mean 'completion'?)" in result.output
    assert f"{path}:3: unexpected keys 'score'" in result.output
    assert "trees: 1 good, 2 bad" in result.output


# --------------------------------------------------------- 2. a broken plugin breaks nothing


def fake_distribution(site: Path, dist: str, entry_point: str, module: str, source: str) -> None:
    """An installed distribution as pip leaves it: a module and its dist-info."""
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[psychohistory]\n{entry_point} = {module}\n")


@pytest.fixture
def broken_site(tmp_path):
    """One good plugin and three broken ones, each as a distribution of its own."""
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "ph-good", "good", "ph_good_plugin",
                      "from psychohistory import hookimpl\n\n"
                      "@hookimpl\ndef register_rewards(register):\n"
                      "    register('always-one', lambda: (lambda completions, **kw: "
                      "[1.0] * len(completions)))\n")
    fake_distribution(site, "ph-broken-import", "broken-import", "ph_broken_import",
                      "import psychohistory_no_such_module_xyz\n")
    fake_distribution(site, "ph-typo-marked", "typo-marked", "ph_typo_marked",
                      "from psychohistory import hookimpl\n\n"
                      "@hookimpl\ndef psychohistory_register_matcher(register):\n    pass\n")
    fake_distribution(site, "ph-typo-unmarked", "typo-unmarked", "ph_typo_unmarked",
                      "def psychohistory_register_matcher(register):\n    pass\n")
    return site


BROKEN = ("broken-import", "typo-marked", "typo-unmarked")


def run_cli(site: Path, *args: str, allow: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PSYCHOHISTORY_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    if allow is not None:
        env["PSYCHOHISTORY_LOAD_PLUGINS"] = allow
    return subprocess.run([sys.executable, "-m", "psychohistory.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins", "--json"]])
def test_broken_plugins_warn_in_one_line_each_and_break_nothing(broken_site, args):
    done = run_cli(broken_site, *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(BROKEN), lines  # one line a plugin, in the order of their names
    for name, line in zip(BROKEN, lines, strict=True):
        assert f"skipped plugin {name!r} (ph-{name} 0.1)" in line
        assert "PSYCHOHISTORY_LOAD_PLUGINS=good " in line  # the plugins that did load
        assert f"pip uninstall ph-{name}" in line
    assert "No module named 'psychohistory_no_such_module_xyz'" in lines[0]
    for line in lines[1:]:  # the misspelt hook, with and without @hookimpl
        assert "'psychohistory_register_matcher'" in line and "'register_matchers'" in line
        assert "the hooks are " + ", ".join(sorted(plugins.HOOK_NAMES)) in line
    if args[0] == "plugins":
        rows = {row["name"]: row for row in json.loads(done.stdout)}
        assert rows["good"]["rewards"] == ["always-one"]
        assert not set(BROKEN) & set(rows)


def test_the_hook_names_in_the_warning_are_the_real_hooks():
    assert set(plugins.HOOK_NAMES) == {"register_matchers", "register_rewards",
                                       "register_backends", "register_commands"}
    assert all(hasattr(hookspecs, name) for name in plugins.HOOK_NAMES)


def test_the_allow_list_in_the_warning_silences_it(broken_site):
    done = run_cli(broken_site, "plugins", "--json", allow="good")
    assert done.returncode == 0 and done.stderr == ""
    assert "good" in {row["name"] for row in json.loads(done.stdout)}


def test_a_broken_plugin_leaves_the_library_working(broken_site, monkeypatch, caplog):
    monkeypatch.syspath_prepend(str(broken_site))
    monkeypatch.delenv("PSYCHOHISTORY_LOAD_PLUGINS", raising=False)
    plugins.reset_plugin_manager()
    try:
        assert plugins.get_reward("always-one")(["a", "b"]) == [1.0, 1.0]
        assert plugins.get_matcher("exact").name == "exact"
    finally:
        plugins.reset_plugin_manager()
    skipped = [r.getMessage() for r in caplog.records if r.name == "psychohistory.plugins"]
    assert [m.split("'")[1] for m in skipped] == list(BROKEN)


# -------------------------------------------------------- 3. Trainer checks at construction


def test_rewards_as_a_string_is_refused(fresh_plugins):
    with pytest.raises(ConfigError, match=r"rewards must be a list.*pass rewards=\['calibration'\]"):
        Trainer(rewards="calibration")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rewards": ["calibrashun"]}, "unknown reward 'calibrashun' (did you mean 'calibration'?)"),
    ({"rewards": ["format", "sharpnes"]}, "unknown reward 'sharpnes' (did you mean 'sharpness'?)"),
    ({"matcher": "cascde"}, "unknown matcher 'cascde' (did you mean 'cascade'?)"),
    ({"matcher": {"name": "fuzy", "threshold": 0.5}}, "unknown matcher 'fuzy' (did you mean"),
])
def test_unknown_reward_and_matcher_names_list_close_ones(fresh_plugins, kwargs, message):
    with pytest.raises(ConfigError) as info:
        Trainer(**kwargs)
    assert message in str(info.value)
    kind = "reward" if "rewards" in kwargs else "matcher"
    registered = ", ".join(sorted(plugins.list_registered(kind)))
    assert f"registered {kind}s: {registered}" in str(info.value)


def test_a_remote_backend_leaves_names_to_its_image(fresh_plugins):
    # the modal image may have plugins installed that this machine has not
    assert Trainer(rewards=["only-in-the-image"], backend="modal").rewards == ["only-in-the-image"]


@pytest.mark.parametrize(("config", "message"), [
    ({"max_steps": "5"}, "max_steps must be an int, got '5' (str); write the number without quotes"),
    ({"learning_rate": "x"}, "learning_rate must be a float, got 'x' (str)"),
    ({"learning_rate": "5e-5"}, "(in YAML, with a dot: 5.0e-5)"),
    ({"max_steps": True}, "max_steps must be an int, got True (bool)"),
    ({"max_steps": 5.0}, "max_steps must be an int, got 5.0 (float)"),
    ({"gradient_checkpointing": 1}, "gradient_checkpointing must be a bool (true or false) or None"),
    ({"save_total_limit": "3"}, "save_total_limit must be an int or None"),
    ({"quantize": 4}, "quantize must be a string or None, got 4 (int)"),
    ({"output_dir": None}, "output_dir must be a string, got None"),
])
def test_wrong_types_in_config_name_the_field_at_construction(fresh_plugins, config, message):
    with pytest.raises(ConfigError) as info:
        Trainer(config=config)
    assert message in str(info.value)


def test_right_types_pass_and_an_int_is_a_float():
    config = TrainerConfig(learning_rate=1, temperature=2, save_total_limit=None,
                           gradient_checkpointing=True, target_modules=["q_proj", "v_proj"])
    assert config.learning_rate == 1 and config.target_modules == ["q_proj", "v_proj"]


def test_sft_settings_check_types_too():
    with pytest.raises(ConfigError, match=r"num_train_epochs must be a float, got '3' \(str\)"):
        SFTSettings(num_train_epochs="3")
    with pytest.raises(ConfigError, match=r"gradient_checkpointing must be a bool"):
        SFTSettings.from_dict({"gradient_checkpointing": 0})
    assert SFTSettings(num_train_epochs=3, learning_rate=1).num_train_epochs == 3


def test_construction_fails_before_anything_heavy_is_imported():
    code = ("import sys\nfrom psychohistory.errors import ConfigError\n"
            "from psychohistory.training.trainer import Trainer\n"
            "for kwargs in ({'rewards': 'calibration'}, {'rewards': ['calibrashun']},\n"
            "               {'config': {'max_steps': '5'}}):\n"
            "    try:\n        Trainer(**kwargs)\n    except ConfigError:\n        pass\n"
            "    else:\n        raise SystemExit(f'accepted {kwargs}')\n"
            "print([m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules])\n")
    env = {**os.environ, "PSYCHOHISTORY_LOAD_PLUGINS": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ 4. unknown model names


@pytest.mark.parametrize("name", ["smollm2", "SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_an_unknown_model_name_suggests_the_bundled_alias(name):
    with pytest.raises(ConfigError) as info:
        resolve_model(name)
    message = str(info.value)
    assert f"unknown model {name!r}" in message and "offline" in message
    assert f"Did you mean {SMOLLM2!r}?" in message


def test_load_model_refuses_an_unknown_name_before_the_hub():
    with pytest.raises(ConfigError, match=rf"unknown model 'smollm2'.*{SMOLLM2}"):
        load_model("smollm2", device="cpu")


@pytest.mark.parametrize("name", ["./no/such/folder", "/no/such/model", "no such model"])
def test_a_path_or_name_that_is_nothing_says_so(name):
    with pytest.raises(ConfigError, match=rf"unknown model .*: (no such file or folder|not a "
                                          rf"folder here nor a Hugging Face id).*{SMOLLM2}"):
        resolve_model(name)


def test_local_folders_and_gguf_files_still_resolve(tmp_path):
    assert resolve_model(str(tmp_path)) == (str(tmp_path), None)
    gguf = tmp_path / "model.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == (str(tmp_path), "model.Q8_0.gguf")
    with pytest.raises(ConfigError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_a_hub_name_in_the_offline_cache_resolves_and_is_suggested(tmp_path):
    # the Hugging Face cache layout: refs/main names a snapshot whose files link to blobs
    repo = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-360M-Instruct"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "blobs").mkdir()
    (repo / "blobs" / "f00d").write_text('{"model_type": "llama"}')
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").symlink_to(repo / "blobs" / "f00d")
    code = ("from psychohistory.training.models import resolve_model\n"
            "print(resolve_model('HuggingFaceTB/SmolLM2-360M-Instruct'))\n"
            "try:\n    resolve_model('smollm2-360m')\nexcept Exception as exc:\n    print(exc)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    resolved, error = done.stdout.splitlines()
    assert resolved == "('HuggingFaceTB/SmolLM2-360M-Instruct', None)"
    assert "Did you mean 'HuggingFaceTB/SmolLM2-360M-Instruct' or" in error


def test_a_real_local_model_folder_still_loads(tmp_path):
    pytest.importorskip("transformers")
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model(layers=1, hidden=16, heads=2)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path), device="cpu")
    assert loaded.config.num_hidden_layers == 1
