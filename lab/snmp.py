"""The simulated customer LAN's SNMP side: snmpsim serving every lab device.

One snmpsim command responder process (via ``lab.snmp_responder``) (or several, for benchmarks) listens
on one UDP port chosen at start, on every device's own 127.0.20.x address.
Community ``public`` works everywhere: snmpsim picks the data file by the
transport endpoint the request arrived on (its "transport ID"
``1.3.6.1.6.1.1.<n>``), so each endpoint gets ``public/1.3.6.1.6.1.1.<n>.snmprec``
in the process's data directory (under md5("public"), see COMMUNITY_DIR). ``swap()`` rewrites that file with another
recording; snmpsim notices the changed mtime and re-indexes on the next query.

    async with SnmpLab() as lab:
        lab.port, lab.address_of("epson")
        await lab.swap("127.0.20.14", "lab-epson-alerts")
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.catalog import LAB_DEVICES, RECORDINGS
from lab.ports import free_udp_port
from printgate.lifecycle import Service

ROOT = Path(__file__).resolve().parent.parent
UDP_DOMAIN = "1.3.6.1.6.1.1"
# for v1/v2c snmpsim's context name is md5(community); it probes
# "<context>/<transport id>/<source ip>" then "<context>/<transport id>"
COMMUNITY_DIR = hashlib.md5(b"public").hexdigest()
PLACEHOLDER = "1.3.6.1.2.1.1.1.0|4|printgate lab: no device on this endpoint\n"
# SNMPv2c GetRequest, community "public", request id 0x1234, varbind sysDescr.0 = NULL
GET_SYS_DESCR = bytes.fromhex(
    "302702010104067075626c6963a01a02021234020100020100300e300c06082b060102010101000500"
)


WARM_UP_BATCH = 32  # endpoints asked at once while warming a responder up


class SnmpLabError(RuntimeError):
    pass


def recording_path(name: str) -> Path:
    """A catalogue recording by name, or any ``.snmprec`` file by path (tests mutate copies)."""
    path = Path(name) if name.endswith(".snmprec") else RECORDINGS / f"{name}.snmprec"
    if not path.is_file():
        raise SnmpLabError(f"no recording named {name!r} in {RECORDINGS}")
    return path


_ERROR_VARIATION = re.compile(r"^\d+(?:\.\d+)+\|\d+x?:error\|[A-Za-z=,]+$")


def is_error_variation(line: str) -> bool:
    """A line of snmpsim's ``error`` variation module (``OID|TAG:error|op=any,status=genError``):
    the simulated agent answers requests touching that object with that error status."""
    return bool(_ERROR_VARIATION.match(line.strip()))


def write_servable(src: Path, dst: Path) -> int:
    """Copy a recording, dropping lines snmpsim cannot serve; returns how many.

    Anonymised recordings contain OIDs such as ``...10.xx.0.32`` and values
    such as Counter32 ``6git3159``; snmpsim crashes on them mid-walk (the
    request then times out), so they go.
    """
    kept: list[str] = []
    dropped = 0
    from lab.snmprec import parse_line

    for line in src.read_text(errors="replace").splitlines():
        if line and (parse_line(line) is not None or is_error_variation(line)):
            kept.append(line)
        elif line:
            dropped += 1
    dst.write_text("\n".join(kept) + "\n")
    return dropped


@dataclass
class _Responder:
    data_dir: Path
    cache_dir: Path
    addresses: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    log: Path | None = None


class SnmpLab(Service):
    """snmpsim serving ``devices`` (ip -> recording name) on one UDP port.

    ``processes`` > 1 spreads the addresses over several responders (snmpsim
    is single-threaded and answers ~1,200 GET/s per process).
    """

    def __init__(
        self,
        devices: Mapping[str, str] | None = None,
        *,
        processes: int = 1,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.devices: dict[str, str] = (
            dict(devices) if devices is not None else {d.ip: d.name for d in LAB_DEVICES}
        )
        if not self.devices:
            raise SnmpLabError("an SNMP lab needs at least one device")
        for name in set(self.devices.values()):
            recording_path(name)
        self._processes = max(1, min(processes, len(self.devices)))
        self._port = port
        self._own_workdir = workdir is None
        self._workdir = workdir
        self._responders: list[_Responder] = []
        self._file_of: dict[str, Path] = {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise SnmpLabError("SNMP lab not started")
        return self._port

    def address_of(self, name: str) -> str:
        for ip, recorded in self.devices.items():
            if recorded == name:
                return ip
        raise KeyError(f"no lab device serving recording {name!r}")

    def name_at(self, ip: str) -> str:
        return self.devices[ip]

    async def start(self, *, ready_timeout: float = 60.0) -> None:
        if self._port is None:
            self._port = free_udp_port()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="printgate-snmplab-"))
        ips = list(self.devices)
        for i in range(self._processes):
            base = self._workdir / f"responder{i}"
            r = _Responder(base / "data", base / "cache", ips[i :: self._processes])
            (r.data_dir / COMMUNITY_DIR).mkdir(parents=True, exist_ok=True)
            r.cache_dir.mkdir(parents=True, exist_ok=True)
            (r.data_dir / "public.snmprec").write_text(PLACEHOLDER)
            for n, ip in enumerate(r.addresses):
                target = r.data_dir / COMMUNITY_DIR / f"{UDP_DOMAIN}.{n}.snmprec"
                write_servable(recording_path(self.devices[ip]), target)
                self._file_of[ip] = target
            self._responders.append(r)
        try:
            await asyncio.gather(*(self._spawn(r, ready_timeout) for r in self._responders))
        except BaseException:
            await self.aclose()
            raise

    async def _spawn(self, r: _Responder, ready_timeout: float) -> None:
        args = [
            sys.executable, "-m", "lab.snmp_responder",
            f"--data-dir={r.data_dir}",
            f"--cache-dir={r.cache_dir}",
        ]
        for ip in r.addresses:
            args.append(f"--agent-udpv4-endpoint={ip}:{self.port}")
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true", "PYTHONPATH": str(ROOT)}
        r.log = r.data_dir.parent / "responder.log"
        with r.log.open("wb") as log:
            r.proc = await asyncio.create_subprocess_exec(
                *args, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        marker = f"Listening at UDP/IPv4 endpoint {r.addresses[-1]}:{self.port}".encode()
        while time.monotonic() < deadline:
            if r.proc.returncode is not None:
                raise SnmpLabError(f"snmpsim exited ({r.proc.returncode}); see {r.log}")
            if marker in r.log.read_bytes() and await self._answers(r.addresses[0]):
                break
            await asyncio.sleep(0.1)
        else:
            raise SnmpLabError(f"snmpsim not ready after {ready_timeout}s; see {r.log}")
        # snmpsim opens each endpoint's data file on its first request (tens of ms
        # each, serialised): do it now, or the first sweep measures the simulator
        # In batches: asking hundreds at once on a loaded box piles up requests the
        # simulator answers after we stopped listening, re-asked every round (a backlog
        # that never drains).
        pending = list(r.addresses[1:])
        while pending:
            batch = pending[:WARM_UP_BATCH]
            answered = await self._answers_all(batch)
            pending = [ip for ip, ok in zip(batch, answered, strict=True) if not ok] + pending[WARM_UP_BATCH:]
            if pending and time.monotonic() > deadline:
                raise SnmpLabError(f"snmpsim does not answer on {pending[0]}:{self.port}; see {r.log}")

    async def _answers(self, ip: str, sys_descr: bytes | None = None) -> bool:
        """Does the responder answer an SNMPv2c GET of sysDescr.0 (with this value) yet?"""
        return (await self._answers_all([ip], sys_descr))[0]

    async def _answers_all(self, ips: Sequence[str], sys_descr: bytes | None = None) -> list[bool]:
        """One raw UDP socket, a fixed GET sysDescr.0 to each address, 1 s to answer.

        No SNMP library: the lab must not add pysnmp's memory to a process
        whose memory a benchmark measures.
        """
        loop = asyncio.get_running_loop()
        answered: set[str] = set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            for ip in ips:
                await loop.sock_sendto(sock, GET_SYS_DESCR, (ip, self.port))
            deadline = time.monotonic() + 1.0
            while len(answered) < len(ips) and (left := deadline - time.monotonic()) > 0:
                try:
                    data, (src, sport) = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), left)
                except TimeoutError:
                    break
                except OSError:  # ICMP port unreachable from a not yet listening endpoint
                    continue
                if sport == self.port and (sys_descr is None or sys_descr in data):
                    answered.add(src)
        return [ip in answered for ip in ips]

    async def swap(self, ip: str, name: str, *, ready_timeout: float = 30.0) -> None:
        """Make the device at ``ip`` answer with recording ``name`` from now on."""
        if ip not in self._file_of:
            raise KeyError(f"no lab device at {ip}")
        src = recording_path(name)
        target = self._file_of[ip]
        tmp = target.with_suffix(".tmp")
        write_servable(src, tmp)
        before = target.stat().st_mtime
        os.replace(tmp, target)
        # snmpsim reopens the file when its mtime changes, but rebuilds the index
        # only if the file is newer than the index (else it serves the old
        # offsets: garbage); so: newer than both, by more than fs resolution
        stamp = max(before, time.time()) + 2
        os.utime(target, (stamp, stamp))
        self.devices[ip] = name
        # the re-index happens on the next request and can take seconds on a busy
        # box: wait until the new recording answers, so callers see it at once
        from lab.snmprec import load

        want = load(src).get("1.3.6.1.2.1.1.1.0")
        expected = want.value if want is not None and isinstance(want.value, bytes) else None
        deadline = time.monotonic() + ready_timeout
        while not await self._answers(ip, expected):
            if time.monotonic() > deadline:
                raise SnmpLabError(f"{ip} does not answer with recording {name!r} after {ready_timeout}s")
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        for r in self._responders:
            if r.proc is not None and r.proc.returncode is None:
                try:
                    os.killpg(r.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    await asyncio.wait_for(r.proc.wait(), 5)
                except TimeoutError:
                    os.killpg(r.proc.pid, signal.SIGKILL)
                    await r.proc.wait()
        self._responders.clear()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def lab_devices(names: Sequence[str] | None = None) -> dict[str, str]:
    """The catalogue as ip -> recording name (optionally only some names)."""
    return {d.ip: d.name for d in LAB_DEVICES if names is None or d.name in names}
