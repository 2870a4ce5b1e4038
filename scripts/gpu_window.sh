#!/usr/bin/env bash
# One GPU window (a lent H200, 10 minutes a command) as one command: a tiny end-to-end rehearsal on
# the device, then the shipped Pong and Enduro agents (scripts/train_pretrained.py), then PQN's GPU
# benchmark (scripts/benchmark.py pqn-gpu) in the time that is left. Each game's archive is copied to
# $OUT as soon as it exists, so a later failure or the command's limit loses nothing before it.
#   OUT=/tmp/out PONG=160 ENDURO=190 scripts/gpu_window.sh
# CPU rehearsal with tiny budgets:
#   OUT=/tmp/out PONG=3 ENDURO=3 BUDGET=120 EXTRA="--num-envs 4 --rollout 8 --eval-episodes 1 --device cpu" scripts/gpu_window.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1  # bars would flood the log that comes back
: "${OUT:?set OUT to the folder that comes back}" "${PONG:=160}" "${ENDURO:=190}" "${TOTAL:=5000000}"
: "${BUDGET:=570}" "${BENCH_STEPS:=100000}" "${EXTRA:=}"
log=$OUT/log.txt
stage() { echo "== $1 at $SECONDS s" | tee -a "$log"; }
py() { python3 "$@" 2>&1 | tee -a "$log"; }

stage "machine: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo no GPU), $(nproc) cores"
stage rehearsal
py scripts/train_pretrained.py --out /tmp/rehearsal --work-dir /tmp/rehearsal_runs --games pong:2 \
  --num-envs 8 --rollout 8 --eval-episodes 1 $EXTRA || { stage "rehearsal failed"; exit 1; }

for spec in "pong:$PONG" "enduro:$ENDURO"; do
  game=${spec%%:*}
  stage "$game"
  py scripts/train_pretrained.py --out /tmp/packed --games "$spec" --total-steps "$TOTAL" $EXTRA \
    && cp /tmp/packed/"$game".tar.gz "$OUT"/ || stage "$game failed"
done

left=$((BUDGET - SECONDS))
stage "pqn-gpu benchmark, ${left} s left"
if [ "$left" -gt 30 ]; then
  timeout "$left" python3 scripts/benchmark.py pqn-gpu --steps "$BENCH_STEPS" 2>&1 | tee -a "$log" \
    && cp docs/benchmarks.md "$OUT"/benchmarks.md
fi
tar -czf "$OUT"/runs.tar.gz --exclude='checkpoint*' -C runs pretrained 2>/dev/null
stage done
