"""The agent's SSH tunnel client (docs/architecture.md, DWA flow step 5)."""

from agent.tunnel.client import Tunnel, open_tunnel
from agent.tunnel.proxy_connect import connect_via_http_proxy

__all__ = ["Tunnel", "connect_via_http_proxy", "open_tunnel"]
