"""The hardened SSH reverse-tunnel relay (DESIGN §4 steps 3, 7, 11)."""

from gateway.relay.limits import RelayLimits
from gateway.relay.relay import Relay
from gateway.relay.ssh_ca import SessionCredential, SshCertificateAuthority

__all__ = ["Relay", "RelayLimits", "SessionCredential", "SshCertificateAuthority"]
