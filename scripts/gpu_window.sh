#!/usr/bin/env bash
# One GPU window (a lent H200, 10 minutes a command) as one command: a tiny end-to-end rehearsal on
# the device, then the shipped Pong and Enduro agents (scripts/train_pretrained.py), then PQN's GPU
# benchmark (scripts/benchmark.py pqn-gpu) in the time that is left. Each game's archive is copied to
# $OUT as soon as it exists, so a later failure or the command's limit loses nothing before it.
#   OUT=/tmp/out PONG=170 ENDURO=200 BUDGET=560 scripts/gpu_window.sh
# CPU rehearsal with tiny budgets (BUDGET=0 skips the benchmark, which needs CUDA):
#   OUT=/tmp/out PONG=3 ENDURO=3 BUDGET=0 EXTRA="--num-envs 4 --rollout 8 --eval-episodes 1 --device cpu" scripts/gpu_window.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder that comes back}" "${PONG:=170}" "${ENDURO:=200}" "${TOTAL:=5000000}"
: "${BUDGET:=560}" "${BENCH_STEPS:=100000}" "${EXTRA:=}" "${WORK:=runs/pretrained}"
mkdir -p "$OUT"
log=$OUT/log.txt
scratch=$(mktemp -d)
stage() { echo "== $1 at $SECONDS s" | tee -a "$log"; }
py() { python3 "$@" 2>&1 | tee -a "$log"; }

stage "machine: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo no GPU), $(nproc) cores"
stage rehearsal
py scripts/train_pretrained.py --out "$scratch/rehearsal" --work-dir "$scratch/rehearsal_runs" \
  --games pong:2 --num-envs 8 --rollout 8 --eval-episodes 1 --no-progress $EXTRA \
  || { stage "rehearsal failed"; exit 1; }

for spec in "pong:$PONG" "enduro:$ENDURO"; do
  game=${spec%%:*}
  stage "$game"
  py scripts/train_pretrained.py --out "$scratch/packed" --work-dir "$WORK" --games "$spec" \
    --total-steps "$TOTAL" --no-progress $EXTRA \
    && cp "$scratch/packed/$game.tar.gz" "$OUT"/ || stage "$game failed"
done

left=$((BUDGET - SECONDS))
stage "pqn-gpu benchmark, ${left} s left"
if [ "$left" -gt 30 ]; then
  timeout "$left" python3 scripts/benchmark.py pqn-gpu --steps "$BENCH_STEPS" 2>&1 | tee -a "$log" \
    && cp docs/benchmarks.md "$OUT"/benchmarks.md
fi
# the TensorBoard events of both runs, without their checkpoints
tar -czf "$OUT"/runs.tar.gz --exclude='checkpoint*' -C "$(dirname "$WORK")" "$(basename "$WORK")"
rm -rf "$scratch"
stage done
