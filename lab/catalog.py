"""The simulated customer LAN: which recorded device lives at which loopback address.

Every lab device has its own 127.0.20.x address (SNMP on one shared UDP port
chosen at start, EWS web server on TCP for printers). Demo, tests and
benchmarks all use this one catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

RECORDINGS = Path(__file__).parent / "recordings"
LAB_NET = "127.0.20"


@dataclass(frozen=True, slots=True)
class LabLogin:
    """How a lab printer guards its admin pages (``/settings``), as real EWS do.

    ``form``: a login page posting ``user_field``/``password_field`` (plus a one-use
    ``csrf_field`` token from the form when set) to ``path``, answered by a session
    cookie; ``basic``/``digest``: an HTTP challenge (RFC 7617 / RFC 7616, MD5, qop=auth).
    Every kind locks the account after ``LOCKOUT_AFTER`` failed logins in a row.
    """

    kind: Literal["form", "basic", "digest"] = "form"
    path: str = "/login"
    user_field: str = "username"
    password_field: str = "password"
    csrf_field: str | None = None
    realm: str = "Printer administration"


@dataclass(frozen=True, slots=True)
class LabDevice:
    name: str  # recording file name without .snmprec
    ip: str
    printer: bool
    https: bool = False  # EWS served over HTTPS with a self-signed certificate
    login: LabLogin = field(default_factory=LabLogin)

    @property
    def recording(self) -> Path:
        return RECORDINGS / f"{self.name}.snmprec"


LAB_DEVICES: tuple[LabDevice, ...] = (
    LabDevice("brother_hl5370dw", f"{LAB_NET}.11", printer=True),
    LabDevice("canonprinter_tm", f"{LAB_NET}.12", printer=True),
    LabDevice("dell-laser_s5830dn", f"{LAB_NET}.13", printer=True),
    LabDevice("epson", f"{LAB_NET}.14", printer=True),
    LabDevice("jetdirect_m130nw", f"{LAB_NET}.15", printer=True),
    LabDevice("jetdirect_m880", f"{LAB_NET}.16", printer=True, https=True),
    LabDevice("konica_c250i", f"{LAB_NET}.17", printer=True, login=LabLogin("basic")),
    LabDevice("okilan_9450g", f"{LAB_NET}.18", printer=True),
    LabDevice("ricoh_mpc3002", f"{LAB_NET}.19", printer=True, login=LabLogin(
        "form", path="/web/guest/login.cgi", user_field="userid", password_field="password_work",
        csrf_field="wimToken")),
    LabDevice("sharp", f"{LAB_NET}.20", printer=True, login=LabLogin("digest", realm="Sharp MFP")),
    LabDevice("xerox", f"{LAB_NET}.21", printer=True, https=True, login=LabLogin(
        "form", path="/userpost/login", user_field="webUsername", password_field="webPassword",
        csrf_field="CSRFToken")),
    LabDevice("linux", f"{LAB_NET}.31", printer=False),
    LabDevice("netgear", f"{LAB_NET}.32", printer=False),
    LabDevice("apc_smt750x-nmc2", f"{LAB_NET}.33", printer=False),
    LabDevice("windows_svr_2019_1809", f"{LAB_NET}.34", printer=False),
)

PRINTERS = tuple(d for d in LAB_DEVICES if d.printer)


def by_name(name: str) -> LabDevice:
    for d in LAB_DEVICES:
        if d.name == name:
            return d
    raise KeyError(f"no lab device named {name!r}")
