#!/usr/bin/env bash
# The GPU race as one prepared device run (the GPU issue; docs/benchmarks.md, "The GPU race"): phase 1 times DCCS
# on Fashion-MNIST for eager fp32 and every lever alone and combined; phase 2 races two seeds of the paper's settings
# and two of the fast preset at once on the one GPU for 5 minutes with the fastest correct setup, ACC on all 70,000
# images every 30 s. Phases 1 and 2 together
# stay under 9 minutes (each capped by `timeout`); every output goes under $OUT.
#
# Here, once (the data does not travel by itself; .data/ is git-ignored):
#     mkdir -p .data && cp ../shared/data/fashion-mnist.npz .data/
# Then, through the device tool:
#     run(command="bash benchmarks/gpu_race.sh", carry=[".data"], timeout_s=600)
# The figures go into docs/benchmarks.md with the date, the GPU, the commit and this command.
#
# Sizes (environment): SETUPS (phase 1, comma-separated: eager,tf32,bf16,compile,graphs,graphs+tf32,graphs+bf16),
# STEPS timed steps per setup and WARMUP untimed ones, SETUP_CAP seconds per setup, PHASE1_CAP; RACE_SETUP
# (compile/precision of phase 2, e.g. "reduce-overhead bf16"; auto: the fastest phase-1 setup whose losses stayed
# finite), RACE_MINUTES, RACE_SEEDS, RACE_SCHEDULES (paper,fast: the fast preset beside the paper's), EVAL_SECONDS,
# PHASE2_CAP. CPU smoke test (about a minute; figures meaningless):
#     SMOKE=1 bash benchmarks/gpu_race.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-race}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1
if [ -n "${SMOKE:-}" ]; then  # the CPU, digits, a few steps: checks that every phase runs end to end
    DEVICE=cpu DATASET=digits DATA="" SETUPS=${SETUPS:-eager,bf16,compile} STEPS=${STEPS:-4} WARMUP=${WARMUP:-2}
    RACE_MINUTES=${RACE_MINUTES:-0.15} EVAL_SECONDS=${EVAL_SECONDS:-4} RACE_SETUP=${RACE_SETUP:-"none fp32"}
    SETUP_CAP=${SETUP_CAP:-240} PHASE1_CAP=${PHASE1_CAP:-600}
fi
DEVICE=${DEVICE:-cuda}
DATASET=${DATASET:-fashion-mnist}
DATA=${DATA-.data/fashion-mnist.npz}
SETUPS=${SETUPS:-eager,tf32,bf16,compile,graphs,graphs+tf32,graphs+bf16}
STEPS=${STEPS:-150}
WARMUP=${WARMUP:-20}
SETUP_CAP=${SETUP_CAP:-45}
PHASE1_CAP=${PHASE1_CAP:-200}
RACE_SETUP=${RACE_SETUP:-auto}
RACE_MINUTES=${RACE_MINUTES:-5}
RACE_SEEDS=${RACE_SEEDS:-0,1}
RACE_SCHEDULES=${RACE_SCHEDULES:-paper,fast}
EVAL_SECONDS=${EVAL_SECONDS:-30}
PHASE2_CAP=${PHASE2_CAP:-330}
DATA_ARGS=()
if [ -n "$DATA" ]; then
    if [ ! -f "$DATA" ]; then
        echo "no data file at $DATA: copy ../shared/data/fashion-mnist.npz into .data/ and carry .data" >&2
        exit 2
    fi
    DATA_ARGS=(--data-path "$DATA")
fi
{
    date -u
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    git log -1 --format='commit %h %s' 2>/dev/null || true
    echo "command: SETUPS=$SETUPS STEPS=$STEPS WARMUP=$WARMUP RACE_SETUP=$RACE_SETUP RACE_MINUTES=$RACE_MINUTES bash benchmarks/gpu_race.sh"
} 2>&1 | tee "$OUT/machine.txt"

echo "== phase 1: seconds per epoch, eager fp32 and each lever ($SETUPS)" | tee "$OUT/levers.txt"
timeout "$PHASE1_CAP" "$PY" benchmarks/gpu_race.py levers --dataset "$DATASET" "${DATA_ARGS[@]}" --device "$DEVICE" \
    --setups "$SETUPS" --steps "$STEPS" --warmup "$WARMUP" --setup-cap "$SETUP_CAP" 2>&1 | tee -a "$OUT/levers.txt"
echo "phase 1 exit status ${PIPESTATUS[0]}" | tee -a "$OUT/levers.txt"

if [ "$RACE_SETUP" = auto ]; then  # the fastest setup of phase 1 whose losses stayed finite
    RACE_SETUP=$("$PY" - "$OUT/levers.txt" <<'PYEND'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ok = [r for r in rows if r["losses_finite"] and not r["compile_failed"]]
best = min(ok, key=lambda r: r["s_per_epoch"]) if ok else {"compile": "none", "precision": "fp32"}
print(best["compile"], best["precision"])
PYEND
)
fi
read -r RACE_COMPILE RACE_PRECISION <<< "$RACE_SETUP"
echo "== phase 2: presets $RACE_SCHEDULES × seeds $RACE_SEEDS at once, $RACE_COMPILE / $RACE_PRECISION, $RACE_MINUTES min, ACC every $EVAL_SECONDS s" \
    | tee "$OUT/race.txt"
timeout "$PHASE2_CAP" "$PY" benchmarks/gpu_race.py race --dataset "$DATASET" "${DATA_ARGS[@]}" --device "$DEVICE" \
    --seeds "$RACE_SEEDS" --schedules "$RACE_SCHEDULES" --minutes "$RACE_MINUTES" --eval-seconds "$EVAL_SECONDS" --compile "$RACE_COMPILE" \
    --precision "$RACE_PRECISION" --out "$OUT" 2>&1 | tee -a "$OUT/race.txt"
echo "phase 2 exit status ${PIPESTATUS[0]}" | tee -a "$OUT/race.txt"
