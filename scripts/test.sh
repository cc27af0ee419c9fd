#!/usr/bin/env bash
# The whole test suite: unit, store conformance, HTTP contract, live socket and child-process
# tests. Debug build (tests are not benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build "$@"
