#!/usr/bin/env bash
# Browser end-to-end tests of the web client (Tests/web/test_browser.py): headless Chromium driven
# by Selenium against a live `vestnik serve` from the debug build, on a free port with a
# throwaway data directory. Screenshots of the main screens (both themes, phone width) are saved
# to artifacts/screenshots/ (or $VESTNIK_SCREENSHOTS).
#
# Needs Debian's chromium and chromium-driver; Selenium and pytest are installed into a venv under
# .build/. Without a browser the suite is skipped, except under CI (or VESTNIK_REQUIRE_BROWSER=1),
# where that is a failure.
#
# The bot tests drive the real pybotx echo bot (Tests/pybotx/echo_bot.py), run with the pybotx venv's
# python ($VESTNIK_PYBOTX_PYTHON, or .build/pybotx-venv from scripts/pybotx-venv.sh). Without that
# venv they are skipped with a message, except under CI or VESTNIK_REQUIRE_PYBOTX=1 (set by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VESTNIK_BIN:-$PWD/.build/debug/vestnik}"
[ -x "$BIN" ] || swift build --product vestnik
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ -n "${CI:-}" ] || [ -n "${VESTNIK_REQUIRE_BROWSER:-}" ]; then
        echo "browser tests need chromium and chromium-driver (apt-get install -y chromium chromium-driver)" >&2
        exit 1
    fi
    echo "== browser tests skipped: apt-get install -y chromium chromium-driver to run them"
    exit 0
fi
VENV="${VESTNIK_E2E_VENV:-$PWD/.build/e2e-venv}"
if ! "$VENV/bin/python" -c "import selenium, pytest" >/dev/null 2>&1; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check selenium pytest
fi
export VESTNIK_SCREENSHOTS="${VESTNIK_SCREENSHOTS:-$PWD/artifacts/screenshots}"
echo "== browser end-to-end tests (screenshots in ${VESTNIK_SCREENSHOTS#$PWD/})"
# Bounded like the Swift passes (scripts/test.sh): a test still running after 5 minutes has its
# stack printed (pytest's faulthandler), and the whole run ends after VESTNIK_TEST_PASS_TIMEOUT.
VESTNIK_BIN="$BIN" timeout --kill-after=30 "${VESTNIK_TEST_PASS_TIMEOUT:-1200}" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider -o faulthandler_timeout=300 Tests/web "$@"
