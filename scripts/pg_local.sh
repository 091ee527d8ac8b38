#!/usr/bin/env bash
# A real, local PostgreSQL server for the tests and for a cluster on one machine (loopback).
#
#   scripts/pg_local.sh start  DATADIR PORT   # initdb if needed, start, create role+db `sidae`
#   scripts/pg_local.sh stop   DATADIR PORT   # fast shutdown; no process is left behind
#   scripts/pg_local.sh status DATADIR PORT   # exit 0 if running, 3 if not
#
# Layout: DATADIR/data (PGDATA, 0700), DATADIR/socket (unix socket), DATADIR/postgres.log,
# DATADIR/pgpass (0600). The server listens on 127.0.0.1:PORT only. TCP connections need a
# password (scram-sha-256); the study database belongs to the role `sidae`, which is not a
# superuser. Its password is generated at the first start and kept only in DATADIR/pgpass, a
# libpq password file: clients find it through PGPASSFILE, so URLs and command lines carry no
# password (the printed URL has none):
#
#   export PGPASSFILE=DATADIR/pgpass; python studies/run.py --storage "$(scripts/pg_local.sh start DATADIR PORT)"
#
# The administrator role (`postgres` as root, else the calling user) connects only through the
# unix socket, authenticated by the operating system (peer).
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
url="postgresql+psycopg://sidae@127.0.0.1:$port/sidae"
pgpass=$datadir/pgpass
admin=$(id -un)
[ "$(id -u)" -eq 0 ] && admin=postgres

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

# One query on psql's command line, which `ps` shows to every user: never a secret.
psql_admin() {
    as_pg "$bindir/psql" -h "$socket" -p "$port" -U "$admin" -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"
}

# SQL that holds a secret: on psql's standard input. The caller's printf is the shell's own, so
# no command line carries it, and an error does not log the statement.
psql_admin_stdin() {
    as_pg "$bindir/psql" -h "$socket" -p "$port" -U "$admin" -d postgres -v ON_ERROR_STOP=1 -qtA -f -
}

# The sidae role's password, made once: only this file (0600, the caller's) holds it.
password() {
    if [ ! -s "$pgpass" ]; then
        (umask 077 && printf '127.0.0.1:*:*:sidae:%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$pgpass")
    fi
    cut -d: -f5 "$pgpass"
}

start() {
    require_bindir
    mkdir -p "$datadir"
    chmod 700 "$datadir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$datadir"
        if ! runuser -u postgres -- test -w "$datadir"; then
            echo "pg_local: user postgres cannot write $datadir (is a parent folder private to root?)" >&2
            exit 1
        fi
    fi
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$pgdata" --username="$admin" --auth-local=peer --auth-host=scram-sha-256 \
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
        printf "SET log_min_error_statement = panic;\nCREATE ROLE sidae LOGIN NOSUPERUSER NOCREATEROLE PASSWORD '%s';\n" \
            "$(password)" | psql_admin_stdin
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
