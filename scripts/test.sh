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
# 2 takes about 15 min instead of 37 on 2 cores, but test servers still pick their ports with
# lab.ports.free_tcp_port (bind, close, bind again): the other worker can take one in between
# (EADDRINUSE, seen once in ~3,000 tests). Until they bind port 0 themselves the default is 0
# (one process).
default_workers=0
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
