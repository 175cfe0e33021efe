"""API tokens for automation: create (shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.auth import api_tokens
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from printgate.store import identity as repo
from printgate.store.models.identity import ApiTokenRow

router = APIRouter(prefix="/tokens", tags=["api-tokens"])


@router.get("")
async def tokens_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    rows = await repo.list_api_tokens(s, login.user.id)
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
    await repo.add_api_token(s, ApiTokenRow(id=token_id, user_id=login.user.id, name=name,
                                            token_hash=token_hash, scopes=wanted, created_at=now,
                                            expires_at=now + timedelta(days=days)))
    await state.record("auth.api_token_created", request=request, user=login.user,
                       details={"token": token_id, "scopes": wanted, "days": days})
    rows = await repo.list_api_tokens(s, login.user.id)
    return render(state, request, "tokens.html", login=login, tokens=rows, scopes=api_tokens.SCOPES,
                  new_token=token)


@router.post("/{token_id}/revoke")
async def revoke_token(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, token_id: str) -> Response:
    rows = {r.id: r for r in await repo.list_api_tokens(s, login.user.id)}
    row = rows.get(token_id)
    if row is None:
        raise HTTPException(404, "no such token of yours")
    row.revoked_at = state.clock()
    await state.record("auth.api_token_revoked", request=request, user=login.user,
                       details={"token": token_id})
    return see_other("/tokens")
