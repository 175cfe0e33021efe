"""SNMP fixtures: one snmpsim lab for the whole run, a net-snmp snmpd with a v3 user."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.snmp.transport import SnmpClient
from lab.catalog import LAB_DEVICES
from lab.ports import free_udp_port
from lab.snmp import SnmpLab
from printgate.domain import DiscoveryResult, DiscoveryStatus, Reading, ReadingKind, SnmpCredential

VARIANTS = {
    "127.0.20.41": "lab-jetdirect_m130nw-alerts",
    "127.0.20.42": "lab-sharp-malformed",
    "127.0.20.43": "epson",  # swapped by tests; keep catalogue devices untouched
}
DEAD = ("127.0.20.2", "127.0.20.99", "127.0.20.200")


@pytest.fixture(scope="session")
async def snmp_lab() -> AsyncIterator[SnmpLab]:
    devices = {d.ip: d.name for d in LAB_DEVICES} | VARIANTS
    async with SnmpLab(devices) as lab:
        yield lab


@pytest.fixture(scope="session")
async def snmp_client() -> AsyncIterator[SnmpClient]:
    async with SnmpClient(timeout=1.0, retries=1, max_in_flight=64) as client:
        yield client


@dataclass(frozen=True)
class Snmpd:
    port: int
    user: str
    auth_key: str
    priv_key: str
    location: str


@pytest.fixture(scope="session")
def snmpd_v3() -> Iterator[Snmpd]:
    """A real net-snmp agent with v3 users on a loopback port (TEST-RECIPES §5).

    ``user``: SHA-256/AES-128 authPriv; ``user-nopriv``: SHA-512 authNoPriv;
    ``user-aes256``: SHA-512/AES-256 authPriv; ``user-sha1``: SHA-1/AES-256 authPriv (key extension).
    """
    exe = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(exe).exists():
        pytest.fail("snmpd not installed (apt-get install snmpd)")
    work = Path(tempfile.mkdtemp(prefix="printgate-snmpd-"))
    (work / "persist").mkdir()
    cfg = Snmpd(free_udp_port(), "pgagent", "auth-key-12345678", "priv-key-12345678", "printgate-test-room")
    (work / "snmpd.conf").write_text(
        f"sysLocation {cfg.location}\nsysContact tests@example.org\n"
        f'createUser {cfg.user} SHA-256 "{cfg.auth_key}" AES "{cfg.priv_key}"\n'
        f"rouser {cfg.user} priv\n"
        # variants: authNoPriv (SHA-512), SHA-512 + AES-256, SHA-1 + AES-256
        f'createUser {cfg.user}-nopriv SHA-512 "{cfg.auth_key}"\n'
        f"rouser {cfg.user}-nopriv auth\n"
        f'createUser {cfg.user}-aes256 SHA-512 "{cfg.auth_key}" AES-256 "{cfg.priv_key}"\n'
        f"rouser {cfg.user}-aes256 priv\n"
        f'createUser {cfg.user}-sha1 SHA "{cfg.auth_key}" AES-256 "{cfg.priv_key}"\n'
        f"rouser {cfg.user}-sha1 priv\n"
        f"[snmp] persistentDir {work / 'persist'}\n[snmp] mibs :\n"
    )
    proc = subprocess.Popen(
        [exe, "-f", "-Lo", "-C", "-c", str(work / "snmpd.conf"), "-I", "-smux",
         "-p", str(work / "snmpd.pid"), f"udp:127.0.0.1:{cfg.port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={"SNMP_PERSISTENT_DIR": str(work / "persist"), "PATH": "/usr/sbin:/usr/bin:/bin"},
    )
    try:
        for _ in range(50):
            r = subprocess.run(
                ["snmpget", "-v3", "-l", "authPriv", "-u", cfg.user, "-a", "SHA-256", "-A", cfg.auth_key,
                 "-x", "AES", "-X", cfg.priv_key, "-t", "0.3", "-r", "0", f"127.0.0.1:{cfg.port}",
                 "1.3.6.1.2.1.1.6.0"], capture_output=True, timeout=10,
            )
            if r.returncode == 0:
                break
            if proc.poll() is not None:
                pytest.fail(f"snmpd exited with {proc.returncode}")
        else:
            pytest.fail("snmpd did not answer")
        yield cfg
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


async def eventually(fn, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.1)):
        if await fn():
            return True
        await asyncio.sleep(0.1)
    return False


async def poll_like_the_agent(ips: list[str], port: int, queue_path: Path) -> tuple[list[DiscoveryResult], list[Reading]]:
    """What ``printgate agent run`` does with the lab's printers at ``ips``: a discovery sweep, its
    printers handed to ``Monitoring``, every reading kind polled once and uploaded; returns the
    sweep's printers (in ``ips`` order) and the uploaded readings."""
    from agent.discovery import DiscoveryLimits, discover
    from agent.monitoring import Monitoring
    from agent.polling import PollSchedule
    from agent.readings_queue import ReadingsQueue

    credentials = [SnmpCredential.v2c("public")]
    uploaded: list[Reading] = []

    async def upload_readings(batch_id: str, sent: Sequence[Reading]) -> None:
        uploaded.extend(sent)

    async with SnmpClient(timeout=1.0, retries=1) as client:
        found = await discover(ips, port=port, credentials=credentials, client=client,
                               limits=DiscoveryLimits(timeout=1.0, retries=1))
        printers = [r for r in found if r.status is DiscoveryStatus.PRINTER]
        assert sorted(r.ip for r in printers) == sorted(ips), [(r.ip, r.status, r.reason) for r in found]
        async with ReadingsQueue(queue_path) as queue:
            monitoring = Monitoring(
                client=client, queue=queue, upload_readings=upload_readings, port=port,
                credentials=credentials, schedule=PollSchedule(), upload_interval_s=3600,
            )
            async with monitoring:
                await monitoring.follow_discovered(printers)
                async with asyncio.timeout(30):
                    while await queue.pending() < len(ips) * len(ReadingKind):
                        await asyncio.sleep(0.1)
                await monitoring.upload_now()
    return printers, uploaded
