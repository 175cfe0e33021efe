"""API tokens for automation: create (shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.auth import api_tokens
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from printgate.domain import event_types
from printgate.store import api_tokens as api_tokens_store

router = APIRouter(prefix="/tokens", tags=["api-tokens"], include_in_schema=False)  # pages and forms: not the JSON API's description


@router.get("")
async def tokens_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    rows = await api_tokens_store.list_api_tokens(s, login.user.id)
    return render(state, request, "tokens.html", login=login, tokens=rows, scopes=api_tokens.SCOPES)


@router.post("")
async def create_token(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, name: Annotated[str, Form(min_length=1, max_length=200)],
                       scopes: Annotated[list[str] | None, Form()] = None,
                       days: Annotated[int, Form(ge=1, le=365)] = 90) -> Response:
    wanted = sorted(set(scopes or []))
    if not wanted or set(wanted) - set(api_tokens.SCOPES):
        raise HTTPException(422, f"choose scopes among {', '.join(api_tokens.SCOPES)}")
    token_id, token, token_hash = api_tokens.new_token()
    now = state.clock()
    await api_tokens_store.create_api_token(s, token_id=token_id, user_id=login.user.id, name=name,
                                            token_hash=token_hash, scopes=wanted, now=now,
                                            expires_at=now + timedelta(days=days))
    await state.record(event_types.AUTH_API_TOKEN_CREATED, request=request, user=login.user,
                       details={"token": token_id, "scopes": wanted, "days": days})
    rows = await api_tokens_store.list_api_tokens(s, login.user.id)
    return render(state, request, "tokens.html", login=login, tokens=rows, scopes=api_tokens.SCOPES,
                  new_token=token)


@router.post("/{token_id}/revoke")
async def revoke_token(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, token_id: str) -> Response:
    if not await api_tokens_store.revoke_api_token(s, token_id, user_id=login.user.id, now=state.clock()):
        raise HTTPException(404, "no such token of yours")
    await state.record(event_types.AUTH_API_TOKEN_REVOKED, request=request, user=login.user,
                       details={"token": token_id})
    return see_other("/tokens")
