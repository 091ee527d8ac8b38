#!/usr/bin/env bash
# The device check for a lent GPU machine: at most 8 minutes, everything in one folder.
#
#   bash benchmarks/gpu_sweep.sh [--out DIR] [--data-dir DIR]       # on a GPU machine
#   bash benchmarks/gpu_sweep.sh --device cpu --out DIR             # the dry run (tests/test_gpu_sweep.py)
#
# 0. sidae's decoding cache of the JPEG folder, filled once (up to 45 s, cached afterwards).
# 1. throughput.txt: the training-step throughput of benchmarks/gpu_check.sh, eager only (the
#    torch.compile half would take 3 of the 8 minutes).
# 2. sweep.txt, study.db, report/: a packed w-sweep on CIFAR-10 (JPEG copy) at the `gpu`
#    budget's model (full-width ResNet-18, SGD), 4 points (w = 0, 0.5, 0.9, 1, seed 0) of 20
#    epochs on all 45,000 pre-training images, 4 trials on the one GPU at once
#    (--gpus-per-trial 0.25), no fine-tuning (its 3 x 2,000 steps would not fit), the study's
#    time budget keeping it inside the 8 minutes (a trial it cuts ends PRUNED, and says so).
#    The study command prints the w table; `studies/report.py` writes the controls, the
#    verdict section and the phase table with each trial's device and GPU ids (report/report.md).
# 3. gpu_memory.csv: nvidia-smi's per-process memory every second during the sweep.
# 4. summary.txt: images/s per trial and aggregate, GPU memory per trial, and SimSiam's (w = 1)
#    kNN accuracy beside lightly's published SimSiam CIFAR-10 figure (benchmarks/gpu_sweep_summary.py).
#
# --device cpu: the same steps at tiny sizes (1 epoch of 64 images, the CPU model, no GPU
# reserved), to prove the script, not to measure anything. PY=... picks the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0

device=cuda
out=runs/gpu-sweep-$(date +%Y%m%d-%H%M%S)
data_dir=${SIDAE_DATA_DIR:-../shared/data}
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        *) echo "gpu_sweep.sh: unknown argument '$1' (see the head of the script)" >&2; exit 2 ;;
    esac
done
case "$device" in
    cuda | cpu) ;;
    *) echo "gpu_sweep.sh: --device must be cuda or cpu, got '$device'" >&2; exit 2 ;;
esac
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
name=gpu-sweep
storage="sqlite:///$out/study.db"
status=0
started=$(date +%s)
stage() { echo "== $1 ($(($(date +%s) - started)) s)"; }

if [ "$device" = cuda ]; then
    sweep_size=(--epochs 20 --cpus-per-trial 3 --gpus-per-trial 0.25 --time-budget 250)
    limits=(60 45 300 30 20)  # seconds: throughput, decoding, sweep, report, summary: 455 s at most
else
    sweep_size=(--epochs 1 --train-limit 64 --cpus-per-trial 1 --gpus-per-trial 0 --time-budget 250
        --set data.val_size=20 --set eval.knn_bank_size=40 --set "eval.label_fractions=(0.1,1.0)"
        --set optim.batch_size=32)
    limits=(120 120 300 120 60)  # a shared 2-core CI machine: generous, the sizes are tiny
fi

stage "throughput (benchmarks/gpu_check.sh, eager)"
DEVICE=$device EAGER_ONLY=1 CHECK_TIMEOUT=${limits[0]} bash benchmarks/gpu_check.sh >"$out/throughput.txt" 2>&1 \
    || status=$?
tail -n 20 "$out/throughput.txt"

sampler=
if [ "$device" = cuda ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$out/gpu.txt"
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 1000 >"$out/gpu_memory.csv" &
    sampler=$!
fi

stage "decoding CIFAR-10 (JPEG copy) once, into sidae's cache (else each of the 4 trials decodes it at once)"
timeout "${limits[1]}" "$PY" -c 'import sys
from sidae.config import DataConfig
from sidae.data import load_splits
print(load_splits(DataConfig(dataset="cifar10-jpeg", data_dir=sys.argv[1], download=False)).pretrain.images.shape)' \
    "$data_dir" 2>&1 | tail -n 1 || status=$?

stage "packed w-sweep, CIFAR-10 (JPEG copy), budget gpu, device $device"
timeout "${limits[2]}" "$PY" studies/run.py --study w-sweep --dataset cifar10-jpeg --budget gpu --name "$name" \
    --w-grid 0,0.5,0.9,1 --seeds 0 --set eval.finetune=False --device "$device" "${sweep_size[@]}" \
    --data-dir "$data_dir" --storage "$storage" --artifact-dir "$out/artifacts" --ray-dir "$out/ray" --quiet \
    >"$out/sweep.txt" 2>"$out/sweep.log" || status=$?
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
cat "$out/sweep.txt"
tail -n 5 "$out/sweep.log"

stage "report (controls, verdict, devices)"
timeout "${limits[3]}" "$PY" studies/report.py --name "$name" --storage "$storage" --artifact-dir "$out/artifacts" \
    --out "$out/report" >"$out/report.log" 2>&1 || status=$?

stage "summary"
memory=()
[ -f "$out/gpu_memory.csv" ] && memory=(--memory "$out/gpu_memory.csv")
timeout "${limits[4]}" "$PY" benchmarks/gpu_sweep_summary.py --storage "$storage" --name "$name" "${memory[@]}" \
    >"$out/summary.txt" 2>&1 || status=$?
cat "$out/summary.txt"

stage "done: $out, exit status $status"
exit "$status"
