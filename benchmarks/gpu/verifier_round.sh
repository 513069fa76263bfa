#!/bin/bash
# One GPU session: a verifier retrain beside the results table's run, then the measurements.
#
#   verifier_round.sh launch     start train_verifier.sh (SET=smollm2) and results_table.sh (SAMPLED=0;
#                                ONLY=grpo_base re-runs only GRPO from the base, `score` merges it;
#                                ONLY=none starts no results-table stage)
#   verifier_round.sh wait S     up to S seconds, until both are done (or S passes); progress
#   verifier_round.sh measure    choose by the rule (scripts/select_verifier.py on $DEV_SET, default
#                                data/pairs_dev4; round 4 chose on data/pairs_dev3, round 3 on
#                                data/pairs_dev2: the retrain ships if its ROC AUC there beats
#                                the shipped file's, its bank dev AUC is within 0.005 of it and,
#                                from round 5, its paraphrase accuracy within 0.02), then, in a copy of
#                                the tree with the chosen file in the package, start
#                                bench_matchers.py and exploits.py (side by side)
#   verifier_round.sh score      once the results table's run is done: its trees, scored by
#                                results_table.py in that copy
#   verifier_round.sh collect    pack everything into $OUT
# wait, measure and score also copy into their call's $OUT whatever exists by then (harvest).
#
# After `source benchmarks/gpu/setup_device.sh` (the model in /tmp/smollm2, MiniLM, the wheels).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
VT=${VT:-/tmp/vt}; RT=${RT:-/tmp/rt}; M=${M:-/tmp/m}; CAND=${CAND:-smol_press}
WEIGHTS=${WEIGHTS:-src/psychohistory/matching/weights}
harvest() {  # whatever exists so far, into this call's $OUT: a lent machine can be released
  # between two calls (30 s idle) or taken back, and what is not returned is lost with it
  [ -n "${OUT:-}" ] || return 0
  cp "$VT/$CAND"/event_verifier.safetensors "$VT/$CAND"/event_verifier.json "$OUT/" 2>/dev/null
  cp "$VT/$CAND.log" "$M/verifier_selection.md" "$M/verifier_selection.json" "$OUT/" 2>/dev/null
  [ -s "$M/bench_rewards.json" ] && cp "$M/bench_rewards.json" "$OUT/"
  for f in matchers exploits results_table; do
    cp "$M/tree/benchmarks/results/$f.md" "$M/tree/benchmarks/results/$f.json" "$OUT/" 2>/dev/null
  done
  # the scored table's folder (plots, reports, trees) once results_table.py has written it
  [ -f "$M/tree/benchmarks/results/results_table.md" ] && \
    tar czf "$OUT/results_table_dir.tgz" -C "$M/tree/benchmarks/results" results_table 2>/dev/null
  return 0
}

