"""Every script in examples/ runs, with tiny settings, and writes what it promises.

Each example runs in a subprocess (``sys.executable``, ``HF_HUB_OFFLINE=1``, a temporary
``--out`` and working directory), as a user would run it. The training examples use
``--tiny``: a random-init two-layer llama, one or two steps, 8-token completions. The Modal
example is imported and its entry point called with the remote call replaced by the GPU
function's ``.local(...)`` and the volume pointed at a temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
TRAINING = ["train_grpo_local.py", "sft_then_grpo.py", "modal_run.py"]


def run_example(name: str, *args: str, cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


def needs(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module)


def test_every_example_has_a_test():
    tested = {"quickstart.py", "evaluate_trees.py", "custom_reward_plugin.py",
              "benchmark_matchers.py", *TRAINING}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("name", ["train_grpo_local.py", "sft_then_grpo.py"])
def test_training_examples_take_tiny_and_out(name, tmp_path):
    text = run_example(name, "--help", cwd=tmp_path, timeout=120)
    assert "--tiny" in text and "--out" in text


def test_modal_example_takes_tiny_and_out():
    source = (EXAMPLES / "modal_run.py").read_text(encoding="utf-8")
    assert "@app.local_entrypoint()" in source
    assert "tiny: bool = False" in source and 'out: str = ""' in source


# ---------------------------------------------------------------------- quick ones


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "parsed tree: 4 nodes, depth 2" in out
    assert "children[0].probability: 1.7 is not in [0, 1]" in out
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert result["metrics"]["case_id"] == "brexit-2016"
    assert result["metrics"]["n_matched"] >= 2
    assert result["rewards"]["format"] == [1.0, -1.0]
    assert all(values[1] == -1.0 for values in result["rewards"].values())  # unparsable
    assert (tmp_path / "out" / "tree.json").exists()


def test_evaluate_trees_writes_a_report_folder(tmp_path):
    out = tmp_path / "report"
    text = run_example("evaluate_trees.py", "--tiny", "--out", str(out), cwd=tmp_path)
    assert "skipped:" in text and "unknown case_id 'no-such-case'" in text
    for name in ("report.json", "report.md", "reliability.png", "per_depth.png",
                 "sample_trees.jsonl"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["n_trees"] == 5 and report["n_unparsable"] == 1
    assert report["n_skipped_records"] == 1
    assert 0.0 < report["coverage"] < 1.0


def test_evaluate_trees_reads_a_given_file(tmp_path):
    import psychohistory as ph

    case = ph.load_dataset("historical", split="test")[0]
    trees = tmp_path / "trees.jsonl"
    trees.write_text(json.dumps({"case_id": case.id,
                                 "completion": case.to_tree(probability=0.9).to_json()}) + "\n")
    run_example("evaluate_trees.py", str(trees), "--out",
                str(tmp_path / "out"), cwd=tmp_path)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_trees"] == 1 and report["coverage"] == 1.0  # the real tree finds all


def test_custom_reward_plugin(tmp_path):
    text = run_example("custom_reward_plugin.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "registered by depth-example" in text
    values = json.loads((tmp_path / "rewards.json").read_text())
    assert set(values) == {"total", "calibration", "format", "depth"}
    assert values["depth"] == [1.0, pytest.approx(1 / 3), 0.0]
    assert values["total"][0] > values["total"][1] > values["total"][2]


def test_benchmark_matchers(tmp_path):
    text = run_example("benchmark_matchers.py", "--tiny", "--sweep", "cascade", "--out",
                       str(tmp_path), cwd=tmp_path)
    assert "F1 by threshold" in text
    rows = json.loads((tmp_path / "matchers.json").read_text())
    assert [row["matcher"] for row in rows] == ["exact", "fuzzy", "embedding", "cascade"]
    assert all(row["n_pairs"] == 60 for row in rows)
    assert (tmp_path / "matchers.md").read_text().startswith("| dataset | matcher |")


# ------------------------------------------------------------------- training ones


@pytest.mark.slow
def test_train_grpo_local_tiny(tmp_path):
    needs("trl", "peft")
    out = tmp_path / "grpo"
    text = run_example("train_grpo_local.py", "--tiny", "--out", str(out), cwd=tmp_path)
    assert "trained 1 steps" in text
    assert (out / "final" / "adapter_config.json").exists()
    assert (out / "checkpoint-1").is_dir()
    assert "[base]" in text and "[grpo]" in text  # both sides of the hot swap generated


@pytest.mark.slow
def test_sft_then_grpo_tiny(tmp_path):
    needs("trl", "peft")
    out = tmp_path / "run"
    text = run_example("sft_then_grpo.py", "--tiny", "--out", str(out), cwd=tmp_path)
    assert "SFT: 2 steps" in text and "GRPO: 1 steps" in text
    assert (out / "sft" / "final" / "adapter_config.json").exists()
    assert (out / "grpo" / "final" / "adapter_config.json").exists()
    report = (out / "report" / "report.md").read_text()
    assert "| metric | sft | sft+grpo |" in report


def load_modal_example():
    spec = importlib.util.spec_from_file_location("modal_run_example", EXAMPLES / "modal_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # builds the app: no network, no token
    return module


def test_modal_example_builds_offline():
    needs("modal")
    example = load_modal_example()
    assert example.app.name == "psychohistory"
    for kind in ("sft", "grpo"):
        spec = example.parts[kind]._spec_
        assert spec.gpus == "A10G" and list(spec.volumes) == ["/data"]


@pytest.mark.slow
def test_modal_example_main_runs_the_functions_locally(tmp_path, monkeypatch):
    needs("modal", "trl", "peft")
    monkeypatch.setenv("PSYCHOHISTORY_MODAL_DATA", str(tmp_path / "volume"))
    example = load_modal_example()
    calls = []

    def local(kind, job):  # the one network boundary, replaced by the function body
        calls.append((kind, len(job["cases"])))
        return dict(example.parts[kind].local(job))

    monkeypatch.setattr(example, "call_remote", local)
    results = example.main(kind="sft+grpo", tiny=True, out=str(tmp_path / "out"))
    volume = tmp_path / "volume"
    assert calls == [("sft", 2), ("grpo", 0)]  # cases uploaded once, then read on the volume
    assert len((volume / "cases" / "cases.jsonl").read_text().splitlines()) == 2
    assert results["sft"]["adapter_path"] == str(volume / "models" / "sft" / "final")
    assert results["grpo"]["adapter_path"] == str(volume / "models" / "grpo" / "final")
    for kind in ("sft", "grpo"):
        assert (volume / "models" / kind / "checkpoint-1").is_dir()
    saved = json.loads((tmp_path / "out" / "modal_results.json").read_text())
    assert saved["grpo"]["global_step"] == 1
