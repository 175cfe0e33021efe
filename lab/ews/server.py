"""EwsServer: one simulated printer web server; EwsLab: one per catalogue printer."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from lab.catalog import PRINTERS, LabDevice, LabLogin
from lab.ews.app import EwsState, make_app
from lab.ews.certs import SelfSigned, make_self_signed
from lab.ews.device_login import LoginState
from lab.sites import serve
from printgate.lifecycle import Service


class EwsServer(Service):
    def __init__(self, host: str, port: int, *, device_name: str, serial: str, https: bool = False,
                 legacy_tls: bool = False, login: LabLogin | None = None) -> None:
        self.host = host
        self.port = port
        self.https = https or legacy_tls
        self.legacy_tls = legacy_tls  # TLS 1.0 only, as old printers
        self.state = EwsState(device_name=device_name, serial=serial, auth=LoginState(login or LabLogin()))
        self._cert: SelfSigned | None = make_self_signed(host, f"{device_name} EWS") if self.https else None
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def cert_fingerprint(self) -> str | None:
        """SHA-256 hex of the certificate's DER (HTTPS only)."""
        return self._cert.fingerprint if self._cert else None

    @property
    def cert_pem(self) -> bytes | None:
        return self._cert.cert_pem if self._cert else None

    async def start(self) -> None:
        self._runner = web.AppRunner(make_app(self.state), access_log=None)
        await self._runner.setup()
        ssl_context = self._cert.server_context(legacy_tls=self.legacy_tls) if self._cert else None
        if self.port == 0:  # the kernel's choice as it binds: nothing can take it first
            self.port = await serve(self._runner, self.host, ssl_context=ssl_context)
        else:
            await web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context).start()
        self.state.origin = self.origin

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None



def lab_serial(device: LabDevice) -> str:
    """The serial the printer's own recording reports (as the agent reads it over SNMP), or "" when it
    reports none: the web page never shows a serial the fleet cannot know (no invented one)."""
    from agent.snmp.parsing import identity_from
    from lab import snmprec
    from lab.snmp import recording_path

    identity, _ = identity_from(snmprec.load(recording_path(device.name)), ip=device.ip)
    return identity.serial or ""


class EwsLab(Service):
    """One EwsServer per catalogue printer, each at its own 127.0.20.x address."""

    def __init__(self, devices: Iterable[LabDevice] = PRINTERS, *, port: int = 0) -> None:
        """``port`` 0: a free port per address; else the same port on every address."""
        self.devices = tuple(d for d in devices if d.printer)
        self.port = port
        self.servers: dict[str, EwsServer] = {}

    async def start(self) -> None:
        try:
            for d in self.devices:
                server = EwsServer(d.ip, self.port, device_name=d.name, serial=lab_serial(d), https=d.https,
                                    login=d.login)
                await server.start()
                self.servers[d.name] = server
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        for server in self.servers.values():
            await server.aclose()
        self.servers.clear()

    def __getitem__(self, name: str) -> EwsServer:
        return self.servers[name]

