"""The hardened SSH reverse-tunnel relay (docs/architecture.md, DWA flow steps 4, 6, 8)."""

from gateway.relay.limits import RelayLimits
from gateway.relay.relay import Relay
from gateway.relay.ssh_ca import SessionCredential, SshCertificateAuthority

__all__ = ["Relay", "RelayLimits", "SessionCredential", "SshCertificateAuthority"]
