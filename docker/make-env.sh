#!/bin/sh
# Write docker/.env from docker/.env.example with a fresh PostgreSQL password and Ray token
# (64 hex characters each, from /dev/urandom). The file is readable by its owner only, and an
# existing one is never overwritten: delete it to rotate the secrets (then `down` and `up`).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
env_file=$here/.env
if [ -e "$env_file" ]; then
    echo "make-env: $env_file exists; delete it first to make new secrets" >&2
    exit 1
fi
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
sed -e "s/^POSTGRES_PASSWORD=\$/POSTGRES_PASSWORD=$(secret)/" -e "s/^RAY_AUTH_TOKEN=\$/RAY_AUTH_TOKEN=$(secret)/" \
    "$here/.env.example" >"$env_file"
echo "make-env: wrote $env_file (mode 600)"
