"""skip_message_typechecks: the in-process proxy leaves out what python -O leaves out in the workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PROBE = """
import gc, sys
from mitmproxy import http
if sys.argv[1] == "skip":
    from gateway.proxy.serving_mode import skip_message_typechecks
    skip_message_typechecks()
    skip_message_typechecks()  # idempotent
gc.collect(); gc.disable()
for _ in range(200):
    http.Request.make("GET", "http://printer.local/status.html")
    http.Response.make(200, b"ok", {"content-type": "text/html"})
print(gc.collect())
try:
    http.Response.make(200, b"", {}).data.__class__(http_version=b"HTTP/1.1", status_code="not an int",
        reason=b"", headers=http.Headers(), content=None, trailers=None, timestamp_start=0.0, timestamp_end=None)
    print("unchecked")
except TypeError:
    print("checked")
"""


def _probe(mode: str, *flags: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, *flags, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         timeout=60, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    garbage, checked = out.stdout.split()
    return int(garbage), checked


def test_messages_leave_no_cyclic_garbage_once_the_debug_typechecks_are_skipped() -> None:
    """Without -O every message raised and caught TypeErrors whose tracebacks are cycles for the
    collector; skipped, 400 messages leave none (as under python -O, where mitmproxy skips them)."""
    garbage, checked = _probe("keep")
    assert garbage > 400 and checked == "checked"  # what the in-process proxy paid per message
    assert _probe("skip") == (0, "unchecked")
    assert _probe("keep", "-O") == (0, "unchecked")  # the workers' python -O: the same as skipping
