"""The agent's SSH tunnel client (docs/architecture.md, DWA flow step 5)."""

from agent.tunnel.client import Tunnel, open_tunnel

__all__ = ["Tunnel", "open_tunnel"]
