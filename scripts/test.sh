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
swift build --build-tests
echo "== test suite (SQLite backend${VESTNIK_TEST_POSTGRES_URL:+; PostgreSQL store conformance})"
swift test --skip-build "$@"
if [ -n "${VESTNIK_TEST_POSTGRES_URL:-}" ]; then
    echo "== integration suite against PostgreSQL"
    VESTNIK_TEST_BACKEND=postgres swift test --skip-build --filter VestnikIntegrationTests "$@"
fi
scripts/test-web.sh
