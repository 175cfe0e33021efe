"""The gateway's API for audit witnesses (``audit.witness``), under ``/audit``.

``GET /audit/checkpoints/latest`` and ``/audit/checkpoints/{n}`` serve signed
checkpoints, ``GET /audit/proofs/consistency?first=M&second=N`` an RFC 6962
consistency proof between two of them, and ``POST
/audit/checkpoints/{n}/cosignatures`` takes a witness's cosignature: it is
stored only if it is valid under the key it names and cosigns exactly the
checkpoint this gateway signed; storing it is audited
(``audit.witness.cosigned``) in the request's own transaction (``DbSession``:
on SQLite a second writing transaction would wait for the request's lock).

Callers are auditors: a browser session, or an API token with the
``audit:witness`` scope (a dedicated witness token, which cannot read
events) or ``audit:read``. Checkpoints cover the whole log (tree size, root,
head hash), not any tenant's events, so every auditor may see them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from audit.checkpoint import Checkpoint
from audit.cosignature import Cosignature, WitnessVerifier
from audit.log import AuditLog
from audit.proofs import consistency_proof
from portal.deps import DbSession, State, require_role
from portal.state import PortalState
from printgate.domain import AuditEventIn, Outcome, Role, User, event_types
from printgate.errors import ConfigError, NotFound
from printgate.store import audit as store

WITNESS_SCOPES = frozenset({"audit:witness", "audit:read"})


def token_scope_check(current_user_dependency: Callable[..., Any], allowed: frozenset[str]) -> Callable[..., Any]:
    """A dependency: the current user, if an API token carries one of ``allowed`` (browser sessions pass)."""

    async def check(request: Request, user: User = Depends(current_user_dependency)) -> User:
        scopes = getattr(request.state, "token_scopes", None)
        if scopes is not None and not (scopes & allowed):
            raise HTTPException(403, f"API token lacks one of the scopes {', '.join(sorted(allowed))}")
        return user

    return check


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(int(row.tree_size), row.root, row.head, row.at, row.key_id, row.signature)


# Callers of the audit routes: auditors (tests replace it with ``app.dependency_overrides``).
current_auditor = require_role(Role.AUDITOR)


def _audit_log(state: PortalState) -> AuditLog:
    """The chained log itself (cosignatures are appended in the request's transaction)."""
    if not isinstance(state.audit, AuditLog):
        raise HTTPException(503, "this portal does not keep the audit log itself")
    return state.audit


router = APIRouter(tags=["audit witness"])
caller = Depends(token_scope_check(current_auditor, WITNESS_SCOPES))


@router.get("/checkpoints/latest")
async def latest_checkpoint(state: State, user: User = caller) -> dict[str, object]:
    async with state.db.session() as s:
        row = await store.latest_checkpoint(s)
    if row is None:
        raise HTTPException(404, "no signed checkpoint yet")
    return _checkpoint(row).to_json()


@router.get("/checkpoints/{tree_size}")
async def checkpoint_of_size(tree_size: int, state: State, user: User = caller) -> dict[str, object]:
    row = await store.checkpoint_of_size(state.db, tree_size)
    if row is None:
        raise HTTPException(404, f"no signed checkpoint of tree size {tree_size}")
    return _checkpoint(row).to_json()


@router.get("/proofs/consistency")
async def consistency(first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)],
                      state: State, user: User = caller) -> dict[str, object]:
    if first > second:
        raise HTTPException(422, f"first ({first}) must not exceed second ({second})")
    try:
        return await consistency_proof(state.db, first, second)
    except (NotFound, ValueError) as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/checkpoints/{tree_size}/cosignatures", status_code=201)
