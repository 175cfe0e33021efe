"""TLS towards the technician's browser: a DWA certificate, or the gateway's own CA.

Session hosts are ``s-<id>.<dwa-domain>``. In production the gateway is given a
wildcard certificate for the DWA domain (``certs``, mitmproxy's
``"*.dwa.example.com=/etc/printgate/dwa.pem"`` form, certificate and key in one
PEM), or a TLS-terminating load balancer sits in front of the proxy (it talks
plain HTTP to it; the proxy tells TLS from plain HTTP by the first bytes).
Without either, the gateway creates its own CA once and mints a certificate per
session host from it; a browser must trust that CA (``trust_instructions``).

The CA lives in mitmproxy's ``confdir`` under mitmproxy's file names, so the
proxy, in-process or in worker processes, loads it instead of making a new one.
"""

from __future__ import annotations

from pathlib import Path

from mitmproxy.certs import CertStore

# mitmproxy's own file names in its confdir (``<basename>-ca.pem`` etc.)
_BASENAME = "mitmproxy"
CA_KEY_SIZE = 2048
CA_ORGANIZATION = "printgate"
CA_COMMON_NAME = "printgate DWA session CA"


def ca_cert_path(confdir: Path) -> Path:
    """The CA certificate (no key) a browser must trust."""
    return confdir / f"{_BASENAME}-ca-cert.pem"


def ensure_own_ca(confdir: Path) -> Path:
    """Create the gateway's session CA in ``confdir`` unless it exists; return its certificate.

    The private key is written 0600 (mitmproxy's ``umask_secret``); the folder is 0700.
    """
    if not (confdir / f"{_BASENAME}-ca.pem").is_file():
        confdir.mkdir(parents=True, exist_ok=True)
        confdir.chmod(0o700)
        CertStore.create_store(confdir, _BASENAME, CA_KEY_SIZE,
                               organization=CA_ORGANIZATION, cn=CA_COMMON_NAME)
    return ca_cert_path(confdir)


def trust_instructions(ca_cert: Path) -> list[str]:
    """How to make a browser (or curl) on this machine trust the session CA."""
    return [
        f"Chromium / Chrome on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n printgate-dwa -i {ca_cert}",
        "  (certutil is in Debian's libnss3-tools; restart the browser afterwards; SEC_ERROR_BAD_DATABASE: no NSS "
        "database yet, make it first: mkdir -p $HOME/.pki/nssdb && certutil -d sql:$HOME/.pki/nssdb -N "
        "--empty-password)",
        f"Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import {ca_cert}",
        f"macOS: security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db {ca_cert}",
        f"Windows: certutil -user -addstore Root {ca_cert}",
        f"curl: curl --cacert {ca_cert} https://s-<id>.<dwa-domain>/",
    ]
