#!/usr/bin/env bash
# Creates the Python venv the pybotx suite uses (.build/pybotx-venv, or $VESTNIK_PYBOTX_VENV):
# pybotx 0.77 with the FastAPI it supports (0.128; newer FastAPI breaks create_fastapi_bot_app).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VESTNIK_PYBOTX_VENV:-.build/pybotx-venv}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pybotx, fastapi, uvicorn" 2>/dev/null; then
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "pybotx==0.77.*" "fastapi==0.128.*" uvicorn
"$VENV/bin/python" -c "import importlib.metadata as m; print('pybotx venv:', m.version('pybotx'), 'fastapi', m.version('fastapi'))"
