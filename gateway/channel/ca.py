"""The agent CA: issues short-lived X.509 client certificates from CSRs.

An agent certificate names its agent and site in SAN URIs
(``urn:printgate:agent:<id>``, ``urn:printgate:site:<id>``) and its CN is the
agent id (Mosquitto's ``use_identity_as_username`` turns it into the MQTT user
name that the topic ACL matches). The same CA issues the gateway's server
certificate and the MQTT bridge's client certificate. Keys are P-256.

Rotation (``rotate_agent_ca``, ``printgate keys rotate agent-ca``): a new CA
replaces the issuing one; the old CA certificate and key move to
``previous/`` and stay trusted (client certificates it issued keep working,
its CRL keeps being issued) until the old CA certificate expires. The new CA
is cross-signed by the old one (``cross.crt``) and the gateway's server
certificate carries that cross certificate, so an agent that still trusts only
the old CA verifies the gateway; at its next renewal it gets a certificate from
the new CA. ``cert_pem`` is the trust set (the issuing CA first).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import CsrRejected
from printgate.domain import AgentCertificate, AgentId, SiteId
from printgate.errors import AuthenticationFailed, ConfigError, PrintgateError

AGENT_URI = "urn:printgate:agent:"
SITE_URI = "urn:printgate:site:"
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    pem: bytes
    record: AgentCertificate


@dataclass(frozen=True, slots=True)
class KeyAndCert:
    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who a verified agent client certificate names."""

    agent_id: AgentId
    site_id: SiteId
    serial: str


def _write_private(path: Path, data: bytes) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)  # whatever the umask
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # a file that existed keeps its mode otherwise
        f.write(data)


def _refuse_exposed(path: Path) -> None:
    """An existing private key that group or others may read is refused (with the fix to run)."""
    if not path.exists():
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"private key {path} is open to other users (mode {mode:04o}): run "
                          f"`chmod 600 {path}` (and `chmod 700 {path.parent}`) as its owner, then start again")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def peer_identity(cert_pem: bytes) -> PeerIdentity:
    """The agent and site an (already TLS-verified) agent certificate names."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise AuthenticationFailed("client certificate is not an agent certificate") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    agent = next((u[len(AGENT_URI):] for u in uris if u.startswith(AGENT_URI)), None)
    site = next((u[len(SITE_URI):] for u in uris if u.startswith(SITE_URI)), None)
    if not agent or not site:
        raise AuthenticationFailed("client certificate names no agent/site: not an agent certificate")
    return PeerIdentity(AgentId(agent), SiteId(site), format(cert.serial_number, "x"))


def csr_matches_certificate(csr_pem: bytes, cert_pem: bytes) -> bool:
    """Whether the CSR asks for the same public key the certificate holds (renewal, not re-key)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrRejected("certificate request is not a PEM PKCS#10 CSR") from exc
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cert = x509.load_pem_x509_certificate(cert_pem)
    return bool(csr.public_key().public_bytes(serialization.Encoding.DER, spki)
                == cert.public_key().public_bytes(serialization.Encoding.DER, spki))


