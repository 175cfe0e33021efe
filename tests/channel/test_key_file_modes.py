"""Private keys the project writes are 0600 in a 0700 directory (issue 12 follow-up, item 6):
the tester, as the local user ``nobody``, read the demo broker's bridge.key and observer.key
(mode 644 in a 755 directory) and impersonated the bridge."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gateway.channel.ca import AgentCA
from gateway.channel.mqtt_bridge import MqttBridge
from lab.mosquitto import Broker
from tests.channel.conftest import Cloud

NEEDS_RUNUSER = pytest.mark.skipif(shutil.which("runuser") is None, reason="runuser (util-linux) is needed")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _nobody_reads(path: Path) -> bool:
    done = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True, timeout=10)
    return done.returncode == 0 and b"PRIVATE KEY" in done.stdout


@NEEDS_RUNUSER
def test_demo_broker_keys_are_private(cloud: Cloud) -> None:
    broker = Broker.prepare(cloud.ca)
    try:
        broker.start()  # Mosquitto, dropped to its own user, still loads its key
        keys = sorted(broker.directory.glob("*.key"))
        assert [k.name for k in keys] == ["bridge.key", "observer.key", "server.key"]
        assert _mode(broker.directory) == 0o700
        assert {k.name: _mode(k) for k in keys} == {k.name: 0o600 for k in keys}
        assert not [k.name for k in keys if _nobody_reads(k)]
    finally:
        broker.remove()


@NEEDS_RUNUSER
def test_gateway_bridge_and_ca_keys_are_private(cloud: Cloud, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # as a data directory may be: the key's own directory must close itself
    bridge_dir = tmp_path / "mqtt"
    bridge_dir.mkdir(mode=0o755)
    (bridge_dir / "bridge.key").write_bytes(b"")
    (bridge_dir / "bridge.key").chmod(0o644)  # left by an older version: re-written private
    _, _, key = MqttBridge.files_from_ca(cloud.ca, bridge_dir)
    assert (_mode(bridge_dir), _mode(key)) == (0o700, 0o600)
    assert not _nobody_reads(key)

    AgentCA.load_or_create(tmp_path / "ca")
    ca_keys = sorted((tmp_path / "ca").glob("*.key")) + sorted((tmp_path / "ca").glob("*key*.pem"))
    assert ca_keys
    assert _mode(tmp_path / "ca") == 0o700
    assert all(_mode(k) == 0o600 and not _nobody_reads(k) for k in ca_keys)
