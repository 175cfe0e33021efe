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
# file, or the whole of tests/e2e and tests/portal, stays on one worker; tests/conftest.py): 2 by
# default, 15-25 min of pytest instead of 37 on 2 cores; 0 runs one process. Test servers' ports come
# from lab.ports, a slice per worker below the kernel's ephemeral range (and one for processes a
# test starts without the worker's variables), each port claimed for 15-30 s across processes, so
# no other worker, child or outgoing connection can take one between its pick and its server's bind.
default_workers=2
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
