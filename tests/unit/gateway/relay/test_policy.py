"""What an agent's relay connection may ask for (gateway/relay/policy.py): one forward, nothing else."""

from __future__ import annotations

from gateway.relay.policy import (
    MAX_COMMAND_CHARS,
    check_forward,
    forward_listen_host,
    printable,
    refuse,
    refuse_channel_request,
)


def test_only_the_sessions_own_forward_on_port_zero_is_allowed() -> None:
    host = forward_listen_host("S-AbC")
    assert host == "s-abc"
    assert check_forward("S-AbC", host, 0, forwards_open=0) is None


def test_a_second_forward_another_sessions_name_or_a_chosen_port_are_refused() -> None:
    second = check_forward("s1", "s1", 0, forwards_open=1)
    other = check_forward("s1", "s2", 0, forwards_open=0)
    port = check_forward("s1", "s1", 8080, forwards_open=0)
    assert second is not None and second.code == "second_forward"
    assert other is not None and other.code == "other_session" and "'s2'" in other.message
    assert port is not None and port.code == "port_not_allowed" and "8080" in port.message


def test_everything_else_is_not_permitted_and_named() -> None:
    r = refuse("direct-tcpip", "to 10.0.0.1:22")
    assert (r.kind, r.code) == ("direct-tcpip", "not_permitted") and "10.0.0.1:22" in r.message


def test_channel_requests_are_named_for_what_they_are() -> None:
    assert refuse_channel_request("shell").kind == "shell"
    sftp = refuse_channel_request("subsystem", "sftp")
    assert sftp.kind == "subsystem:sftp" and "'sftp' subsystem" in sftp.message
    exe = refuse_channel_request("exec", "cat /etc/passwd")
    assert exe.kind == "exec" and exe.detail == {"command": "cat /etc/passwd"}
    env = refuse_channel_request("env", "LD_PRELOAD")
    assert env.detail == {"variable": "LD_PRELOAD"}  # the name only, never the value
    assert refuse_channel_request("auth-agent-req@openssh.com").kind == "agent_forwarding"
    assert refuse_channel_request("pty-req", "xterm").detail == {"term": "xterm"}
    assert refuse_channel_request("weird\x1b[2J").kind == "request:weird\\x1b[2J"


def test_audited_text_is_printable_and_bounded() -> None:
    assert printable("a\nb\x00", 20) == "a\\x0ab\\x00"
    long = refuse_channel_request("exec", "x" * 1000).detail["command"]
    assert len(long) == MAX_COMMAND_CHARS and long.endswith("\u2026")
