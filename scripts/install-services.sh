#!/bin/sh
# Install the servers the distributed test starts (tests/distributed): Debian's redis-server (the
# Celery broker) and postgresql (the metadata database that several Airflow processes share).
# Idempotent and quiet: does nothing when both are present, prints nothing on success. Needs root
# (or sudo) and apt. The test starts its own throwaway instances; the packages' own services are
# neither needed nor touched.
set -eu

have_postgres() {
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && [ -x "$(dirname "$bin")/pg_ctl" ] && return 0
    done
    return 1
}

if command -v redis-server >/dev/null 2>&1 && have_postgres; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-services.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# No service is started at install time (a container has no init; the test starts its own).
# Another apt run (scripts/install-browser.sh in a parallel job, unattended upgrades) may hold the
# lock for a while: wait for it rather than fail.
APT="apt-get -o DPkg::Lock::Timeout=300"
# apt and debconf write notes to stderr even when all goes well: shown only if it fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO $APT update -qq && $SUDO $APT install -y -qq --no-install-recommends redis-server postgresql; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
command -v redis-server >/dev/null 2>&1 && have_postgres || {
    echo "install-services.sh: redis-server or PostgreSQL's initdb/pg_ctl missing after install" >&2
    exit 1
}