async def add_cosignature(tree_size: int, body: dict[str, Any], request: Request, s: DbSession,
                          state: State, user: User = caller) -> JSONResponse:
    try:
        cosig = Cosignature.from_json(body)
        valid = WitnessVerifier.of(cosig).is_valid(cosig)
    except (ValueError, ConfigError) as exc:
        raise HTTPException(400, f"not a cosignature: {exc}") from exc
    if cosig.checkpoint.tree_size != tree_size:
        raise HTTPException(400, f"the cosignature is for checkpoint {cosig.checkpoint.tree_size}, "
                                 f"not {tree_size}")
    if not valid:
        raise HTTPException(400, f"the cosignature is not valid under the witness key it names ({cosig.witness})")
    row = await store.checkpoint_of_size(state.db, tree_size)
    if row is None or _checkpoint(row) != cosig.checkpoint:
        # a validly cosigned checkpoint this gateway does not have: the witness saw another log
        # (split view, or this log was rolled back); audited for security alerting, then refused
        await _audit_log(state).append_in(s, [_witness_failed(
            request, user, witness=cosig.witness, reason="split_view", tree_size=tree_size,
            message=f"witness {cosig.witness} cosigned a checkpoint {tree_size} (root {cosig.checkpoint.root[:16]}) "
                    "that this gateway did not sign")])
        return JSONResponse({"detail": f"the cosigned checkpoint {tree_size} is not the one this gateway signed"},
                            status_code=409)
    cp = cosig.checkpoint
    stored = await store.insert_cosignature(s, {
        "witness": cosig.witness, "tree_size": cp.tree_size,
        "witness_public_key": cosig.witness_public_key, "cosigned_at": cosig.cosigned_at,
        "signature": cosig.signature, "root": cp.root, "head": cp.head, "checkpoint_at": cp.at,
        "key_id": cp.key_id, "checkpoint_signature": cp.signature, "received_at": datetime.now(UTC),
    })
    if stored:
        await _audit_log(state).append_in(s, [AuditEventIn(
            type=event_types.AUDIT_WITNESS_COSIGNED, actor=user.email,
            source_ip=request.client.host if request.client else None,
            dealer_id=user.dealer_id, customer_id=user.customer_id,
            details={"witness": cosig.witness, "tree_size": cp.tree_size, "root": cp.root,
                     "cosigned_at": cosig.cosigned_at},
        )])
    return JSONResponse({"stored": stored, "witness": cosig.witness, "tree_size": cp.tree_size},
                        status_code=201 if stored else 200)


def _witness_failed(request: Request, user: User, *, witness: str, reason: str, tree_size: int | None,
                    message: str) -> AuditEventIn:
    """``audit.witness.failed`` (security alerting's ``platform.audit`` rule: the operators hear of
    it); the reporting auditor is a personal value, not the actor, so the alert is the platform's."""
    return AuditEventIn(
        type=event_types.AUDIT_WITNESS_FAILED, outcome=Outcome.FAILURE, actor=f"witness:{witness}"[:100],
        source_ip=request.client.host if request.client else None,
        details={"reason": reason, "witness": witness, "tree_size": tree_size, "message": message[:1000]},
        personal={"reported_by": user.email},
    )


@router.post("/witness/refusals", status_code=201)
async def report_refusal(body: dict[str, Any], request: Request, s: DbSession, state: State,
                         user: User = caller) -> dict[str, object]:
    """A witness refused to cosign (``audit.witness``: truncated, forked or forged log, wrong
    state); the report is audited as ``audit.witness.failed``."""
    witness, code, message, size = (body.get("witness"), body.get("code"), body.get("message"),
                                    body.get("tree_size"))
    if not (isinstance(witness, str) and 0 < len(witness) <= 64 and isinstance(code, str)
            and 0 < len(code) <= 64 and isinstance(message, str)
            and (size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0))):
        raise HTTPException(422, "a refusal report needs witness (key id), code, message and tree_size "
                                 "(an integer or null)")
    (rec,) = await _audit_log(state).append_in(s, [_witness_failed(
        request, user, witness=witness, reason=code, tree_size=size, message=message)])
    return {"recorded": rec.seq}
