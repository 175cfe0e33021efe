#!/usr/bin/env bash
# The whole test suite: system packages, venv, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
# PRINTGATE_TEST_WORKERS=N runs pytest in N pytest-xdist worker processes (--dist loadgroup: a test
# file, or the whole of tests/e2e and tests/portal, stays on one worker; tests/conftest.py). The
# default is one process until two full parallel runs have passed on a clean 2-core checkout.
workers=()
if [ "${PRINTGATE_TEST_WORKERS:-0}" != 0 ]; then
  workers=(-n "$PRINTGATE_TEST_WORKERS" --dist loadgroup)
fi
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=40 "${workers[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
