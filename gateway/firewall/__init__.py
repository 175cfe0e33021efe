"""Ephemeral firewall exceptions: nftables (production) or in-process (embedded)."""

from gateway.firewall.base import Firewall, FirewallRule
from gateway.firewall.inprocess import InProcessFirewall
from gateway.firewall.nftables import NftablesFirewall
from gateway.firewall.reconcile import reconcile_with_sessions

__all__ = [
    "Firewall",
    "FirewallRule",
    "InProcessFirewall",
    "NftablesFirewall",
    "reconcile_with_sessions",
]
