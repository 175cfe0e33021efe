"""Audit pages and API for the ``auditor`` role: the /audit page (filter form,
newest-first results, downloads), filter API, CSV/JSONL download, session story.

``router`` (paths under ``/audit``, included by ``create_app``; callers are
auditors, ``portal.routers.audit_witness.current_auditor``). Every query is narrowed to the
caller's tenant (``audit.query.scope_for``): a customer's auditor sees only
that customer's events, a dealer's auditor only that dealer's; asking for
another tenant is 403, another tenant's session is 404. Downloads are
themselves audited. API tokens need the ``audit:read`` scope (a witness
token, ``audit:witness``, reaches only the witness API of
``portal.routers.audit_witness``, included here too).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from audit.checkpoint import FileSigner, Signer
from audit.export import write_subset
from audit.keyset import KEY_SET_FILE, PUBLIC_KEY_FILE, AuditKeySet, load_key_set
from audit.log import AuditLog
from audit.query import AuditFilter, row_to_record, scope_for, search, search_all
from portal.auditing.form import AuditForm, api_query
from portal.auditing.present import detail_items, story_facts, timeline, title
from portal.deps import State, login_of
from portal.pages import render
from portal.routers.audit_witness import current_auditor, token_scope_check
from portal.routers.audit_witness import router as witness_router
from portal.schemas.audit import AuditEventPublic, AuditPage, SessionStory
from portal.state import PENDING_AUDIT, Login, PortalState
from printgate.domain import AuditEventIn, AuditRecord, Outcome, User, event_types
from printgate.errors import AccessDenied, AuditIntegrityError, ConfigError
from printgate.store import audit as audit_store
from printgate.store import tenants
from printgate.store.audit import personal_for, query_records
from printgate.store.db import Database
from printgate.store.devices import get_devices
from printgate.store.tenants import get_user

MAX_PAGE = 1000
PAGE_SIZE = 50  # rows per /audit page
KNOWN_EVENT_TYPES = sorted({v for k, v in vars(event_types).items() if k.isupper() and isinstance(v, str)})
MAX_DOWNLOAD = 100_000
CSV_COLUMNS = ("seq", "at", "type", "outcome", "actor", "source_ip", "dealer_id", "customer_id",
               "device_id", "session_id", "details", "hash")


def _filter(
    since: datetime | None = None, until: datetime | None = None, actor: str | None = None,
    dealer_id: str | None = None, customer_id: str | None = None, device_id: str | None = None,
    session_id: str | None = None, type: Annotated[list[str] | None, Query()] = None,
    outcome: str | None = None, after_seq: int = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_DOWNLOAD)] = 200,
) -> AuditFilter:
    return AuditFilter(dealer_id=dealer_id, customer_id=customer_id, since=since, until=until,
                       actor=actor, device_id=device_id, session_id=session_id,
                       types=tuple(type or ()), outcome=outcome, after_seq=after_seq, limit=limit)


def _download_filter(
    since: datetime | None = None, until: datetime | None = None, actor: str | None = None,
    dealer_id: str | None = None, customer_id: str | None = None, device_id: str | None = None,
    session_id: str | None = None, type: Annotated[list[str] | None, Query()] = None,
    outcome: str | None = None, after_seq: int = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_DOWNLOAD)] = MAX_DOWNLOAD,
) -> AuditFilter:
    """The same filter for the CSV/JSONL downloads, whose default is the whole filtered set."""
    return _filter(since, until, actor, dealer_id, customer_id, device_id, session_id, type, outcome,
                   after_seq, limit)


router = APIRouter(prefix="/audit", tags=["audit"])
router.include_router(witness_router)
auditor = Depends(token_scope_check(current_auditor, frozenset({"audit:read"})))
wanted_filter = Depends(_filter)
download_filter = Depends(_download_filter)


def scoped(user: User, wanted: AuditFilter) -> AuditFilter:
    try:
        return scope_for(user, wanted)
    except AccessDenied as exc:
        raise HTTPException(status_code=403, detail=exc.message) from exc


async def downloaded(request: Request, state: PortalState, user: User, f: AuditFilter, fmt: str,
                     count: int) -> None:
    event = AuditEventIn(
        type=event_types.AUDIT_DOWNLOADED, actor=user.email,
        source_ip=request.client.host if request.client else None,
        dealer_id=f.dealer_id or user.dealer_id, customer_id=f.customer_id,
        details={"format": fmt, "records": count, "filter": {
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
            "device_id": f.device_id, "session_id": f.session_id, "types": list(f.types),
            "outcome": f.outcome, "actor_filter": f.actor is not None}},
    )
    pending = PENDING_AUDIT.get()
    if pending is None:
        await state.audit.append(event)
    else:  # the request's transaction is open (and may hold SQLite's write lock): append after it
        pending.append(lambda: state.audit.append(event))


@router.get("/events", response_model=AuditPage)
async def list_events(state: State, user: User = auditor, wanted: AuditFilter = wanted_filter) -> AuditPage:
    f = scoped(user, wanted)
    f = replace(f, limit=min(f.limit, MAX_PAGE))
    records = await search(state.db, f)
    nxt = records[-1].seq if len(records) == f.limit else None
    return AuditPage(events=[AuditEventPublic.of(r) for r in records], next_after_seq=nxt)


@router.get("/events.csv")
async def download_csv(request: Request, state: State, user: User = auditor,
                       wanted: AuditFilter = download_filter) -> Response:
    f = scoped(user, wanted)
    records = await search_all(state.db, f)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in records:
        e = AuditEventPublic.of(r)
        w.writerow([e.seq, e.at.isoformat(), e.type, e.outcome, e.actor or "", e.source_ip or "",
                    e.dealer_id or "", e.customer_id or "", e.device_id or "", e.session_id or "",
                    json.dumps(e.details, sort_keys=True), e.hash])
    await downloaded(request, state, user, f, "csv", len(records))
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


@router.get("/events.jsonl")
async def download_jsonl(request: Request, state: State, user: User = auditor,
                         wanted: AuditFilter = download_filter) -> Response:
    """The filtered set as ``printgate audit export`` writes a tenant's share (``audit.stream`` format):
    each record as stored, its inclusion proof against the newest signed checkpoint, the clear personal
    values with their salts, the witnesses' cosignatures: ``printgate audit verify --public-key
    audit-public.pem --file audit.jsonl`` checks it offline. The log signs a checkpoint over its newest
    records first (when this portal keeps the log), so the download ends where the log ends."""
    f = scoped(user, wanted)
    if isinstance(state.audit, AuditLog) and state.audit.signer is not None:
        await state.audit.checkpoint()  # nothing new is signed when the newest checkpoint covers the log
    out = io.BytesIO()
    try:
        records, _ = await write_subset(state.db, out, f, with_personal=True)
    except AuditIntegrityError as exc:
        raise HTTPException(409, "no signed checkpoint yet, so nothing can be verified: the gateway signs one "
                                 "every few minutes (gateway.audit_checkpoint_seconds); download again then") from exc
    await downloaded(request, state, user, f, "jsonl", records)
    return Response(out.getvalue(), media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})


@router.get("/keys/" + PUBLIC_KEY_FILE)
async def public_key(state: State, user: User = auditor) -> Response:
    """The public key of the gateway's current checkpoint signing key (PEM), named as the page's command names it."""
    signer = _signer(state)
    return Response(signer.public_key_pem(), media_type="application/x-pem-file",
                    headers={"Content-Disposition": f'attachment; filename="{PUBLIC_KEY_FILE}"',
                             "X-Audit-Key-Id": signer.key_id})


@router.get("/keys/" + KEY_SET_FILE)
async def key_set(state: State, user: User = auditor) -> Response:
    """Every checkpoint public key the gateway ever signed with, each with its validity period (after a
    ``printgate keys rotate audit`` the single current key no longer verifies older checkpoints)."""
    keys = _key_set(_signer(state))
    return Response(json.dumps(keys.to_json(), indent=2) + "\n", media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{KEY_SET_FILE}"'})


def _signer(state: PortalState) -> Signer:
    signer = state.audit.signer if isinstance(state.audit, AuditLog) else None
    if signer is None:
        raise HTTPException(404, "this portal does not sign the audit log: ask the gateway's operator for "
                                 f"{PUBLIC_KEY_FILE} (in the gateway's key directory)")
    if isinstance(signer, FileSigner):
        signer.refresh()  # after `printgate keys rotate audit` the current key is the new one
    return signer


def _key_set(signer: Signer) -> AuditKeySet:
    """The key set kept next to the signing key (``audit-keys.json``), else the one current key."""
    if isinstance(signer, FileSigner) and (signer.path.parent / KEY_SET_FILE).is_file():
        try:
            return load_key_set(signer.path.parent / KEY_SET_FILE)
        except ConfigError as exc:
            raise HTTPException(500, f"the gateway's audit key set is unreadable: {exc.message}") from exc
    return AuditKeySet.single(signer.verifier())


async def story(db: Database, user: User, session_id: str) -> SessionStory:
    f = scoped(user, AuditFilter(session_id=session_id, limit=MAX_DOWNLOAD))
    records = await search_all(db, f)
    if not records:
        raise HTTPException(status_code=404, detail=f"no audit events for session {session_id}")
    events = [AuditEventPublic.of(r) for r in records]
    return SessionStory(
        session_id=session_id, device_id=next((e.device_id for e in events if e.device_id), None),
        actors=sorted({e.actor for e in events if e.actor}), started=events[0].at,
        ended=events[-1].at, events=events,
    )


@router.get("/sessions/{session_id}", response_model=SessionStory)
async def session_story(session_id: str, state: State, user: User = auditor) -> SessionStory:
    return await story(state.db, user, session_id)


@router.get("/sessions/{session_id}/view", response_class=HTMLResponse, include_in_schema=False)
async def session_story_page(request: Request, session_id: str, state: State,
                             user: User = auditor) -> HTMLResponse:
    s = await story(state.db, user, session_id)
    choices, names = await choices_and_names(state.db, user, {s.device_id} if s.device_id else set())
    customers = dict(choices)
    customer_id = next((e.customer_id for e in s.events if e.customer_id), None)
    return await _page(request, "audit_story.html", story=s, steps=timeline(s.events), facts=story_facts(s.events),
                       device_name=names.get(s.device_id or ""), customer_name=customers.get(customer_id or ""),
                       back=AuditForm(session_id=session_id).query())


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def audit_page(request: Request, state: State, user: User = auditor) -> HTMLResponse:
    db = state.db
    form = AuditForm.of(dict(request.query_params))
    error: str | None = None
    records: list[AuditRecord] = []
    older: str | None = None
    downloads: str | None = None
    f: AuditFilter | None
    try:
        f = scoped(user, form.to_filter())
    except ValueError as exc:
        error, f = str(exc), None
    if f is not None:
        rows = await query_records(
            db, dealer_id=f.dealer_id, customer_id=f.customer_id, since=f.since, until=f.until,
            types=f.types, outcome=f.outcome, device_id=f.device_id, session_id=f.session_id,
            personal_field="actor" if f.actor is not None else None, personal_value=f.actor,
            before_seq=form.before(), newest_first=True, limit=PAGE_SIZE + 1)
        personal = await personal_for(db, [r.seq for r in rows[:PAGE_SIZE]])
        records = [row_to_record(r, personal.get(r.seq)) for r in rows[:PAGE_SIZE]]
        if len(rows) > PAGE_SIZE:
            older = form.query(before_seq=str(records[-1].seq))
        downloads = api_query(f)  # the downloads' default is the whole filtered set
    customers, names = await choices_and_names(db, user, {r.device_id for r in records if r.device_id})
    who = await session_users(db, records)
    return await _page(
        request, "audit.html", status_code=400 if error else 200, error=error, form=form,
        records=records, older=older, newest=form.query(before_seq="") if form.before() else None,
        downloads=downloads, customers=customers, outcomes=[o.value for o in Outcome],
        event_types=KNOWN_EVENT_TYPES, all_customers=user.customer_id is None,
        names=dict(customers) | names,
        details={r.seq: detail_items(r.details) for r in records}, title=title, trail=await trail_status(db),
        key_id=_current_key_id(state), who=who,
    )


async def session_users(db: Database, records: list[AuditRecord]) -> dict[str, str]:
    """user id -> e-mail of the users named only in details (``user_id``): a session's proxied requests
    carry the technician's id, not an actor; the page's "Who" shows who it was."""
    wanted = {str(r.details["user_id"]) for r in records
              if not r.actor and isinstance(r.details.get("user_id"), str)}
    if not wanted:
        return {}
    async with db.session() as s:
        found = {uid: await get_user(s, uid) for uid in sorted(wanted)}
    return {uid: u.email for uid, u in found.items() if u is not None}


def _current_key_id(state: PortalState) -> str | None:
    signer = state.audit.signer if isinstance(state.audit, AuditLog) else None
    return signer.key_id if signer is not None else None


async def device_names(db: Database, device_ids: set[str]) -> dict[str, str]:
    """Device id -> its name (the model when it has none), for the ids on a page."""
    async with db.session() as s:
        return await _device_names(s, device_ids)


async def _device_names(s: AsyncSession, device_ids: set[str]) -> dict[str, str]:
    found = await get_devices(s, device_ids) if device_ids else {}
    return {i: d.name or d.identity.describe() for i, d in sorted(found.items())}


async def choices_and_names(db: Database, user: User,
                            device_ids: set[str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The customers ``user`` may filter on and the names of a page's devices, in one session."""
    async with db.session() as s:
        return await _customer_choices(s, user), await _device_names(s, device_ids)


