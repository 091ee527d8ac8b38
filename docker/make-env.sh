#!/bin/sh
# Write docker/.env from docker/.env.example with fresh PostgreSQL passwords (the application
# role's and the superuser's) and Ray token (64 hex characters each, from /dev/urandom). The
# file is readable by its owner only, and an existing one is never overwritten: delete it to
# rotate the secrets (then `down` and `up`).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
env_file=$here/.env
if [ -e "$env_file" ]; then
    echo "make-env: $env_file exists; delete it first to make new secrets" >&2
    exit 1
fi
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
# Line by line in the shell itself: a secret on a command line (sed's) would show in `ps`.
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        SIDAE_DB_PASSWORD= | POSTGRES_SUPERUSER_PASSWORD= | RAY_AUTH_TOKEN=) line=$line$(secret) ;;
    esac
    printf '%s\n' "$line"
done <"$here/.env.example" >"$env_file"
echo "make-env: wrote $env_file (mode 600)"
