#!/bin/sh
# For a Docker host that cannot pull from a public container registry: make the base images
# from Debian's own packages instead of python:3.11-slim and postgres:16.
#
#   sh docker/build-base.sh    # as root; needs debootstrap (apt-get install debootstrap)
#
# Builds sidae-base:bookworm (Debian bookworm minbase: Python 3.11, PostgreSQL 15, CA
# certificates) with debootstrap + `docker import`, and sidae-postgres:15 on it
# (docker/postgres/Dockerfile: the official image's contract). Then put in docker/.env:
#
#   BASE_IMAGE=sidae-base:bookworm
#   POSTGRES_IMAGE=sidae-postgres:15
#
# DEBIAN_MIRROR (default http://deb.debian.org/debian) chooses the mirror. An image that is
# already there is kept: `docker rmi` it to rebuild.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
base=sidae-base:bookworm
postgres=sidae-postgres:15

if ! docker image inspect "$base" >/dev/null 2>&1; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    # minbase: the essential packages and apt, no init system; python3-venv gives the image its
    # own pip (Debian's python3 refuses system-wide pip installs).
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,postgresql \
        bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$base"
fi
docker image inspect "$postgres" >/dev/null 2>&1 \
    || docker build --build-arg BASE_IMAGE="$base" -t "$postgres" "$here/postgres"
echo "build-base: $base and $postgres are ready; set BASE_IMAGE=$base and POSTGRES_IMAGE=$postgres in docker/.env"
