"""JSON API for automation (browser session or API token with scopes).

Output types are separate from rows so nothing secret can leak.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from portal.deps import CurrentUser, DbSession, State, require_scope
from portal.schemas.api import DevicePublic, DwaSessionPublic, UserPublic
from printgate.domain import SessionId
from printgate.store import sessions as sessions_store
from printgate.store.devices import list_devices_of_dealer

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, display_name=user.display_name,
                      roles=sorted(r.value for r in user.roles), dealer_id=user.dealer_id,
                      customer_id=user.customer_id)


@router.get("/devices", response_model=list[DevicePublic],
            dependencies=[Depends(require_scope("devices:read"))])
async def devices(user: CurrentUser, s: DbSession) -> list[DevicePublic]:
    rows = await list_devices_of_dealer(s, user.dealer_id) if user.dealer_id else []
    return [DevicePublic(id=d.id, name=d.name, customer=c, model=d.identity.model,
                         serial=d.identity.serial, blocked=d.blocked) for d, c in rows]


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



