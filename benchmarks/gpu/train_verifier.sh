#!/bin/bash
# Retrain the event verifier on one GPU (scripts/train_verifier.py), a few variants at once.
#
#   train_verifier.sh launch     start every variant in its own session and return at once
#   train_verifier.sh wait S     wait up to S seconds for all of them, printing progress
#   train_verifier.sh collect    copy each variant's weights, manifest and log into $OUT
#
# Run after `source benchmarks/gpu/setup_device.sh` (MiniLM and the wheels). The variants are
# chosen before training; the one shipped is picked on dev pairs by a rule written down before
# any candidate is scored (benchmarks/results/verifier_retrain.md, scripts/select_verifier.py),
# and the benchmarks then measure the shipped file.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
VT=${VT:-/tmp/vt}
# SET=minilm (default): scripts/train_verifier.py; SET=smollm2: scripts/train_verifier_smollm2.py
# on the dequantised SmolLM2 in $MODEL (default /tmp/smollm2)
declare -A VARIANTS
if [ "${SET:-minilm}" = smollm2 ]; then
  SCRIPT=scripts/train_verifier_smollm2.py
  # round 6: one variant, round 5's settings (round 5, smol_copy: near copies and pairs_hard
  # part 3b; round 4, smol_hard: data/pairs_hard; round 3, smol_free: data/pairs_free) with
  # data/pairs_press added to its training set; batch 128, lr 4e-4, one epoch
  VARIANTS=([smol_press]="--base ${MODEL:-/tmp/smollm2} --batch-size 128 --lr 4e-4")
else
  SCRIPT=scripts/train_verifier.py
  VARIANTS=([defaults]="" [top2]="--layers 2 --lr 3e-4" [long]="--lr 3e-4 --epochs 4")
fi
case "${1:-}" in
  launch)
    rm -rf "$VT"; mkdir -p "$VT"
    for name in "${!VARIANTS[@]}"; do
      # shellcheck disable=SC2086
      setsid nohup bash -c "python3 $SCRIPT --out $VT/$name ${VARIANTS[$name]} \
        > $VT/$name.log 2>&1; echo \$? > $VT/$name.rc" < /dev/null > /dev/null 2>&1 &
    done
    echo "launched ${!VARIANTS[*]} $(date -u +%FT%TZ)"
    ;;
  wait)
    deadline=$((SECONDS + ${2:-500}))
    while [ $SECONDS -lt $deadline ]; do
      done=0
      for name in "${!VARIANTS[@]}"; do [ -f "$VT/$name.rc" ] && done=$((done + 1)); done
      [ $done -eq ${#VARIANTS[@]} ] && break
      sleep 10
    done
    for name in "${!VARIANTS[@]}"; do
      echo "== $name rc=$(cat "$VT/$name.rc" 2>/dev/null || echo running)"
      grep -E "'loss'|^step|dev \(|trained in|wrote" "$VT/$name.log" | tail -4
    done
    ;;
  collect)
    for name in "${!VARIANTS[@]}"; do
      mkdir -p "$OUT/$name"
      cp "$VT/$name.log" "$OUT/$name/" 2>/dev/null
      cp "$VT/$name"/event_verifier.* "$OUT/$name/" 2>/dev/null
    done
    ls -la "$OUT"/*
    ;;
  *) echo "usage: $0 launch|wait S|collect" >&2; exit 2 ;;
esac
