#!/bin/sh
# The application's role and database, made once on a fresh data folder: both postgres images
# (postgres:16 and sidae-postgres) run /docker-entrypoint-initdb.d/ then, as the postgres user,
# against a server that listens on its unix socket only. docker/docker-compose.yml mounts it.
#
# - `sidae` logs in with SIDAE_DB_PASSWORD and is no superuser: it owns the database `sidae`
#   and nothing else, so a leaked study password reaches the studies, not the server.
# - The superuser (POSTGRES_USER, `postgres`) is refused every TCP login by the first line of
#   pg_hba.conf: it works on the container's own socket (`docker compose exec postgres psql
#   -U postgres`) and nowhere else.
# The password reaches psql through its environment (\getenv), never its command line, and an
# error does not log the statement that holds it.
set -e
if [ -z "${SIDAE_DB_PASSWORD:-}" ]; then
    echo "init-sidae: set SIDAE_DB_PASSWORD" >&2
    exit 1
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
SET log_min_error_statement = panic;
\getenv password SIDAE_DB_PASSWORD
CREATE ROLE sidae LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
CREATE DATABASE sidae OWNER sidae;
REVOKE ALL ON DATABASE sidae FROM PUBLIC;
SQL
hba=$PGDATA/pg_hba.conf
{
    echo "# init-sidae.sh: the superuser logs in on the unix socket only"
    echo "host all ${POSTGRES_USER:-postgres} all reject"
    cat "$hba"
} >"$hba.new"
mv "$hba.new" "$hba"
echo "init-sidae: role sidae (no superuser) owns database sidae; ${POSTGRES_USER:-postgres} on the socket only"
