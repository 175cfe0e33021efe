"""My sessions: the user's live DWA sessions, each with an "End" button."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from portal.state import PortalState
from printgate.domain import SessionId, event_types
from printgate.domain.dwa import ENDED_BY_TECHNICIAN
from printgate.store import sessions as sessions_store
from printgate.store.session_history import sessions_of_user

router = APIRouter(tags=["dwa-sessions"], include_in_schema=False)  # pages and forms: not the JSON API's description


async def end_all_of(state: PortalState, s: AsyncSession, user_id: str, *, reason: str, actor: str) -> int:
    """End every live DWA session of ``user_id`` once the request transaction is over."""
    ids = [SessionId(sid) for sid in await sessions_store.live_dwa_session_ids_of_user(s, user_id)]

    async def end() -> None:
        for sid in ids:
            await state.broker.close_session(sid, reason=reason, actor=actor)

    if ids:
        await state.after_commit(end)
    return len(ids)


@router.get("/sessions")
async def my_sessions(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    """Live sessions (time left, rejoin, end) and the history, by device and customer name."""
    now = state.clock()
    lines = await sessions_of_user(s, login.user.id, limit=50)
    return render(state, request, "sessions.html", login=login, now=now,
                  live=[x for x in lines if x.is_live(now)], history=[x for x in lines if not x.is_live(now)])


@router.post("/sessions/{session_id}/end")
async def end_session(request: Request, state: State, login: CurrentLogin, _csrf: CsrfChecked,
                      session_id: str) -> Response:
    session = await state.broker.get_session(SessionId(session_id))
    if session is None or session.user_id != login.user.id:
        raise HTTPException(404, "no such session of yours")
    await state.broker.close_session(SessionId(session_id), reason=ENDED_BY_TECHNICIAN,
                                     actor=login.user.email)
    await state.record(event_types.DWA_END_REQUESTED, request=request, user=login.user, session_id=session_id)
    return see_other("/sessions")
