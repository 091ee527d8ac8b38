#!/bin/sh
# Start PostgreSQL on $PGDATA; on an empty one first create the cluster as the official image
# does: superuser POSTGRES_USER (default postgres) with POSTGRES_PASSWORD, database POSTGRES_DB
# (default the user's name), password (scram-sha-256) logins over the network, and trust on
# the container's own unix socket (the health check's `pg_isready`, `docker exec ... psql`);
# then, on a server that listens on that socket only, the scripts in /docker-entrypoint-initdb.d
# (*.sh: run if executable, else sourced; *.sql: psql), in name order, as the official image does.
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
    # On the socket only, so that no client connects before the database and roles exist.
    pg_ctl -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$db" != postgres ]; then
        createdb --username="$user" "$db"
    fi
    export POSTGRES_USER="$user" POSTGRES_DB="$db"
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
            *.sql) psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$user" --dbname="$db" -f "$f" ;;
            *) if [ -e "$f" ]; then echo "sidae-postgres: ignoring $f"; fi ;;
        esac
    done
    pg_ctl -w -m fast stop >/dev/null
    echo "sidae-postgres: initialised $PGDATA (user $user, database $db)"
fi
exec postgres -c listen_addresses='*'
