"""What ``printgate serve`` refuses to start with, and says what to set instead.

- the portal's ``secret_key`` missing, a placeholder (the built-in default, the
  example's "generate-with: ..." text, anything with "change-me") or too short;
  with ``secret_key_file`` set and no key given, the key is read from that file,
  made (random, 0600, in a directory made 0700) on the first start; an existing
  file that group or others may read is refused with the chmod to run;
- any of the cloud's private keys already made (agent CA and command-signing keys,
  the audit signing key, the vault master key, the session CA key, the relay CA
  and host keys) that group or others may read, with the chmod to run and what to
  do if it may have been read;
- a listening port the cloud needs that something else holds (e.g. ``relay_port = 22``
  while the host's sshd listens there) or that two settings share.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from printgate.errors import ConfigError
from printgate.settings import PortalSettings, Settings

MIN_SECRET_CHARS = 32
PLACEHOLDER_MARKS = ("change-me", "changeme", "generate-with", "replace-me", "placeholder")
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
WELL_KNOWN = {22: "the host's SSH server usually listens there", 80: "a web server usually listens there",
              443: "a web server usually listens there"}


def resolve_secret_key(portal: PortalSettings) -> PortalSettings:
    """The portal settings with a usable ``secret_key``, or ``ConfigError`` saying what to set."""
    value = portal.secret_key.get_secret_value().strip()
    default = PortalSettings.model_fields["secret_key"].default.get_secret_value()
    if (not value or value == default) and portal.secret_key_file is not None:
        value = _key_from_file(portal.secret_key_file)
        portal = portal.model_copy(update={"secret_key": SecretStr(value)})
    how = (f"set [portal] secret_key (or PRINTGATE_PORTAL__SECRET_KEY) to a random value, e.g. the output of "
           f"{GENERATE}, or set [portal] secret_key_file to a path the cloud may create it in")
    if not value:
        raise ConfigError(f"the portal has no secret_key: {how}")
    if value == default or any(mark in value.lower() for mark in PLACEHOLDER_MARKS):
        raise ConfigError(f"the portal's secret_key is a placeholder ({value[:24]}...): {how}")
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"the portal's secret_key is {len(value)} characters; at least {MIN_SECRET_CHARS} "
                          f"are needed: {how}")
    return portal


REMAKE = "if others may have read it, make a new one (delete it: a new random one is made)"


def refuse_exposed_secret(path: Path, what: str, *, if_read: str = REMAKE) -> None:
    """``ConfigError`` when the secret file ``path`` may be read (or written) by group or others;
    ``if_read`` says what to do if someone may have read it already."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} is open to other users (mode {mode:04o}): run `chmod 600 {path}` "
                          f"(and `chmod 700 {path.parent}`) as its owner, then start again; {if_read}")


def gateway_private_keys(settings: Settings) -> list[tuple[Path, str, str]]:
    """(path, what, if someone read it) of every private key the cloud keeps in files."""
    gw = settings.gateway
    data = gw.key_directory  # the shared key directory (printgate.keys), the data directory by default
    remake_ssh = ("if others may have read it, delete it: a new one is made at the next start (open sessions "
                  "end; new sessions get certificates from the new key)")
    return [
        (data / "agent-ca" / "agent-ca.key", "the gateway's private key", REMAKE),
        (data / "agent-ca" / "command-signing.key", "the gateway's private key", REMAKE),
        (data / "audit-signing.key", "the audit signing key",
         "if others may have read it, records signed with it can be forged: move it aside (keep "
         "audit-public.pem to verify the old checkpoints), start again for a new key, and tell your auditors"),
        (gw.vault_master_key_path, "the vault master key",
         "if others may have read it, every stored printer password is exposed: rotate those passwords "
         "(do NOT delete the key: the vault could not be opened without it)"),
        (data / "dwa-ca" / "mitmproxy-ca.pem", "the session CA key",
         "if others may have read it, delete the dwa-ca directory (a new CA is made) and have browsers "
         "trust the new CA certificate"),
        (data / "dwa-ca" / "mitmproxy-ca.p12", "the session CA key",
         "if others may have read it, delete the dwa-ca directory (a new CA is made) and have browsers "
         "trust the new CA certificate"),
        (data / "relay_ssh_ca", "the relay CA key", remake_ssh),
        (data / "relay_host_key", "the relay host key",
         "if others may have read it, delete it: a new one is made at the next start"),
        *((retired, "a retired key still in its overlap",
           "if others may have read it, rotate its use again (`printgate keys rotate ...`) and delete it")
          for retired in sorted((data / "retired").glob("*"))),
    ]