case "${1:-}" in
  launch)
    SET=smollm2 bash benchmarks/gpu/train_verifier.sh launch
    # ONLY=none: the verifier's round alone (round 6), no results-table stage beside it
    [ "${ONLY:-}" = none ] || SAMPLED=0 ONLY=${ONLY:-} bash benchmarks/gpu/results_table.sh launch
    ;;
  wait)
    deadline=$((SECONDS + ${2:-540}))
    while [ $SECONDS -lt $deadline ]; do
      [ -f "$VT/$CAND.rc" ] && { [ "${ONLY:-}" = none ] || grep -q DONE "$RT/progress" 2>/dev/null; } \
        && break
      sleep 5
    done
    SET=smollm2 bash benchmarks/gpu/train_verifier.sh wait 0
    bash benchmarks/gpu/results_table.sh wait 0 | tail -12
    for f in "$M"/logs/*.log; do [ -f "$f" ] && echo "== $f" && tail -n 3 "$f" | cut -c1-300; done
    harvest
    ;;
  measure)
    mkdir -p "$M/cands/shipped" "$M/logs"
    cp "$WEIGHTS"/event_verifier.safetensors "$WEIGHTS"/event_verifier.json "$M/cands/shipped/"
    cp -r "$VT/$CAND" "$M/cands/$CAND"
    python3 scripts/select_verifier.py "$M/cands/shipped" "$M/cands/$CAND" --set "${DEV_SET:-pairs_dev4}" \
      --out "$M/verifier_selection.md" > "$M/logs/select.log" 2>&1 || { tail "$M/logs/select.log"; exit 1; }
    chosen=$(python3 - "$M/verifier_selection.json" "$CAND" <<'PY'
import json, sys
rows = {r["candidate"]: r for r in json.load(open(sys.argv[1]))}
old, new = rows["shipped"], rows[sys.argv[2]]
# round 5's rule, kept for round 6 (verifier_retrain.md): round 4's, and paraphrase recall
# kept within 0.02
ships = (new["pairs_dev"]["auc"] > old["pairs_dev"]["auc"]
         and new["bank_dev_auc"] >= old["bank_dev_auc"] - 0.005
         and new["accuracy_by_kind"]["paraphrase"] >= old["accuracy_by_kind"]["paraphrase"] - 0.02)
print(sys.argv[2] if ships else "shipped")
PY
)
    echo "chosen: $chosen"; echo "$chosen" > "$M/chosen"
    mkdir -p "$M/tree"
    tar -cf - --exclude=./.carry --exclude=./.whl --exclude=./.git . | tar -xf - -C "$M/tree"
    cp "$M/cands/$chosen"/event_verifier.* "$M/tree/$WEIGHTS/" || exit 1
    cd "$M/tree"
    export PYTHONPATH=/tmp/site:$M/tree/src
    # the reward latency after the matcher benchmark, not beside it (both are timings)
    setsid nohup bash -c "python3 benchmarks/bench_matchers.py > $M/logs/bench_matchers.log 2>&1; \
      echo \$? > $M/bench.rc; python3 -m psychohistory.cli bench rewards --repeats 5 \
      > $M/bench_rewards.json 2> $M/logs/bench_rewards.log" < /dev/null > /dev/null 2>&1 &
    setsid nohup bash -c "python3 benchmarks/exploits.py > $M/logs/exploits.log 2>&1; \
      echo \$? > $M/exploits.rc" < /dev/null > /dev/null 2>&1 &
    harvest
    ;;
  score)
    bash benchmarks/gpu/results_table.sh collect > /dev/null
    cd "$M/tree"
    export PYTHONPATH=/tmp/site:$M/tree/src
    if [ -n "${ONLY:-}" ]; then  # one stage re-run: its folder and trees replace the old ones
      rt=benchmarks/results/results_table
      rm -rf "$rt/$ONLY" "$rt"/reports
      cp -r "$RT/pack/$ONLY" "$rt/"
      cp -r "$RT/pack/trees/." "$rt/trees/"; cp -r "$RT/pack/logs/." "$rt/logs/"
      cat "$RT/pack/progress" >> "$rt/progress"
    else
      rm -rf benchmarks/results/results_table/{trees,logs,reports,grpo_base,grpo_sft,sft}
      cp -r "$RT/pack/." benchmarks/results/results_table/
    fi
    timeout 400 python3 benchmarks/results_table.py > "$M/logs/results_table.log" 2>&1
    echo "results_table rc=$?"; tail -n 40 "$M/logs/results_table.log" | cut -c1-300
    harvest
    ;;
  collect)
    harvest
    cp "$VT/$CAND.log" "$M/logs/train_$CAND.log" 2>/dev/null
    cp "$VT/$CAND"/event_verifier.json "$M/logs/event_verifier_$CAND.json" 2>/dev/null
    tar czf "$OUT/round.tgz" -C "$M" logs chosen $(cd "$M" && ls -d tree/benchmarks/results 2>/dev/null)
    ls -la "$OUT"
    ;;
  *) echo "usage: $0 launch|wait S|measure|score|collect" >&2; exit 2 ;;
esac
