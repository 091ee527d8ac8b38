#!/bin/sh
# The study runner: `sidae-runner ARGS` runs `python studies/run.py ARGS` as a Ray driver.
#
# A Ray driver attaches to a raylet on its own machine (ray.init(address=...) looks for a local
# one), so the runner container first joins the cluster as a node that offers no CPUs or GPUs:
# trials are never scheduled here. The node goes away with the container.
#
# Environment: RAY_HEAD_ADDRESS (host:port) and Ray's token variables; the storage password
# comes from PGPASSWORD.
set -eu
log=/tmp/ray-start.log
if ! ray start --address "$RAY_HEAD_ADDRESS" --num-cpus 0 --num-gpus 0 --disable-usage-stats >"$log" 2>&1; then
    echo "runner: could not join the Ray cluster at $RAY_HEAD_ADDRESS:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
exec python studies/run.py "$@"  # from the image's WORKDIR, /app
