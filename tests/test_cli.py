import json

from click.testing import CliRunner

from psychohistory.cli import cli
from psychohistory.tree import parse_tree


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_plugins_json(fresh_plugins):
    result = run("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert "calibration" in rows["psychohistory.default_plugins.rewards"]["rewards"]


def test_validate_reports_every_bad_record(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "a", "seed": "S", "outcomes": [{"id": "o1", "event": "E"}]}\n'
                    '{"id": "b"}\n[]\n')
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:" in result.output and f"{path}:3:" in result.output
    assert "1 good, 2 bad" in result.output


def test_datasets_list_and_export(tmp_path):
    assert "historical" in run("datasets", "list").output
    out = tmp_path / "h.jsonl"
    result = run("datasets", "export", "historical", str(out), "--split", "test")
    assert result.exit_code == 0 and out.exists()
    assert run("validate", str(out)).exit_code == 0


def test_evaluate_writes_report_and_counts_skipped(tmp_path, brexit_case):
    from psychohistory.cases import save_cases

    cases = save_cases([brexit_case], tmp_path / "cases.jsonl")
    tree = parse_tree('{"seed": "S", "children": [{"event": "Theresa May resigns", '
                      '"probability": 0.3}]}')
    trees = tmp_path / "trees.jsonl"
    trees.write_text(json.dumps({"case_id": "brexit-2016", "completion": tree.to_json()})
                     + "\nnot json\n")
    result = run("evaluate", str(trees), str(cases), "--matcher", "exact", "--out",
                 str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and (tmp_path / "out" / "reliability.png").exists()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_skipped_records"] == 1 and report["n_trees"] == 1


def test_bench_matchers_on_a_user_file(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(r) for r in [
        {"left": "Fed raises rates", "right": "The Fed raises rates", "label": 1},
        {"left": "Fed raises rates", "right": "Fed cuts rates", "label": 0, "kind": "antonym"},
    ]) + "\n")
    out = tmp_path / "results.json"
    result = run("bench", "matchers", "--matcher", "exact", "--matcher", "fuzzy", "--pairs",
                 str(pairs), "--json", str(out))
    assert result.exit_code == 0, result.output
    names = {r["matcher"] for r in json.loads(out.read_text())}
    assert {"exact", "fuzzy", "raw rapidfuzz"} <= names


def test_plan_refuses_and_exits_nonzero():
    result = CliRunner().invoke(cli, ["plan", "gpt-oss-20b", "--gpu", "A10G"])
    assert result.exit_code == 2 and "does NOT fit on A10G" in result.output
    ok = CliRunner().invoke(cli, ["plan", "smollm2-135m-instruct", "--gpu", "A10G", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["fits"] is True


def test_train_grpo_from_a_config_file(tmp_path):
    import pytest

    pytest.importorskip("trl")
    from psychohistory.training.models import tiny_random_model

    model, tokenizer = tiny_random_model()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    config = tmp_path / "grpo.toml"
    config.write_text(f"""
[train]
model = "{tmp_path / 'model'}"
cases = "synthetic"
rewards = ["format", "calibration"]
output_dir = "{tmp_path / 'run'}"
max_steps = 1
num_generations = 2
per_device_train_batch_size = 2
max_completion_length = 8
""")
    result = run("train", "grpo", "--config", str(config), "--set", "logging_steps=1")
    assert result.exit_code == 0, result.output
    assert "trained 1 steps" in result.output
    assert (tmp_path / "run" / "final" / "adapter_config.json").exists()


def test_config_file_must_be_toml_or_yaml(tmp_path):
    bad = tmp_path / "settings.ini"
    bad.write_text("x=1")
    result = CliRunner().invoke(cli, ["train", "grpo", "--config", str(bad)])
    assert result.exit_code != 0 and ".toml, .yaml or .yml" in result.output


def test_a_flag_and_the_config_file_naming_one_setting_leave_nothing_for_trl():
    # --reward/--sft-adapter/--model given beside the file's key: the flag wins and the key is
    # gone, so it never reaches TRL's config as an unknown field
    from psychohistory.cli import _take

    settings = {"rewards": ["format"], "sft_adapter": "runs/sft/final", "max_steps": 3}
    assert _take(settings, "rewards", ["calibration"]) == ["calibration"]
    assert _take(settings, "sft_adapter") == "runs/sft/final"
    assert _take(settings, "model", None, "smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert settings == {"max_steps": 3}
