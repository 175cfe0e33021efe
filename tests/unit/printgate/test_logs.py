"""Logging follows the process's current stderr: a stream replaced after start-up and closed
(a test harness's capture, a daemon's redirect) never turns a log line into an exception."""

from __future__ import annotations

import io
import json
import sys

import pytest

from printgate.logs import configure_logging, get_logger


def test_a_log_line_after_stderr_was_replaced_and_closed_goes_to_the_new_stderr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    get_logger("t").error("dwa.audit_batch_failed", size=3)  # raised ValueError on a closed file before
    [line] = second.getvalue().splitlines()
    assert json.loads(line)["event"] == "dwa.audit_batch_failed"
