#!/bin/sh
# A Ray worker node that owns GPUS_PER_WORKER of this host's GPUs; runs until stopped.
#
# Every replica of a scaled compose service gets the same device reservation, and compose gives
# a replica no index to choose devices by (docker/compose#11863): with `count: 1` every replica
# would share GPU 0. So the service reserves all GPUs and each replica claims a free slot here:
# slot i is devices i*N .. i*N+N-1, held by an flock on the gpu-slots volume for as long as
# this node runs (the lock dies with the process, so a restarted replica finds its slot free).
#
# GPUS_PER_WORKER=0 (docker/compose.cpu.yml) makes a CPU-only node: no slot, no GPU. With
# LOGICAL_GPUS=N as well, the node declares N GPUs it does not have (`ray start --num-gpus N`,
# devices 0..N-1 in CUDA_VISIBLE_DEVICES): Ray places trials on them as on real ones (so
# --gpus-per-trial packing can be tried on a CPU host), while torch sees no CUDA device and a
# trial at --device auto trains on the CPU.
#
# Environment: RAY_HEAD_ADDRESS (host:port), GPUS_PER_WORKER (default 1), LOGICAL_GPUS (default
# 0; only with GPUS_PER_WORKER=0), CPUS_PER_WORKER (default: what Ray detects), GPU_SLOT_DIR
# (default /gpu-slots), and Ray's token variables.
set -eu
per=${GPUS_PER_WORKER:-1}
logical=${LOGICAL_GPUS:-0}
slot_dir=${GPU_SLOT_DIR:-/gpu-slots}
case "$per" in
    '' | *[!0-9]*) echo "ray-worker: GPUS_PER_WORKER must be a whole number, got '$per'" >&2; exit 2 ;;
esac
case "$logical" in
    '' | *[!0-9]*) echo "ray-worker: LOGICAL_GPUS must be a whole number, got '$logical'" >&2; exit 2 ;;
esac
start_node() {  # ray start NUM_GPUS: this node, until it is stopped
    exec ray start --address "$RAY_HEAD_ADDRESS" --num-gpus "$1" ${CPUS_PER_WORKER:+--num-cpus "$CPUS_PER_WORKER"} \
        --disable-usage-stats --block
}
if [ "$per" -eq 0 ]; then
    if [ "$logical" -gt 0 ]; then
        CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((logical - 1)))
        export CUDA_VISIBLE_DEVICES
        echo "ray-worker: no GPU, $logical logical GPU(s) declared (LOGICAL_GPUS=$logical): devices $CUDA_VISIBLE_DEVICES"
        start_node "$logical"
    fi
    echo "ray-worker: no GPU (GPUS_PER_WORKER=0)"
    start_node 0
fi
if [ "$logical" -gt 0 ]; then
    echo "ray-worker: LOGICAL_GPUS is for a worker without GPUs (GPUS_PER_WORKER=0), got GPUS_PER_WORKER=$per" >&2
    exit 2
fi
total=$(python -c 'import torch; print(torch.cuda.device_count())')
slots=$((total / per))
if [ "$slots" -eq 0 ]; then
    echo "ray-worker: this container sees $total GPU(s), fewer than GPUS_PER_WORKER=$per" >&2
    exit 1
fi
slot=0
while [ "$slot" -lt "$slots" ]; do
    exec 9>"$slot_dir/slot-$slot.lock"
    if flock -n 9; then
        first=$((slot * per))
        CUDA_VISIBLE_DEVICES=$(seq -s, "$first" $((first + per - 1)))
        export CUDA_VISIBLE_DEVICES
        echo "ray-worker: GPU slot $slot of $slots: devices $CUDA_VISIBLE_DEVICES"
        start_node "$per"  # exec keeps descriptor 9, and with it the slot, for the life of the node
    fi
    slot=$((slot + 1))
done
echo "ray-worker: all $slots slot(s) of $per GPU(s) on this host are taken; scale ray-worker down" \
    "or lower GPUS_PER_WORKER" >&2
exit 1
