"""Safe loading: no remote code unless asked, weights through safetensors, torch.load only with
weights_only=True, the shipped verifier hash-checked, and bitsandbytes left alone."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from psychohistory.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "psychohistory"


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


SOURCES = sorted(SRC.rglob("*.py"))


def test_the_library_never_turns_on_remote_code_itself():
    found = [where(path, call) for path in SOURCES for call in calls(path)
             if is_constant(keyword(call, "trust_remote_code"), True)]
    assert found == []


def test_the_model_loader_passes_trust_remote_code_false_unless_asked(monkeypatch, tmp_path):
    transformers = pytest.importorskip("transformers")
    from psychohistory.training import models

    seen: list[tuple[str, dict]] = []

    class Stop(Exception):
        pass

    def recorder(kind):
        def from_pretrained(path, **kwargs):
            seen.append((kind, kwargs))
            raise Stop

        return from_pretrained

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", recorder("model"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", recorder("tokenizer"))
    with pytest.raises(Stop):
        models.load_model(str(tmp_path), device="cpu")
    with pytest.raises(Stop):
        models.load_tokenizer(str(tmp_path))
    assert [(kind, kw["trust_remote_code"]) for kind, kw in seen] == [("model", False),
                                                                      ("tokenizer", False)]
    assert seen[0][1]["use_safetensors"] is True  # never a pickled pytorch_model.bin
    seen.clear()
    with pytest.raises(Stop):
        models.load_model(str(tmp_path), device="cpu", trust_remote_code=True)
    with pytest.raises(Stop):
        models.load_tokenizer(str(tmp_path), trust_remote_code=True)
    assert [kw["trust_remote_code"] for _, kw in seen] == [True, True]
    # and the inference front end passes the user's choice through, False by default
    from psychohistory.inference import ProbabilityTreeInference

    seen.clear()
    with pytest.raises(Stop):
        ProbabilityTreeInference(str(tmp_path), device="cpu")
    assert seen[0][1]["trust_remote_code"] is False


def test_every_from_pretrained_in_the_loader_is_explicit_about_remote_code():
    # models.py builds the call's keywords in a dict, so check each call or its dict
    path = SRC / "training" / "models.py"
    source = path.read_text(encoding="utf-8")
    for call in calls(path):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained":
            explicit = keyword(call, "trust_remote_code") is not None or any(
                kw.arg is None for kw in call.keywords)  # **kwargs, checked just below
            assert explicit, where(path, call)
    assert source.count('"trust_remote_code": trust_remote_code') == 2


def test_weights_are_saved_as_safetensors():
    found = [where(path, call) for path in SOURCES for call in calls(path)
             if is_constant(keyword(call, "safe_serialization"), False)
             or is_constant(keyword(call, "use_safetensors"), False)
             or is_constant(keyword(call, "save_safetensors"), False)]
    assert found == []
    source = (SRC / "training" / "models.py").read_text(encoding="utf-8")
    assert "save_pretrained(tmp, safe_serialization=True)" in source  # the converted SmolLM2


def test_a_model_folder_of_pickles_is_refused_before_anything_loads(tmp_path):
    from psychohistory.training.models import load_model

    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"a pickle that would run code")
    with pytest.raises(ConfigError, match=re.escape(
            f"model folder {tmp_path} holds pytorch_model.bin (pickles) and no .safetensors")):
        load_model(str(tmp_path), device="cpu")


def test_adapters_load_only_from_safetensors(tmp_path):
    from psychohistory.training.models import check_adapter

    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (tmp_path / "adapter_model.bin").write_bytes(b"a pickle")
    with pytest.raises(ConfigError, match=r"adapter_model\.bin, a pickle"):
        check_adapter(tmp_path)


def test_torch_load_only_with_weights_only():
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(
                    alias.name == "load" for alias in node.names):
                found.append(f"{where(path, node)} imports torch.load by name")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"
                    and not is_constant(keyword(node, "weights_only"), True)):
                found.append(f"{where(path, node)} calls torch.load without weights_only=True")
    assert found == []


def test_the_scan_would_catch_an_unsafe_torch_load(tmp_path):
    # the scan above is only as good as its pattern: check that it sees what it looks for
    sample = tmp_path / "sample.py"
    sample.write_text("import torch\nstate = torch.load('x.pt')\n"
                      "ok = torch.load('y.pt', weights_only=True)\n")
    unsafe = [c for c in calls(sample) if isinstance(c.func, ast.Attribute)
              and c.func.attr == "load" and not is_constant(keyword(c, "weights_only"), True)]
    assert [c.lineno for c in unsafe] == [2]


def test_the_event_verifier_file_is_hash_checked(tmp_path):
    pytest.importorskip("transformers")
    from psychohistory.matching.verifier import VerifierMatcher, weights_dir

    shipped = weights_dir() / "event_verifier.safetensors"
    tampered = tmp_path / "event_verifier.safetensors"
    shutil.copy(shipped, tampered)
    shutil.copy(shipped.with_suffix(".json"), tmp_path / "event_verifier.json")
    with tampered.open("r+b") as handle:  # flip one bit of the last tensor
        handle.seek(-3, 2)
        byte = handle.read(1)
        handle.seek(-3, 2)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ConfigError, match="fail their hash check"):
        VerifierMatcher(weights=tampered).score(["a"], ["b"])


def test_a_verifier_names_its_files_hash_without_loading_it():
    # what a training run records as its matcher (psychohistory_train.json) says which file
    from psychohistory.matching.verifier import VerifierMatcher, read_manifest, weights_dir

    sha = read_manifest(weights_dir() / "event_verifier.safetensors")["sha256"]
    verifier = VerifierMatcher()
    assert f"sha256='{sha[:12]}'" in repr(verifier)
    assert verifier._loaded is None  # the repr read the manifest only


BNB_CODE = """
import sys
import psychohistory as ph
import psychohistory.inference, psychohistory.training.models, psychohistory.training.sft
cascade = ph.get_matcher("cascade")
case = ph.Case(id="c", seed="S", outcomes=[ph.Outcome(id="a", event="Prices rise")])
tree = '{"seed": "S", "children": [{"event": "Prices rise", "probability": 0.9}]}'
assert ph.get_reward("calibration", matcher="exact")([tree], case=[case]) == [-0.01]
assert ph.TreeEvaluator(matcher="exact").evaluate(ph.parse_tree(tree), case).coverage == 1.0
print(sorted(m for m in ("bitsandbytes", "peft", "trl") if m in sys.modules))
"""


def test_bitsandbytes_is_not_imported_unless_4bit_is_asked_for():
    done = subprocess.run([sys.executable, "-c", BNB_CODE], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
    assert "gemm_4bit" not in done.stderr


EMBED_CODE = """
import sys
from psychohistory.matching.embedding import EmbeddingMatcher
EmbeddingMatcher().score(["Prices rise"], ["Prices fall"])
print("bitsandbytes" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                    reason="bitsandbytes is not installed: nothing can import it")
def test_the_embedding_stage_prints_no_bitsandbytes_warning():
    # sentence-transformers imports transformers.trainer_utils -> peft -> bitsandbytes, which
    # warns about 4-bit CPU kernels; matching/embedding.py quiets that logger while importing
    done = subprocess.run([sys.executable, "-c", EMBED_CODE], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gemm_4bit" not in done.stderr
