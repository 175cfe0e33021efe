"""The agent's SSH tunnel client (docs/architecture.md, DWA flow step 5).

``Tunnel`` and ``open_tunnel`` load ``agent.tunnel.client`` (asyncssh, pyOpenSSL: ~30 MB of
memory) on first use, i.e. when the first remote session opens, not when the agent starts
(``tests/unit/agent/test_import_footprint.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.tunnel.client import Tunnel, open_tunnel

__all__ = ["Tunnel", "open_tunnel"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agent.tunnel import client

        return getattr(client, name)
    raise AttributeError(f"module 'agent.tunnel' has no attribute {name!r}")
