"""Device identity verification against a real SNMP simulator (snmpsim) and a real TLS server."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent.snmp.identity import read_identity
from agent.tunnel import open_tunnel
from agent.verify import DeviceVerifier, tls_certificate_sha256
from lab.snmp import SnmpLab
from printgate.domain import DeviceIdentity, SnmpCredential
from printgate.errors import IdentityMismatch
from tests.relay.conftest import Ews, RelayEnv

pytestmark = pytest.mark.timeout(120)

IP = "127.0.20.15"
HP = DeviceIdentity(serial="VNCRC48198", model="HP LaserJet MFP M130nw")


@pytest.fixture(scope="module")
async def snmp_lab() -> AsyncIterator[SnmpLab]:
    async with SnmpLab({IP: "jetdirect_m130nw"}) as lab:
        yield lab


def probe_for(lab: SnmpLab):
    async def probe(ip: str) -> DeviceIdentity:
        return await read_identity(ip, port=lab.port, credentials=[SnmpCredential.v2c("public")],
                                   timeout=1.0, retries=1)
    return probe


async def test_device_swap_mid_session_refuses_next_connection_and_reports(
    snmp_lab: SnmpLab, relay_env: RelayEnv, ews: Ews
) -> None:
    reports: list[tuple[DeviceIdentity, DeviceIdentity]] = []

    async def report(expected: DeviceIdentity, observed: DeviceIdentity) -> None:
        reports.append((expected, observed))

    clock = [0.0]
    verifier = DeviceVerifier(IP, HP, probe_for(snmp_lab), report=report, clock=lambda: clock[0])
    sid, cred = await relay_env.new_session()
    tunnel = await open_tunnel(
        "127.0.0.1", relay_env.relay.port, host_key_fingerprint=relay_env.relay.host_key_fingerprint,
        credential_private_key=cred.private_key, credential_certificate=cred.certificate,
        session_id=sid, target=ews.target, verify=verifier,
    )
    try:
        host, port = await relay_env.relay.wait_forward(sid, timeout=5)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/", headers={"Connection": "close"})).status_code == 200
        assert verifier.probes == 1  # second check was served from the cache

        await snmp_lab.swap(IP, "epson")  # another printer now answers at the target address
        clock[0] += 31  # cache (<= 30 s) has run out
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            with pytest.raises(httpx.HTTPError):
                await client.get("/", headers={"Connection": "close"})
        assert tunnel.refused_connections == 1
        assert len(reports) == 1
        expected, observed = reports[0]
        assert expected == HP
        assert observed.serial == "X3B8022793"
        with pytest.raises(IdentityMismatch, match=r"127\.0\.20\.15 is no longer printer VNCRC48198 "
                                                   r"\(serial X3B8022793 answered\)"):
            await verifier()
    finally:
        await snmp_lab.swap(IP, "jetdirect_m130nw")
        await tunnel.aclose()
        await relay_env.relay.end_session(sid, "test over")


async def test_silent_device_is_refused(snmp_lab: SnmpLab) -> None:
    async def probe(ip: str) -> DeviceIdentity:
        return await read_identity("127.0.20.250", port=snmp_lab.port,
                                   credentials=[SnmpCredential.v2c("public")], timeout=0.3, retries=0)

    with pytest.raises(IdentityMismatch, match="could not be identified"):
        await DeviceVerifier(IP, HP, probe)()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory):
    d: Path = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem"), "-days", "2",
         "-subj", "/CN=printer"],
        check=True, capture_output=True,
    )
    return d


async def test_tls_fingerprint_must_match_pin(tls_server: Path, snmp_lab: SnmpLab) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_server / "c.pem", tls_server / "k.pem")

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    der = ssl.PEM_cert_to_DER_cert((tls_server / "c.pem").read_text())
    pin = hashlib.sha256(der).hexdigest()
    try:
        assert await tls_certificate_sha256("127.0.0.1", port) == pin
        identity = DeviceIdentity(serial=HP.serial, model=HP.model, tls_fingerprint=pin)
        probe = probe_for(snmp_lab)
        await DeviceVerifier(IP, identity, probe, tls_port=port,
                             tls_probe=lambda _ip, p: tls_certificate_sha256("127.0.0.1", p))()
        repinned = DeviceIdentity(serial=HP.serial, model=HP.model, tls_fingerprint="00" * 32)
        with pytest.raises(IdentityMismatch, match="tls_fingerprint"):
            await DeviceVerifier(IP, repinned, probe, tls_port=port,
                                 tls_probe=lambda _ip, p: tls_certificate_sha256("127.0.0.1", p))()
    finally:
        server.close()
        await server.wait_closed()
