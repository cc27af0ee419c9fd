#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package), runs the
# given command with VESTNIK_TEST_POSTGRES_URL pointing at it, and removes the cluster again.
#   scripts/test-postgres.sh scripts/test.sh
# Runs as root (initdb itself runs as the postgres user) or as an ordinary user who can run initdb.
set -euo pipefail
# A free port unless one is given: several checkouts on one machine must not collide.
PORT="${VESTNIK_TEST_POSTGRES_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
PGBIN="$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PGDIR="$(mktemp -d /tmp/vestnik-pg.XXXXXX)"
as_owner() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR"
cleanup() {
    as_owner "$PGBIN/pg_ctl -D $PGDIR/data -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
}
trap cleanup EXIT
as_owner "$PGBIN/initdb -D $PGDIR/data -U postgres --auth=trust -E UTF8 --no-sync" >/dev/null
as_owner "$PGBIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w start -o '-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on'" >/dev/null
export VESTNIK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
echo "PostgreSQL test cluster on $VESTNIK_TEST_POSTGRES_URL"
"$@"
