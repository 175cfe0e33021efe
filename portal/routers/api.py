"""JSON API for automation (browser session or API token with scopes).

Output types are separate from rows so nothing secret can leak.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from portal.deps import CurrentUser, DbSession, State, require_scope
from portal.schemas.api import DevicePublic, DwaSessionPublic, UserPublic
from printgate.domain import SessionId
from printgate.store import sessions as sessions_store
from printgate.store.device_list import dealer_devices_page

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, display_name=user.display_name,
                      roles=sorted(r.value for r in user.roles), dealer_id=user.dealer_id,
                      customer_id=user.customer_id)


DEVICES_PAGE = 100  # GET /api/devices: devices per page unless ``limit`` says otherwise
DEVICES_MAX_PAGE = 1000


@router.get("/devices", response_model=list[DevicePublic],
            dependencies=[Depends(require_scope("devices:read"))],
            summary="The dealer's devices, one page at a time",
            description=f"At most `limit` devices (default {DEVICES_PAGE}, at most {DEVICES_MAX_PAGE}) from "
                        "`offset`, by customer name, device name and id. The response's `Link` header has the "
                        "`next` (and `prev`) page's URL (RFC 8288) and `X-Total-Count` the number of the "
                        "dealer's devices; follow `next` until there is none.")
async def devices(
    request: Request, response: Response, user: CurrentUser, s: DbSession,
    limit: Annotated[int, Query(ge=1, le=DEVICES_MAX_PAGE, description="devices per page")] = DEVICES_PAGE,
    offset: Annotated[int, Query(ge=0, description="devices to skip")] = 0,
) -> list[DevicePublic]:
    rows, total = await dealer_devices_page(s, user.dealer_id, offset=offset, limit=limit) \
        if user.dealer_id else ([], 0)
    links = []
    if offset + limit < total:
        links.append(f'<{_page_link(request, offset + limit, limit)}>; rel="next"')
    if offset > 0:
        links.append(f'<{_page_link(request, max(0, offset - limit), limit)}>; rel="prev"')
    if links:
        response.headers["link"] = ", ".join(links)
    response.headers["x-total-count"] = str(total)
    return [DevicePublic(id=d.id, name=d.name, customer=c, model=d.identity.model,
                         serial=d.identity.serial, blocked=d.blocked) for d, c in rows]


def _page_link(request: Request, offset: int, limit: int) -> str:
    params = {**dict(request.query_params), "offset": str(offset), "limit": str(limit)}
    return f"{request.url.path}?{urlencode(params)}"


@router.get("/sessions", response_model=list[DwaSessionPublic],
            dependencies=[Depends(require_scope("sessions:read"))])
async def sessions(user: CurrentUser, s: DbSession, state: State) -> list[DwaSessionPublic]:
    out = []
    for sid in await sessions_store.live_dwa_session_ids_of_user(s, user.id):
        session = await state.broker.get_session(SessionId(sid))
        if session is not None:
            out.append(DwaSessionPublic(id=session.id, device_id=session.device_id,
                                        state=session.state.value,
                                        expires_at=session.expires_at.isoformat()))
    return out