@dataclass(frozen=True, slots=True)
class TrailStatus:
    """How far the trail is signed, and which witnesses cosigned lately."""

    checkpoint_size: int | None
    checkpoint_at: str | None
    witnesses: tuple[tuple[str, int, str], ...]  # (witness key id, tree size, cosigned at)


async def trail_status(db: Database) -> TrailStatus:
    async with db.session() as s:
        row = await audit_store.latest_checkpoint(s)
    latest: dict[str, tuple[str, int, str]] = {}
    for c in await audit_store.cosignatures(db):
        latest[c.witness] = (c.witness, int(c.tree_size), c.cosigned_at)
    return TrailStatus(int(row.tree_size) if row else None, str(row.at) if row else None,
                       tuple(sorted(latest.values())))


async def customer_choices(db: Database, user: User) -> list[tuple[str, str]]:
    """(id, name) of the customers ``user`` may filter on."""
    async with db.session() as s:
        return await _customer_choices(s, user)


async def _customer_choices(s: AsyncSession, user: User) -> list[tuple[str, str]]:
    if user.customer_id is not None:
        found = await tenants.get_customer(s, user.customer_id)
        return [(found.id, found.name)] if found else []
    if user.dealer_id is not None:
        return [(c.id, c.name) for c in await tenants.list_customers_of_dealer(s, user.dealer_id)]
    return []


async def _page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a portal template; with the portal's header when a browser session is signed in."""
    login: Login | None = await login_of(request)
    state: PortalState = request.app.state.portal
    return render(state, request, template, login=login, status_code=status_code, **context)
