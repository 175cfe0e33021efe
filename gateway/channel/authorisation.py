"""The per-RPC authorisation table of the agent channel (deny by default).

Every method the gRPC server serves is listed here with its rule; a method
that is not listed is refused before any handler runs. Besides the rule, every
channel call needs, at call time, a current certificate of an enrolled and
unrevoked agent (``store.certificate_standing``, read on every call); the
objects a request names are checked by the server: sites here, command ids
against the commands the hub signed for that agent, sessions of relay refusals
against the agent's own sessions. No request names a device: inventory and
readings land on, and map to devices of, the cert's site.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_ENROL = "/printgate.agent.v1.Enrolment/"
SERVICE_CHANNEL = "/printgate.agent.v1.AgentChannel/"


@dataclass(frozen=True, slots=True)
class Rule:
    needs_agent_cert: bool
    site_field: str | None = None  # request field that must name the cert's own site (or be empty)
    why: str = ""


AUTHORISATION: Mapping[str, Rule] = {
    SERVICE_ENROL + "Enroll": Rule(False, why="one-time enrolment token checked by the handler"),
    SERVICE_CHANNEL + "Heartbeat": Rule(True, why="agent reports only itself; relay refusals of its own sessions"),
    SERVICE_CHANNEL + "UploadInventory": Rule(True, "site_id", why="devices land on the cert's site"),
    SERVICE_CHANNEL + "UploadReadings": Rule(True, "site_id", why="readings land on the cert's site"),
    SERVICE_CHANNEL + "CommandStream": Rule(True, why="stream of the cert's own agent only"),
    SERVICE_CHANNEL + "ReportCommandResult": Rule(True, why="results of commands sent to the cert's agent only"),
    SERVICE_CHANNEL + "RenewCertificate": Rule(True, why="the cert's own agent/site and key (re-key: admin grant)"),
}


def rule_for(method: str) -> Rule | None:
    return AUTHORISATION.get(method)


def site_violation(rule: Rule, request: object, cert_site: str) -> str | None:
    """Why ``request`` acts outside the cert's site, or None when it does not."""
    if rule.site_field is None:
        return None
    claimed = getattr(request, rule.site_field, "")
    if claimed and claimed != cert_site:
        return f"agent of site {cert_site} may not act for site {claimed}"
    return None
