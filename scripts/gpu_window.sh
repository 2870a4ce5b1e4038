#!/usr/bin/env bash
# One GPU window (a lent H200, 10 minutes a command) as one command: a tiny end-to-end rehearsal on
# the device (--cuda-graph --env-groups 2), PQN's GPU benchmark at 128 envs (eager, the captured
# update, two env groups), then Pong and Enduro agents (scripts/train_pretrained.py), trained with
# whichever float32 setup the benchmark measured fastest and evaluated at their last three
# checkpoints (the final one is packed). Each game's archive is copied to $OUT as
# soon as it exists, so a later failure or the command's limit loses nothing before it.
# A game whose seconds are 0 is skipped. The defaults: a 5-minute Pong (--time-limit 300); Enduro
# already ships (pretrained/enduro, from the first window). Last, with what is left, SB3 PPO's
# rollouts with the policy on the GPU (attn bench sb3 --device cuda);
# SB3 imports cloudpickle, which device-wheels.sh fetches only when asked (its image list lacks it):
# ../shared/tools/device-wheels.sh cloudpickle. The benchmarks' results come back as JSON in $OUT
# (pqn_gpu.json, sb3_gpu.json): `attn bench docs $OUT/*.json` renders them into docs/.
#   OUT=/tmp/out scripts/gpu_window.sh   # about 9 minutes; of the call's LIMIT=590 s, the SB3 stage
#   takes only what the stages before it leave.
#   Install the wheels in a call of its own before it, so that this one fits a call's 10 minutes.
# CPU rehearsal with tiny budgets (no GPU: --env-groups 2, no --cuda-graph and no benchmark):
#   OUT=/tmp/out PONG=3 ENDURO=3 EXTRA="--num-envs 4 --rollout 8 --eval-episodes 1 --device cpu" scripts/gpu_window.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder that comes back}" "${PONG:=300}" "${ENDURO:=0}" "${TOTAL:=5000000}"
: "${BENCH_STEPS:=60000}" "${BENCH_SECONDS:=130}" "${SB3_SECONDS:=75}" "${EXTRA:=}" "${WORK:=runs/pretrained}"
: "${LIMIT:=590}"  # seconds this command may run (a device call's 10 minutes, less a margin)
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
flags=""
if [ -z "$gpu" ]; then
  stage rehearsal
  rehearse "--env-groups 2" || { stage "rehearsal failed"; exit 1; }
else
  stage "rehearsal with --cuda-graph --env-groups 2"
  rehearse "--cuda-graph --env-groups 2" || stage "rehearsal failed: the benchmark decides alone"
  stage "pqn-gpu benchmark at 128 envs"
  timeout "$BENCH_SECONDS" "$PYTHON" scripts/benchmark.py pqn-gpu --steps "$BENCH_STEPS" --num-envs 128 \
    --out "$OUT" 2>&1 | tee -a "$log"
  # the fastest float32 setup that trained in the benchmark (bf16 changes the numbers too)
  flags=$("$PYTHON" - "$OUT/pqn_gpu.json" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))["data"]
flags = {"float32": "", "float32, CUDA graphs": "--cuda-graph",
         "float32, CUDA graphs, 2 env groups": "--cuda-graph --env-groups 2",
         "float32, 2 env groups": "--env-groups 2"}
sps = {f: r[f"128 envs, {k}"]["sps"] for k, f in flags.items() if "sps" in r.get(f"128 envs, {k}", {})}
print(max(sps, key=sps.get) if sps else "")
PY
)
  stage "training with: ${flags:-the eager update, one env group}"
fi

for spec in "pong:$PONG" "enduro:$ENDURO"; do
  game=${spec%%:*}
  if [ "${spec#*:}" = 0 ]; then stage "$game skipped (0 seconds)"; continue; fi
  stage "$game"
  py scripts/train_pretrained.py --out "$scratch/packed" --work-dir "$WORK" --games "$spec" \
    --total-steps "$TOTAL" --no-progress --precision fp32 $EXTRA $flags \
    && cp "$scratch/packed/$game.tar.gz" "$OUT"/ || stage "$game failed"
done
# the TensorBoard events of the runs, without their checkpoints
tar -czf "$OUT"/runs.tar.gz --exclude='checkpoint*' -C "$(dirname "$WORK")" "$(basename "$WORK")"
rm -rf "$scratch"
left=$((LIMIT - SECONDS - 5))  # the SB3 stage takes what the call's limit leaves, up to SB3_SECONDS
if [ -n "$gpu" ] && [ "$SB3_SECONDS" != 0 ] && [ "$left" -ge 20 ]; then
  stage "sb3 benchmark with the policy on the GPU"
  timeout "$(( left < SB3_SECONDS ? left : SB3_SECONDS ))" "$PYTHON" scripts/benchmark.py sb3 \
    --device cuda --out "$OUT" 2>&1 | tee -a "$log"
elif [ -n "$gpu" ]; then
  stage "sb3 benchmark skipped: $left s left of the call"
fi
stage done
