#!/usr/bin/env bash
# One GPU window (a lent H200, 10 minutes a command) as one command: a tiny end-to-end rehearsal on
# the device (eager, then with --cuda-graph), PQN's GPU benchmark at 128 envs (eager against the
# captured update), then the shipped Pong and Enduro agents (scripts/train_pretrained.py), trained
# with the captured update when the benchmark measured it faster. Each game's archive is copied to
# $OUT as soon as it exists, so a later failure or the command's limit loses nothing before it.
#   OUT=/tmp/out scripts/gpu_window.sh   # about 9 minutes with the defaults
# CPU rehearsal with tiny budgets (no GPU: no --cuda-graph and no benchmark):
#   OUT=/tmp/out PONG=3 ENDURO=3 EXTRA="--num-envs 4 --rollout 8 --eval-episodes 1 --device cpu" scripts/gpu_window.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder that comes back}" "${PONG:=150}" "${ENDURO:=170}" "${TOTAL:=5000000}"
: "${BENCH_STEPS:=100000}" "${BENCH_SECONDS:=100}" "${EXTRA:=}" "${WORK:=runs/pretrained}"
: "${PYTHON:=python3}"  # the interpreter that has the project (a venv's, in the tests)
mkdir -p "$OUT"
log=$OUT/log.txt
scratch=$(mktemp -d)
stage() { echo "== $1 at $SECONDS s" | tee -a "$log"; }
py() { "$PYTHON" "$@" 2>&1 | tee -a "$log"; }
rehearse() {
  py scripts/train_pretrained.py --out "$scratch/rehearsal" --work-dir "$scratch/runs$1" --games pong:2 \
    --num-envs 8 --rollout 8 --eval-episodes 1 --no-progress $EXTRA $1
}

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)
stage "machine: ${gpu:-no GPU}, $(nproc) cores"
stage rehearsal
rehearse "" || { stage "rehearsal failed"; exit 1; }
graph=""
if [ -n "$gpu" ]; then
  stage "rehearsal with --cuda-graph"
  rehearse --cuda-graph && graph=--cuda-graph || stage "--cuda-graph failed: training eagerly"
  stage "pqn-gpu benchmark at 128 envs"
  timeout "$BENCH_SECONDS" "$PYTHON" scripts/benchmark.py pqn-gpu --steps "$BENCH_STEPS" --num-envs 128 \
    --json "$OUT/pqn_gpu.json" 2>&1 | tee -a "$log"
  cp docs/benchmarks.md "$OUT"/benchmarks.md
  faster=$("$PYTHON" - "$OUT/pqn_gpu.json" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
eager, graph = (r.get(k, {}).get("sps", 0) for k in ("128 envs, float32", "128 envs, float32, CUDA graph"))
print("yes" if graph > eager > 0 else "no")
PY
)
  [ "$faster" = yes ] || graph=""
  stage "training with: ${graph:-the eager update}"
fi

for spec in "pong:$PONG" "enduro:$ENDURO"; do
  game=${spec%%:*}
  stage "$game"
  py scripts/train_pretrained.py --out "$scratch/packed" --work-dir "$WORK" --games "$spec" \
    --total-steps "$TOTAL" --no-progress $EXTRA $graph \
    && cp "$scratch/packed/$game.tar.gz" "$OUT"/ || stage "$game failed"
done
# the TensorBoard events of both runs, without their checkpoints
tar -czf "$OUT"/runs.tar.gz --exclude='checkpoint*' -C "$(dirname "$WORK")" "$(basename "$WORK")"
rm -rf "$scratch"
stage done