def _make_private_dir(directory: Path) -> None:
    """``directory`` and missing parents, the new ones 0700 (an existing directory keeps its mode)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)  # whatever the umask


def _key_from_file(path: Path) -> str:
    try:
        refuse_exposed_secret(path, "[portal] secret_key_file")
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    _make_private_dir(path.parent)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key + "\n")
    return key


def listening_ports(settings: Settings) -> list[tuple[str, str, int]]:
    """(setting, host, port) of every port ``serve`` listens on."""
    gw, portal = settings.gateway, settings.portal
    return [
        ("[portal] port", portal.host, portal.port),
        ("[gateway] relay_port", gw.relay_host, gw.relay_port),  # where the relay binds (nodes on one host: own addresses)
        ("[gateway] proxy_port", gw.proxy_host, gw.proxy_port),
        ("[gateway] grpc_port", gw.grpc_host, gw.grpc_port),
        ("[gateway] enrol_port", gw.grpc_host, gw.enrol_port),
    ]


_ANY = ("0.0.0.0", "::", "[::]", "")


def check_ports(settings: Settings, probe: Callable[[str, int], str | None] | None = None) -> None:
    """Refuse ports two settings share or something else already listens on (``probe``: by binding)."""
    probe = probe or _bind_problem
    seen: dict[int, list[tuple[str, str]]] = {}
    for name, host, port in listening_ports(settings):
        if port == 0:
            continue
        for other, other_host in seen.get(port, []):
            if host == other_host or host in _ANY or other_host in _ANY:
                raise ConfigError(f"{name} and {other} are both {port}: give each its own port")
        seen.setdefault(port, []).append((name, host))
        problem = probe(host, port)
        if problem is not None:
            why = f" ({WELL_KNOWN[port]})" if port in WELL_KNOWN else ""
            raise ConfigError(f"{name} = {port} cannot be used: {problem}{why}; set {name} to a free port "
                              f"(the defaults are portal 8400, relay 8422, proxy 8480, grpc 8443, enrol 8444)")


def _bind_problem(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"another process already listens on {host}:{port}"
            if exc.errno == errno.EADDRNOTAVAIL:
                return None  # an address of another host (behind a load balancer): not ours to probe
            return f"{host}:{port}: {exc.strerror}"
    return None


def checked_for_serving(settings: Settings) -> Settings:
    """``settings`` ready for ``serve`` (secret key resolved), or ``ConfigError`` with what to set."""
    check_database_host(settings.database_url)  # first: the other checks may create files
    settings = settings.model_copy(update={"portal": resolve_secret_key(settings.portal)})
    for key, what, if_read in gateway_private_keys(settings):  # the cloud's own private keys, if made before
        if key.exists():
            refuse_exposed_secret(key, what, if_read=if_read)
    check_ports(settings)
    return settings


def check_database_host(url: str) -> None:
    """Refuse a ``database_url`` whose host name does not resolve (one line, not a driver traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url {url!r} is not a database URL ({exc}); e.g. "
                          "postgresql+asyncpg://printgate@db-host/printgate") from None
    if parsed.get_backend_name() == "sqlite" or not parsed.host or parsed.host.startswith("/"):
        return
    try:
        socket.getaddrinfo(parsed.host, parsed.port or 5432, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"database_url: the database host {parsed.host!r} does not resolve ({exc.strerror}); set "
            f"database_url (or PRINTGATE_DATABASE_URL) to the PostgreSQL server printgate should use, "
            f"currently {parsed.render_as_string(hide_password=True)}") from None
