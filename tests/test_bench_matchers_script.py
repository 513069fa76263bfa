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
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]

    markdown = (tmp_path / "matchers.md").read_text(encoding="utf-8")
    report = json.loads((tmp_path / "matchers.json").read_text(encoding="utf-8"))

    assert set(report) >= {"meta", "targets", "accuracy", "throughput", "embedding"}
    meta = report["meta"]
    assert meta["quick"] is True
    assert {"date", "command", "machine"} <= set(meta)
    assert "--quick" in meta["command"]
    assert {"cpu", "cores", "psychohistory"} <= set(meta["machine"])

    datasets = report["accuracy"]
    assert {"event-pairs fresh", "event-pairs heldout", "event-pairs development", "case-outcomes",
            "dblp-acm"} <= set(datasets)
    names = {row["matcher"] for row in datasets["event-pairs heldout"]["results"]}
    assert {"raw rapidfuzz", "raw MiniLM cosine", "exact", "fuzzy", "embedding",
            "cascade"} <= names
    assert "llm" not in names
    for row in datasets["event-pairs heldout"]["results"]:
        assert {"precision", "recall", "f1", "roc_auc", "pairs_per_s",
                "accuracy_by_kind"} <= set(row)

    throughput = report["throughput"]
    assert {"fuzzy_cold_vs_cdist", "fuzzy_warm_vs_cdist", "fuzzy_cold_vs_difflib"} <= set(
        throughput["ratios"])
    assert throughput["difflib_extrapolated"] is True
    assert report["embedding"]["encode_once"]["passed"] is True
    assert report["embedding"]["sentences_per_s_best"] > 0

    targets = {t["target"] for t in report["targets"]}
    assert "cascade (no LLM) F1" in targets
    assert all(t["met"] in (True, False, None) for t in report["targets"])

    assert "Quick run" in markdown
    assert meta["machine"]["cpu"] in markdown
    assert meta["command"] in markdown
    for heading in ("## Targets", "## 1. Accuracy", "## 2. Fuzzy throughput",
                    "## 3. Embedding encoding"):
        assert heading in markdown
