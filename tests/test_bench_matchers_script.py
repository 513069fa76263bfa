"""benchmarks/bench_matchers.py runs end to end (``--quick``) and writes both reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_matchers.py"


@pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/ is not part of this checkout")
def test_quick_run_writes_markdown_and_json(tmp_path):
    pytest.importorskip("sentence_transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    markdown = (tmp_path / "matchers.md").read_text(encoding="utf-8")
    report = json.loads((tmp_path / "matchers.json").read_text(encoding="utf-8"))

    assert set(report) >= {"meta", "targets", "accuracy", "fuzzy", "speed"}
    meta = report["meta"]
    assert meta["quick"] is True and "--quick" in meta["command"]
    assert {"date", "command", "machine", "verifier"} <= set(meta)
    assert "never on the blind or audit pairs" in meta["verifier"]

    datasets = report["accuracy"]
    assert {"blind", "test within-case", "bank test", "dblp-acm"} <= set(datasets)
    names = {row["matcher"] for row in datasets["blind"]["results"]}
    assert {"raw rapidfuzz", "raw MiniLM cosine", "exact", "fuzzy", "embedding", "verifier",
            "cascade"} <= names and "llm" not in names
    for row in datasets["blind"]["results"]:
        assert {"precision", "recall", "f1", "roc_auc", "f1_ci95", "pairs_per_s",
                "accuracy_by_kind"} <= set(row)
    assert report["fuzzy"]["ratio_vs_cdist"] > 0
    assert report["speed"]["verifier_load_s"] > 0
    assert set(report["speed"]["classifier_build_s_median"]) == {  # with and without init
        "classifier, head initialised (before)", "classifier, initialisation skipped (now)",
        "whole load (now)"}
    stages = report["speed"]["default_cascade_stage_s_median"]
    assert set(stages) == {"verifier forward", "embedding encode"}
    total = report["speed"]["median_s"]["composite reward (default cascade)"]
    assert all(0 < seconds <= total for seconds in stages.values())  # parts of each step

    targets = {t["target"] for t in report["targets"]}
    assert {"blind pairs: cascade F1", "test within-case pairs wrongly matched",
            "fuzzy throughput vs bare cdist"} <= targets
    assert all(t["met"] in (True, False, None) for t in report["targets"])
    assert "Quick run" in markdown and meta["command"] in markdown
    for heading in ("## Targets", "## 1. Accuracy", "## 2. Plain fuzzy", "## 3. Speed"):
        assert heading in markdown


LOAD_SCRIPT = ROOT / "benchmarks" / "bench_verifier_load.py"


@pytest.mark.skipif(not LOAD_SCRIPT.exists(), reason="benchmarks/ is not part of this checkout")
def test_the_verifier_load_benchmark_times_both_builds(tmp_path):
    pytest.importorskip("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(LOAD_SCRIPT), "--repeats", "1", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "verifier_load.json").read_text(encoding="utf-8"))
    assert len(report["median_s"]) == 3 and all(v > 0 for v in report["median_s"].values())
    assert "--repeats 1" in report["command"]
    assert report["command"] in (tmp_path / "verifier_load.md").read_text(encoding="utf-8")


TOKENS_SCRIPT = ROOT / "benchmarks" / "bench_pair_tokens.py"


@pytest.mark.skipif(not TOKENS_SCRIPT.exists(), reason="benchmarks/ is not part of this checkout")
def test_the_pair_tokens_benchmark_checks_both_ways_agree(tmp_path):
    pytest.importorskip("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(TOKENS_SCRIPT), "--cases", "1", "--repeats", "1",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "pair_tokens.json").read_text(encoding="utf-8"))
    assert report["pairs_per_step_median"] > 1000 and report["speedup"] > 0
    assert report["command"] in (tmp_path / "pair_tokens.md").read_text(encoding="utf-8")
