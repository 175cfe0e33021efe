#!/usr/bin/env bash
# The whole test suite: system packages, venv, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
# pytest runs in PRINTGATE_TEST_WORKERS pytest-xdist worker processes (--dist loadgroup: a test
# file, or the whole of tests/e2e and tests/portal, stays on one worker; tests/conftest.py); the
# default is 2 on a machine with 2 or more CPUs (the suite waits on servers, agents and browsers
# much of the time: 21-23 min instead of 37 on 2 cores), 0 runs it in one process.
cpus=$(nproc 2>/dev/null || echo 1)
default_workers=0
if [ "$cpus" -ge 2 ]; then default_workers=2; fi
workers=()
if [ "${PRINTGATE_TEST_WORKERS:-$default_workers}" != 0 ]; then
  workers=(-n "${PRINTGATE_TEST_WORKERS:-$default_workers}" --dist loadgroup)
fi
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=40 "${workers[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
