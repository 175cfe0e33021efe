"""The one naming rule for session hosts and their URLs (``DwaProxy`` and ``ProxyWorkerPool``)."""

from __future__ import annotations

from gateway import session_hosts
from gateway.proxy.deps import PublicAddress
from gateway.proxy.routes import RouteTable


class SessionUrls:
    """Mixin: needs ``dwa_domain`` (normalised), ``public``, ``routes`` and ``node_label`` (None: a
    single node; else this node's label in its session hosts, ``gateway/session_hosts.py``)."""

    dwa_domain: str
    public: PublicAddress
    routes: RouteTable
    node_label: str | None

    def session_host(self, session_id: str) -> str:
        return session_hosts.session_host(session_id, self.dwa_domain, self.node_label)

    def session_origin(self, session_id: str) -> str:
        return self.public.origin(self.session_host(session_id))

    def launch_url(self, session_id: str, token: str) -> str:
        route = self.routes.get(session_id)
        host = route.host if route is not None else self.session_host(session_id)
        return f"{self.public.origin(host)}/__printgate/launch?token={token}"
