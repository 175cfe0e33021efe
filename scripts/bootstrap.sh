#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 and install printgate with pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local c
  for c in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 || [ -x "$c" ]; then
      if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
        echo "$c"; return 0
      fi
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3,12) else 1)'; then
  PY=$(find_python) || { echo "bootstrap: no Python >= 3.12 found (tried python3.13, python3.12, ~/.pyenv/versions/3.1x)" >&2; exit 1; }
  echo "bootstrap: creating .venv with $PY ($("$PY" --version))"
  rm -rf .venv
  "$PY" -m venv .venv
fi
stamp=.venv/.printgate-lock-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m pip check
  rm -f .venv/.printgate-lock-*; touch "$stamp"
fi
# Bytecode ahead of time: where PYTHONDONTWRITEBYTECODE is set (as on these machines) nothing is
# cached at import, so every process the tests start (agents, gateway nodes, proxy workers - which
# run with -O and find no optimised bytecode from pip) compiled the project, and the workers all of
# mitmproxy, from source: 20+ s per proxy worker on a loaded 2-core machine.
if [ ! -f .venv/.printgate-opt-bytecode ] || [ "$stamp" -nt .venv/.printgate-opt-bytecode ]; then
  .venv/bin/python -O -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null || true
  touch .venv/.printgate-opt-bytecode
fi
for opt in "" "-O"; do
  .venv/bin/python $opt -m compileall -q -j 0 agent alerting audit fleet gateway integrations lab policy portal printgate >/dev/null || true
done
