#!/bin/sh
# Start PostgreSQL on $PGDATA; on an empty one first create the cluster as the official image
# does: superuser POSTGRES_USER (default postgres) with POSTGRES_PASSWORD, database POSTGRES_DB
# (default the user's name), password (scram-sha-256) logins over the network, and trust on
# the container's own unix socket (the health check's `pg_isready`, `docker exec ... psql`).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?sidae-postgres: set POSTGRES_PASSWORD}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # On the socket only, so that no client connects before the database exists.
        pg_ctl -w -o "-c listen_addresses=''" start >/dev/null
        createdb --username="$user" "$db"
        pg_ctl -w -m fast stop >/dev/null
    fi
    echo "sidae-postgres: initialised $PGDATA (user $user, database $db)"
fi
exec postgres -c listen_addresses='*'