class AgentCA:
    """Loads (or creates) the CA key/cert in ``directory``; issues certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                 command_key: Ed25519PrivateKey, *,
                 previous: list[tuple[ec.EllipticCurvePrivateKey, x509.Certificate]] | None = None,
                 cross: x509.Certificate | None = None) -> None:
        self._key = key
        self.cert = cert
        self.command_key = command_key
        self.previous = list(previous or [])  # retired CAs still trusted (and issuing CRLs) until they expire
        self.cross = cross  # this CA's certificate signed by the previous CA (sent with the server certificate)

    @classmethod
    def load_or_create(cls, directory: Path, *, name: str = "printgate agent CA") -> AgentCA:
        key_path, cert_path = directory / "agent-ca.key", directory / "agent-ca.crt"
        cmd_path = directory / "command-signing.key"
        for secret in (key_path, cmd_path):
            _refuse_exposed(secret)
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PrintgateError(f"{key_path} is not an EC key: remove it to create a new CA")
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _ca_certificate(key, name, key, None)
            _write_private(key_path, _key_pem(key))
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if cmd_path.exists():
            cmd = serialization.load_pem_private_key(cmd_path.read_bytes(), None)
            if not isinstance(cmd, Ed25519PrivateKey):
                raise PrintgateError(f"{cmd_path} is not an Ed25519 key")
        else:
            cmd = Ed25519PrivateKey.generate()
            _write_private(cmd_path, cmd.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        return cls(key, cert, cmd, previous=_load_previous(directory), cross=_load_cross(directory, cert))

    @property
    def cert_pem(self) -> bytes:
        """The trust set: the issuing CA's certificate, then those of retired CAs not yet expired."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in [self.cert, *(c for _, c in self.previous)])

    def ids(self) -> list[str]:
        """Ids of the trusted CAs (issuing first): first 16 hex of the certificate's SHA-256 fingerprint."""
        return [ca_id(c) for c in [self.cert, *(c for _, c in self.previous)]]

    def _builder(self, subject: str, public_key: ec.EllipticCurvePublicKey | object,
                 ttl: timedelta, now: datetime) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
        )

    def issue_agent_certificate(
        self, csr_pem: bytes, *, agent_id: str, site_id: str, ttl: timedelta,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Sign the CSR's public key for ``agent_id``@``site_id``; the CSR's names are ignored."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CsrRejected("certificate request is not a PEM PKCS#10 CSR") from exc
        if not csr.is_signature_valid:
            raise CsrRejected("certificate request signature is invalid (proof of key possession failed)")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise CsrRejected("agent keys must be EC P-256: regenerate the key pair")
        at = now or datetime.now(UTC)
        cert = (
            self._builder(agent_id, public, ttl, at)
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier(AGENT_URI + agent_id),
                x509.UniformResourceIdentifier(SITE_URI + site_id),
            ]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        record = AgentCertificate(
            serial=format(cert.serial_number, "x"), agent_id=AgentId(agent_id),
            site_id=SiteId(site_id), fingerprint=fingerprint(cert),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        )
        return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM), record)

    def issue_server_certificate(self, hosts: list[str], *, ttl: timedelta = timedelta(days=90)) -> KeyAndCert:
        """A TLS server key+cert for the gateway or the broker (SANs: ``hosts``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            self._builder(hosts[0], key.public_key(), ttl, datetime.now(UTC))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM)
        if self.cross is not None:  # lets agents that trust only the previous CA verify this certificate
            chain += self.cross.public_bytes(serialization.Encoding.PEM)
        return KeyAndCert(_key_pem(key), chain)

    def issue_crl(self, serials: set[str], *, validity: timedelta = timedelta(days=7),
                  now: datetime | None = None) -> bytes:
        """A PEM CRL listing ``serials`` (hex) as revoked, valid for ``validity`` (re-issue before).

        After a rotation, one CRL per trusted CA (issuing first), concatenated: a
        client certificate of a retired CA is still checked against its issuer's CRL.
        """
        at = now or datetime.now(UTC)
        out = b""
        for key, cert in [(self._key, self.cert), *self.previous]:
            builder = (x509.CertificateRevocationListBuilder()
                       .issuer_name(cert.subject)
                       .last_update(at - BACKDATE).next_update(at + validity))
            for serial in sorted(serials):
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(at).build())
            out += builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        return out

    def issue_service_client(self, name: str, *, ttl: timedelta = timedelta(days=90)) -> KeyAndCert:
        """A client key+cert for a cloud service (e.g. the MQTT bridge, CN=``name``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder(name, key.public_key(), ttl, datetime.now(UTC))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def ca_id(cert: x509.Certificate) -> str:
    """A CA's id: the first 16 hex digits of its certificate's SHA-256 fingerprint."""
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def _ca_certificate(key: ec.EllipticCurvePrivateKey, name: str, signer: ec.EllipticCurvePrivateKey,
                    issuer: x509.Certificate | None, *, not_after: datetime | None = None) -> x509.Certificate:
    """A CA certificate for ``key`` named ``name``: self-signed, or cross-signed by ``issuer``."""
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(not_after or now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _load_previous(directory: Path) -> list[tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]:
    """Retired CAs in ``directory/previous`` whose certificate has not expired (oldest last)."""
    out = []
    now = datetime.now(UTC)
    for cert_path in sorted((directory / "previous").glob("*.crt")):
        key_path = cert_path.with_suffix(".key")
        _refuse_exposed(key_path)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc <= now:
            continue
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PrintgateError(f"{key_path} is not an EC key")
        out.append((key, cert))
    return sorted(out, key=lambda kc: kc[1].not_valid_before_utc, reverse=True)


def _load_cross(directory: Path, cert: x509.Certificate) -> x509.Certificate | None:
    path = directory / "cross.crt"
    if not path.exists():
        return None
    cross = x509.load_pem_x509_certificate(path.read_bytes())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if (cross.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki)
            or cross.not_valid_after_utc <= datetime.now(UTC)):
        return None  # made for an earlier CA, or its issuer has expired
    return cross


def rotate_agent_ca(directory: Path) -> tuple[str, str]:
    """Replace the issuing agent CA in ``directory``; returns (old id, new id).

    The old CA's certificate and key move to ``previous/<id>.{crt,key}`` (still
    trusted and issuing CRLs until the certificate expires); the new CA is
    cross-signed by the old one (``cross.crt``, valid as long as the old CA).
    A gateway started afterwards issues from the new CA.
    """
    key_path, cert_path = directory / "agent-ca.key", directory / "agent-ca.crt"
    if not (key_path.exists() and cert_path.exists()):
        raise ConfigError(f"no agent CA in {directory} (the gateway creates it on first start)")
    _refuse_exposed(key_path)
    old_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if not isinstance(old_key, ec.EllipticCurvePrivateKey):
        raise PrintgateError(f"{key_path} is not an EC key")
    old_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    old_id = ca_id(old_cert)
    new_key = ec.generate_private_key(ec.SECP256R1())
    # a distinct name, so that the cross certificate is not mistaken for a self-signed one
    name = f"printgate agent CA {hashlib.sha256(os.urandom(16)).hexdigest()[:8]}"
    new_cert = _ca_certificate(new_key, name, new_key, None)
    cross = _ca_certificate(new_key, name, old_key, old_cert, not_after=old_cert.not_valid_after_utc)
    previous = directory / "previous"
    _write_private(previous / f"{old_id}.key", _key_pem(old_key))
    (previous / f"{old_id}.crt").write_bytes(old_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "cross.crt").write_bytes(cross.public_bytes(serialization.Encoding.PEM))
    tmp = key_path.with_name(key_path.name + ".new")
    _write_private(tmp, _key_pem(new_key))
    cert_tmp = cert_path.with_name(cert_path.name + ".new")
    cert_tmp.write_bytes(new_cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, key_path)
    os.replace(cert_tmp, cert_path)
    return old_id, ca_id(new_cert)
