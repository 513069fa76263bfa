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

    targets = {t["target"] for t in report["targets"]}
    assert {"blind pairs: cascade F1", "test within-case pairs wrongly matched",
            "fuzzy throughput vs bare cdist"} <= targets
    assert all(t["met"] in (True, False, None) for t in report["targets"])
    assert "Quick run" in markdown and meta["command"] in markdown
    for heading in ("## Targets", "## 1. Accuracy", "## 2. Plain fuzzy", "## 3. Speed"):
        assert heading in markdown
