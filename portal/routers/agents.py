"""Agents page for dealer administrators: the agents at their customers' sites,
one-time enrolment tokens per site (shown once) and revocation.

Only a dealer admin, and only for sites/agents of that dealer's customers: a
foreign site or agent answers 404 (no oracle for what exists elsewhere).
Revocation only changes the store; the gateway's gRPC server polls revoked
certificates and cuts the agent's live stream within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from portal.state import Login
from printgate.domain import Agent, AgentCertificate, DealerId, Role, Site, event_types
from printgate.domain.event_types import AGENT_REVOKED
from printgate.logs import get_logger
from printgate.store import agent_health, channel, site_agents, tenants
from printgate.store.readings import unmapped_counts
from printgate.store.tenants import get_site

router = APIRouter(prefix="/agents", tags=["agents"], include_in_schema=False)  # pages and forms: not the JSON API's description
log = get_logger("portal.agents")

ENROLMENT_TOKEN_TTL = timedelta(hours=1)
ENROLMENT_TOKEN_CREATED = event_types.AGENT_ENROLMENT_TOKEN_CREATED
URL_PLACEHOLDER = "<gateway-host>:<enrolment-port>"


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One row of the agents table."""

    agent: Agent
    cert_expires: datetime | None  # latest unrevoked certificate's not_after
    cert_expired: bool
    revoked_reason: str | None  # of the latest revoked certificate
    health: agent_health.AgentHealth | None = None  # what its last heartbeat said
    unmapped: int = 0  # its readings that matched no device (kept; a printer missing from the inventory)

    @property
    def last_seen(self) -> datetime | None:
        """When the agent was last heard from: its latest heartbeat report, else its (dis)connection."""
        times = [t for t in (self.agent.last_seen, self.health.reported_at if self.health else None) if t]
        return max(times) if times else None

    @classmethod
    def of(cls, agent: Agent, certs: list[AgentCertificate], now: datetime,
           health: agent_health.AgentHealth | None = None, unmapped: int = 0) -> AgentLine:
        live = [c.not_after for c in certs if c.revoked_at is None]
        expires = max(live) if live else None
        revoked = sorted((c for c in certs if c.revoked_at is not None), key=lambda c: c.revoked_at or now)
        return cls(agent, expires, expires is not None and expires <= now,
                   revoked[-1].revoked_reason if revoked else None, health, unmapped)


def _dealer_of_admin(login: Login) -> DealerId:
    user = login.user
    if Role.DEALER_ADMIN not in user.roles or user.dealer_id is None:
        raise HTTPException(403, "only dealer administrators manage agents")
    return user.dealer_id


async def _own_site(s: DbSession, dealer_id: str, site_id: str) -> Site:
    site = await get_site(s, site_id)
    customer = await tenants.get_customer(s, site.customer_id) if site else None
    if site is None or customer is None or customer.dealer_id != dealer_id:
        raise HTTPException(404, "no such site at your customers")
    return site


async def _own_agent(s: DbSession, dealer_id: str, agent_id: str) -> site_agents.AgentOwner:
    owner = await site_agents.owner_of_agent(s, agent_id)
    if owner is None or owner.dealer_id != dealer_id:
        raise HTTPException(404, "no such agent at your customers")
    return owner


@router.get("")
async def agents_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    dealer_id = _dealer_of_admin(login)
    customers = await tenants.list_customers_of_dealer(s, dealer_id)
    sites = await tenants.list_sites_of_customers(s, [c.id for c in customers])
    agents = await site_agents.agents_of_sites(s, [x.id for x in sites])
    certs = await site_agents.certificates_of_agents(s, [a.id for a in agents])
    health = await agent_health.health_of_agents(s, [a.id for a in agents])
    unmapped = await unmapped_counts(s, [a.id for a in agents])
    now = state.clock()
    lines: dict[str, list[AgentLine]] = {x.id: [] for x in sites}
    for a in agents:
        lines[a.site_id].append(AgentLine.of(a, certs[a.id], now, health.get(a.id), unmapped.get(a.id, 0)))
    return render(state, request, "agents.html", login=login, customers=customers, sites=sites,
                  lines=lines, now=now)


@router.post("/sites/{site_id}/enrolment-token")
async def create_enrolment_token(request: Request, state: State, s: DbSession, login: CurrentLogin,
                                 _csrf: CsrfChecked, site_id: str) -> Response:
    dealer_id = _dealer_of_admin(login)
    site = await _own_site(s, dealer_id, site_id)
    now = state.clock()
    token = await channel.create_enrolment_token(s, site.id, ttl=ENROLMENT_TOKEN_TTL,
                                                 created_by=login.user.email, now=now)
    await state.record(ENROLMENT_TOKEN_CREATED, request=request, user=login.user,
                       customer_id=site.customer_id,
                       details={"site_id": site.id, "ttl_s": int(ENROLMENT_TOKEN_TTL.total_seconds())})
    log.info("agents.enrolment_token_created", site=site.id, dealer=dealer_id)  # never the token
    url = state.settings.agent_enrol_url
    return render(state, request, "agent_token.html", login=login, site=site, token=token,
                  enrol_url=url or URL_PLACEHOLDER, url_known=bool(url), expires_at=now + ENROLMENT_TOKEN_TTL,
                  channel_url=state.settings.agent_channel_url,
                  agent_ca=state.agent_ca)


@router.get("/agent-ca.pem")
async def agent_ca_certificate(state: State, login: CurrentLogin) -> Response:
    """The agent CA certificate (public) that ``printgate agent enroll --ca-cert`` needs."""
    _dealer_of_admin(login)
    if state.agent_ca is None:
        raise HTTPException(404, "this portal runs without a gateway: ask your operator for the agent CA "
                                 "(<gateway data_dir>/agent-ca/agent-ca.crt)")
    return Response(state.agent_ca.pem, media_type="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="agent-ca.crt"'})


@router.get("/{agent_id}/revoke")
async def confirm_revoke(request: Request, state: State, s: DbSession, login: CurrentLogin,
                         agent_id: str) -> Response:
    owner = await _own_agent(s, _dealer_of_admin(login), agent_id)
    return render(state, request, "agent_revoke.html", login=login, agent=owner.agent)


@router.post("/{agent_id}/revoke")
async def revoke_agent(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, agent_id: str,
                       reason: Annotated[str, Form(max_length=200)] = "",
                       confirm: Annotated[str, Form()] = "") -> Response:
    owner = await _own_agent(s, _dealer_of_admin(login), agent_id)
    if confirm != "yes":
        raise HTTPException(422, "confirm the revocation (tick the box) to revoke this agent")
    why = reason.strip() or "revoked in the portal"
    count = await channel.revoke_agent(s, owner.agent.id, reason=why, now=state.clock())
    await state.record(AGENT_REVOKED, request=request, user=login.user, customer_id=owner.customer_id,
                       details={"agent_id": owner.agent.id, "site_id": owner.site_id, "reason": why,
                                "certificates": count})
    log.info("agents.revoked", agent=owner.agent.id, certificates=count)
    return see_other("/agents")
