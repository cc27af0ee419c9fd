#!/usr/bin/env bash
# The whole test suite: unit, store conformance, HTTP contract, live socket and child-process
# tests, then the browser end-to-end tests of the web client (scripts/test-web.sh). Debug build
# (tests are not benchmarks).
#
# When PostgreSQL is installed (Debian's postgresql package) the script starts a throwaway
# cluster (scripts/test-postgres.sh); then the PostgreSQL store conformance suite runs too and the
# integration suite runs a second time against PostgreSQL. VESTNIK_TEST_POSTGRES_URL points it at
# an existing server instead; VESTNIK_TEST_SKIP_POSTGRES=1 skips PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
# PostgreSQL installed but no server given: run against a throwaway cluster of our own.
if [ -z "${VESTNIK_TEST_POSTGRES_URL:-}" ] && [ -z "${VESTNIK_TEST_SKIP_POSTGRES:-}" ] \
    && { command -v pg_config >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then
    exec scripts/test-postgres.sh "$0" "$@"
fi
# The pybotx suite (real pybotx bots against a live server) needs a Python venv with pybotx;
# .ci/run creates it (scripts/pybotx-venv.sh). Locally it is skipped, with a message, when absent;
# under CI (or with VESTNIK_REQUIRE_PYBOTX=1, which .ci/run sets) a missing venv is a failure.
PYBOTX_VENV="${VESTNIK_PYBOTX_VENV:-.build/pybotx-venv}"
if [ -x "$PYBOTX_VENV/bin/python" ] && "$PYBOTX_VENV/bin/python" -c "import pybotx, fastapi, uvicorn" 2>/dev/null; then
    export VESTNIK_PYBOTX_PYTHON="$PWD/$PYBOTX_VENV/bin/python"
    case "$PYBOTX_VENV" in /*) export VESTNIK_PYBOTX_PYTHON="$PYBOTX_VENV/bin/python" ;; esac
    echo "== pybotx suite enabled ($("$VESTNIK_PYBOTX_PYTHON" -c "import importlib.metadata as m; print('pybotx', m.version('pybotx'))"))"
else
    if [ -n "${CI:-}" ] || [ -n "${VESTNIK_REQUIRE_PYBOTX:-}" ]; then
        echo "the pybotx suite is required here (CI): no venv at $PYBOTX_VENV (run scripts/pybotx-venv.sh)" >&2
        exit 1
    fi
    echo "== pybotx suite SKIPPED: no venv at $PYBOTX_VENV (run scripts/pybotx-venv.sh, or set VESTNIK_PYBOTX_VENV)"
fi
# Each pass is bounded (VESTNIK_TEST_PASS_TIMEOUT seconds): a test that hangs fails the run
# within minutes and is named, instead of holding CI until its own limit. Output is line
# buffered so that what a hung pass printed last is really the last thing it did.
run_pass() {
    local log status
    log="$(mktemp /tmp/vestnik-test-pass.XXXXXX)"
    set +e
    timeout --kill-after=30 "${VESTNIK_TEST_PASS_TIMEOUT:-1200}" stdbuf -oL -eL swift test --skip-build "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        # swift test's child (the test bundle, in a process group of its own) outlives it;
        # only this checkout's bundle is killed.
        pkill -KILL -f "^$PWD/\.build/.*vestnikPackageTests\.xctest" || true
        echo "== the test pass did not finish within ${VESTNIK_TEST_PASS_TIMEOUT:-1200} s; started but not finished:"
        sed -n 's/.*Test "\(.*\)" started\.$/\1/p' "$log" | sort -u > "$log.started"
        sed -n 's/.*Test "\(.*\)" \(with [0-9]* test cases \)\{0,1\}\(passed\|failed\|skipped\).*/\1/p' "$log" | sort -u > "$log.ended"
        comm -23 "$log.started" "$log.ended" | sed 's/^/   /'
        rm -f "$log.started" "$log.ended"
    fi
    rm -f "$log"
    return "$status"
}
swift build --build-tests
echo "== test suite (SQLite backend${VESTNIK_TEST_POSTGRES_URL:+; PostgreSQL store conformance})"
run_pass "$@"
if [ -n "${VESTNIK_TEST_POSTGRES_URL:-}" ]; then
    echo "== integration suite against PostgreSQL"
    (export VESTNIK_TEST_BACKEND=postgres; run_pass --filter VestnikIntegrationTests "$@")
fi
scripts/test-web.sh
