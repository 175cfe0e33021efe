"""Session hosts that name the node serving them (issue 18, docs/scale-out.md "Host routing").

One naming rule for every part that builds or reads a session host: the proxy (routes, launch
URLs, the refusal of another node's hosts), the broker's wiring, cross-node opens and
``printgate nodes haproxy``. With several nodes behind a load balancer a session host is
``s-<session>-<node label>.<dwa domain>`` (still one DNS label under the wildcard certificate) and
the load balancer sends it to that node's proxy by the label. A single node (no label) keeps
``s-<session>.<dwa domain>``.

A node's label is derived from its node id (stable across restarts, short, DNS-safe):
``n`` + the first 8 hex digits of the SHA-256 of the id.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

LABEL_RE = re.compile(r"n[0-9a-f]{8}")
# session ids are secrets.token_hex (lower-case hex); the label, if any, after one '-'
_HOST_RE = re.compile(r"s-(?P<session>[0-9a-f]{1,64})(?:-(?P<label>n[0-9a-f]{8}))?")


def node_label(node_id: str) -> str:
    """The DNS-safe label of ``node_id`` in session hosts and the load balancer's map."""
    return "n" + hashlib.sha256(node_id.encode()).hexdigest()[:8]


def session_host(session_id: str, dwa_domain: str, label: str | None = None) -> str:
    """``s-<session>[-<label>].<dwa domain>``, lower case."""
    domain = dwa_domain.strip(".").lower()
    first = f"s-{session_id}-{label}" if label else f"s-{session_id}"
    return f"{first}.{domain}".lower()


@dataclass(frozen=True, slots=True)
class SessionHost:
    session_id: str
    label: str | None  # None: a single node's host (no label)


def parse_session_host(host: str, dwa_domain: str) -> SessionHost | None:
    """The session and node label a host names, or None when it is not a session host of
    ``dwa_domain`` (port, if any, already stripped)."""
    suffix = "." + dwa_domain.strip(".").lower()
    host = host.lower()
    if not host.endswith(suffix):
        return None
    match = _HOST_RE.fullmatch(host[: -len(suffix)])
    if match is None:
        return None
    return SessionHost(match["session"], match["label"])
