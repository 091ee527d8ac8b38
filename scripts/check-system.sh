#!/usr/bin/env bash
# The system parts `make test` needs beside the Python packages, checked before any test runs:
#   PostgreSQL's server binaries  the storage tests start a real server on 127.0.0.1
#   docker-compose 1.29, docker.io, debootstrap
#                                 the compose file is validated, then the cluster started for real
#   chromium (Debian's)           the dashboard is looked at in a real headless browser
#   root                          the full-disk test mounts a tmpfs; the compose test drives dockerd
#
#   scripts/check-system.sh            report: exit 1 with ONE line naming what is missing and
#                                      the command that installs it
#   scripts/check-system.sh --install  as root with apt-get (Debian/Ubuntu), install what is
#                                      missing instead; elsewhere, report as above
set -euo pipefail

install=false
[ "${1:-}" = "--install" ] && install=true

has_postgres_server() {
    local dir
    [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ] && return 0
    command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ] && return 0
    for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && return 0; done
    return 1
}

packages=()  # Debian package names of what is missing
has_postgres_server || packages+=(postgresql)
command -v docker-compose >/dev/null || packages+=(docker-compose)
command -v dockerd >/dev/null || packages+=(docker.io)
command -v debootstrap >/dev/null || packages+=(debootstrap)
[ -x /usr/bin/chromium ] || packages+=(chromium)  # tests/test_dashboard.py drives it at this path

root=true
[ "$(id -u)" -eq 0 ] || root=false

if [ ${#packages[@]} -gt 0 ] && $install && $root && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}"
    packages=()
fi

problems=()
[ ${#packages[@]} -gt 0 ] && problems+=("missing ${packages[*]} (install: sudo apt-get install -y --no-install-recommends ${packages[*]})")
$root || problems+=("not root (the full-disk and compose tests mount a tmpfs and drive dockerd: run make test as root, e.g. in a container or VM)")
if [ ${#problems[@]} -gt 0 ]; then
    message="make test needs system parts:"
    for problem in "${problems[@]}"; do message+=" $problem;"; done
    echo "${message%;}" >&2
    exit 1
fi
