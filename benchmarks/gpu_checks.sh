#!/usr/bin/env bash
# The GPU checks of the DCSM issue and the β_Aug tuning issue as one prepared device run, sized for the device
# tool's 15 minutes per task (start-up included): about 8 minutes of work on an H100/H200, each phase capped.
#
# Here, once (the data does not travel by itself; .data/ is git-ignored):
#     mkdir -p .data && cp ../shared/data/fashion-mnist.npz .data/
# Then, through the device tool:
#     run(command="bash benchmarks/gpu_checks.sh", carry=[".data"], timeout_s=600)
# Every phase's output comes back as a file under $OUT; the figures go into docs/benchmarks.md.
#
# Sizes (environment): DCSM_MINUTES training minutes per method (DCCS, DCSM, DCSM-oc) in phase 1; TUNE_EPOCHS
# epochs per β_Aug value (auto: 0.8 × the epochs per minute DCCS reached alone in phase 1, so that six runs sharing
# the GPU finish both modes inside PHASE2_CAP; 4 if phase 1 gave no figure) and TUNE_PARALLEL runs at once in
# phase 2; PHASE1_CAP / PHASE2_CAP seconds before a phase is cut off. Smoke test on the CPU (figures meaningless):
#     OUT=/tmp/gpu-checks DEVICE=cpu DCSM_MINUTES=0.1 PHASE1_CAP=900 TUNE_EPOCHS=0.05 TUNE_VALUES=1,2 TUNE_PARALLEL=2 \
#         DATA=../shared/data/fashion-mnist.npz bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.data/fashion-mnist.npz}
DCSM_MINUTES=${DCSM_MINUTES:-1}
TUNE_EPOCHS=${TUNE_EPOCHS:-auto}
TUNE_VALUES=${TUNE_VALUES:-1:6}
TUNE_PARALLEL=${TUNE_PARALLEL:-6}
PHASE1_CAP=${PHASE1_CAP:-240}
PHASE2_CAP=${PHASE2_CAP:-300}
export PYTHONUNBUFFERED=1

if [ ! -f "$DATA" ]; then
    echo "no data file at $DATA: copy ../shared/data/fashion-mnist.npz into .data/ and carry .data" >&2
    exit 2
fi
{
    date -u
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    git log -1 --format='commit %h %s' 2>/dev/null || true
} 2>&1 | tee "$OUT/machine.txt"

echo "== phase 1: DCCS, DCSM and DCSM-oc on Fashion-MNIST, $DCSM_MINUTES min of training each" | tee "$OUT/dcsm.txt"
timeout "$PHASE1_CAP" "$PY" benchmarks/dcsm_fashion_mnist.py --device "$DEVICE" --data-path "$DATA" \
    --minutes "$DCSM_MINUTES" --evals 3 2>&1 | tee -a "$OUT/dcsm.txt"
echo "phase 1 exit status ${PIPESTATUS[0]}" | tee -a "$OUT/dcsm.txt"

if [ "$TUNE_EPOCHS" = auto ]; then  # "  DCCS     ACC ... after 12.34 epochs (...)" from phase 1's summary
    TUNE_EPOCHS=$(DCSM_MINUTES=$DCSM_MINUTES "$PY" - "$OUT/dcsm.txt" <<'PYEND'
import os, re, sys
m = re.search(r"^\s+DCCS .* after ([0-9.]+) epochs", open(sys.argv[1]).read(), re.M)
print(f"{max(0.05, 0.8 * float(m.group(1)) / float(os.environ['DCSM_MINUTES'])):.2f}" if m else "4")
PYEND
)
fi
echo "== phase 2: β_Aug session $TUNE_VALUES, $TUNE_EPOCHS epochs per value, scratch and branched" \
    | tee "$OUT/tuning.txt"
timeout "$PHASE2_CAP" "$PY" benchmarks/tuning_fashion_mnist.py --device "$DEVICE" --data-path "$DATA" \
    --values "$TUNE_VALUES" --epochs "$TUNE_EPOCHS" --parallel "$TUNE_PARALLEL" --all-values \
    --root "$OUT/sessions" 2>&1 | grep -v '^\s*$' | tee -a "$OUT/tuning.txt"
echo "phase 2 exit status ${PIPESTATUS[0]}" | tee -a "$OUT/tuning.txt"
# the session files (scores, verdicts, evaluation) come back too; the runs themselves stay on the machine
for mode in scratch branch; do
    [ -f "$OUT/sessions/$mode/session.json" ] && cp "$OUT/sessions/$mode/session.json" "$OUT/session-$mode.json"
done
rm -rf "$OUT/sessions"
