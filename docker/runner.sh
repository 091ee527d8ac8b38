#!/bin/sh
# The study runner: `sidae-runner ARGS` runs `python studies/run.py ARGS` as a Ray driver.
#
# A Ray driver attaches to a raylet on its own machine (ray.init(address=...) looks for a local
# one), so the runner container first joins the cluster as a node that offers no CPUs or GPUs:
# trials are never scheduled here. The node goes away with the container.
#
# GPUs per trial: the arguments' --gpus-per-trial, else GPUS_PER_TRIAL (compose sets it: 0.5
# by default, 0 with docker/compose.cpu.yml). Without a reservation Ray would place every trial
# of a worker on its GPU at once, however many there are.
#
# The database password: SIDAE_DB_PASSWORD (or PGPASSWORD) goes into a libpq password file
# (mode 0600) for the driver, which alone writes to the database, and leaves the environment
# before `ray start`: no process of the Ray node has it, nor the workers it would start. A
# password file given as PGPASSFILE is handed on the same way: to the driver, not the node.
#
# Environment: RAY_HEAD_ADDRESS (host:port), GPUS_PER_TRIAL (default 0), Ray's token variables
# and SIDAE_DB_PASSWORD.
set -eu
case " $* " in
    *" --gpus-per-trial "* | *" --gpus-per-trial="*) ;;
    *) set -- "$@" --gpus-per-trial "${GPUS_PER_TRIAL:-0}" ;;
esac
password=${SIDAE_DB_PASSWORD:-${PGPASSWORD:-}}
pgpass=${PGPASSFILE:-}
unset SIDAE_DB_PASSWORD PGPASSWORD PGPASSFILE
if [ -n "$password" ]; then
    pgpass=$(mktemp)  # 0600; printf is the shell's own: the password is on no command line
    printf '*:*:*:*:%s\n' "$(printf '%s' "$password" | sed 's/[\\:]/\\&/g')" >"$pgpass"
    password=
fi
log=/tmp/ray-start.log
if ! ray start --address "$RAY_HEAD_ADDRESS" --num-cpus 0 --num-gpus 0 --disable-usage-stats >"$log" 2>&1; then
    echo "runner: could not join the Ray cluster at $RAY_HEAD_ADDRESS:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
if [ -n "$pgpass" ]; then
    export PGPASSFILE="$pgpass"
fi
exec python studies/run.py "$@"  # from the image's WORKDIR, /app
