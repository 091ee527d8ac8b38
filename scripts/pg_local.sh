#!/usr/bin/env bash
# A real, local PostgreSQL server for the tests and for a cluster on one machine (loopback).
#
#   scripts/pg_local.sh start  DATADIR PORT   # initdb if needed, start, create role+db `sidae`
#   scripts/pg_local.sh stop   DATADIR PORT   # fast shutdown; no process is left behind
#   scripts/pg_local.sh status DATADIR PORT   # exit 0 if running, 3 if not
#
# Layout: DATADIR/data (PGDATA), DATADIR/socket (unix socket), DATADIR/postgres.log.
# The server listens on 127.0.0.1:PORT only. Authentication is `trust`: anyone who can reach
# 127.0.0.1 on this machine may connect as any role. That is acceptable for a throwaway test
# or single-machine server and NOT for a server other machines can reach (docker/ uses
# password auth). The role's password exists only so URLs look like real ones.
#
# initdb and postgres refuse to run as root; as root, every server command runs as the
# `postgres` user and DATADIR is handed to that user. Binaries: $PG_BINDIR, else
# `pg_config --bindir` if it holds a server, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail

usage() { echo "usage: $0 {start|stop|status} DATADIR PORT" >&2; exit 2; }
[ $# -eq 3 ] || usage
action=$1
port=$3
[[ $port =~ ^[0-9]+$ ]] || { echo "pg_local: PORT must be a number, got '$port'" >&2; exit 2; }
datadir=$(realpath -m -- "$2")
pgdata=$datadir/data
socket=$datadir/socket
log=$datadir/postgres.log
url="postgresql+psycopg://sidae:sidae@127.0.0.1:$port/sidae"

find_bindir() {
    local dir
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    if command -v pg_config >/dev/null; then
        dir=$(pg_config --bindir)
        if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    done
}
require_bindir() {
    bindir=$(find_bindir)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
        echo "pg_local: no PostgreSQL server binaries (initdb, pg_ctl) found in \$PG_BINDIR," \
            "pg_config --bindir or /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)" >&2
        exit 1
    fi
}

# Runs a server command as the data directory's owner: `postgres` when we are root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

running() { as_pg "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; }

psql_admin() {
    as_pg "$bindir/psql" -h "$socket" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"
}

start() {
    require_bindir
    mkdir -p "$datadir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$datadir"
        chmod 700 "$datadir"
        if ! runuser -u postgres -- test -w "$datadir"; then
            echo "pg_local: user postgres cannot write $datadir (is a parent folder private to root?)" >&2
            exit 1
        fi
    fi
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$pgdata" --username=postgres --auth=trust \
            --encoding=UTF8 --locale=C >"$datadir/initdb.log" 2>&1 || {
            echo "pg_local: initdb failed:" >&2; cat "$datadir/initdb.log" >&2; exit 1; }
    fi
    as_pg mkdir -p "$socket"
    if running; then
        echo "$url"
        return
    fi
    if ! as_pg "$bindir/pg_ctl" start -D "$pgdata" -l "$log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$socket'" \
        >/dev/null; then
        echo "pg_local: the server did not start; the end of $log:" >&2
        tail -n 20 "$log" >&2 || true
        exit 1
    fi
    for _ in $(seq 1 60); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then break; fi
        sleep 0.5
    done
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" || {
        echo "pg_local: the server does not accept connections on 127.0.0.1:$port" >&2; exit 1; }
    if [ -z "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'sidae'")" ]; then
        psql_admin "CREATE ROLE sidae LOGIN PASSWORD 'sidae'"
    fi
    if [ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'sidae'")" ]; then
        psql_admin "CREATE DATABASE sidae OWNER sidae"
    fi
    echo "$url"
}

stop() {
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        return  # never initialised: nothing can be running
    fi
    require_bindir
    if running; then
        # -w waits until the postmaster has exited, and it exits only after all its children.
        as_pg "$bindir/pg_ctl" stop -D "$pgdata" -m fast -w -t 60 >/dev/null
    fi
    if running; then
        echo "pg_local: the server in $pgdata is still running after stop" >&2
        exit 1
    fi
}

case $action in
    start) start ;;
    stop) stop ;;
    status)
        require_bindir
        if running; then echo "running: $url"; else echo "not running"; exit 3; fi ;;
    *) usage ;;
esac
