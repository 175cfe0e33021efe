"""The gateway's witness API, seen from the witness (HTTPS/HTTP, bearer token).

``GET  /audit/checkpoints/latest``                 newest signed checkpoint (404: none yet)
``GET  /audit/proofs/consistency?first=M&second=N`` RFC 6962 proof between two checkpoints
``POST /audit/checkpoints/{N}/cosignatures``        return a cosignature (``audit.cosignature``)
``POST /audit/witness/refusals``                   report a refusal (the gateway audits it as
                                                   ``audit.witness.failed``: security alerting sees it)

The token is an API token of an auditor with the ``audit:witness`` (or
``audit:read``) scope.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from audit.checkpoint import Checkpoint
from audit.cosignature import Cosignature
from audit.errors import (
    COSIGNATURE_NOT_STORED,
    GATEWAY_HTTP_ERROR,
    GATEWAY_MALFORMED,
    GATEWAY_UNAUTHORISED,
    GATEWAY_UNREACHABLE,
    GatewayUnreachable,
)


class GatewayClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       headers={"Authorization": f"Bearer {token}"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.base_url}: {exc!r}",
                                     code=GATEWAY_UNREACHABLE) from exc
        if r.status_code in (401, 403):
            raise GatewayUnreachable(
                f"the gateway refused the witness token ({r.status_code}: {_detail(r)}); it needs an auditor's "
                "API token with the audit:witness or audit:read scope", code=GATEWAY_UNAUTHORISED)
        return r

    async def latest_checkpoint(self) -> Checkpoint | None:
        r = await self._call("GET", "/audit/checkpoints/latest")
        if r.status_code == 404:
            return None
        try:
            return Checkpoint.from_json(_json(r, "the newest checkpoint"))
        except ValueError as exc:
            raise GatewayUnreachable(f"the gateway sent a malformed checkpoint: {exc}", code=GATEWAY_MALFORMED) from exc

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        r = await self._call("GET", "/audit/proofs/consistency", params={"first": first, "second": second})
        if r.status_code == 404:
            return []  # the gateway cannot prove it (e.g. records gone): the judge refuses
        body = _json(r, f"the consistency proof {first}..{second}")
        try:
            return [bytes.fromhex(str(p)) for p in body["path"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayUnreachable(f"the gateway sent a malformed consistency proof: {exc}",
                                     code=GATEWAY_MALFORMED) from exc

    async def send_cosignature(self, cosig: Cosignature) -> None:
        r = await self._call("POST", f"/audit/checkpoints/{cosig.checkpoint.tree_size}/cosignatures",
                             json=cosig.to_json())
        if r.status_code not in (200, 201):
            raise GatewayUnreachable(
                f"the gateway did not store the cosignature of checkpoint {cosig.checkpoint.tree_size} "
                f"({r.status_code}: {_detail(r)})", code=COSIGNATURE_NOT_STORED)

    async def report_refusal(self, *, witness: str, code: str, message: str, tree_size: int | None) -> None:
        """Tell the gateway this witness refused (it cannot be trusted to, which is why the
        witness also reports locally; a gateway log rolled back by a restore still learns of it)."""
        r = await self._call("POST", "/audit/witness/refusals",
                             json={"witness": witness, "code": code, "message": message[:1000],
                                   "tree_size": tree_size})
        if r.status_code not in (200, 201):
            raise GatewayUnreachable(f"the gateway did not take the refusal report ({r.status_code}: {_detail(r)})",
                                     code=GATEWAY_HTTP_ERROR)


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text[:200]))
    except ValueError:
        return r.text[:200]


def _json(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code != 200:
        raise GatewayUnreachable(f"the gateway did not send {what} ({r.status_code}: {_detail(r)})",
                                 code=GATEWAY_HTTP_ERROR)
    try:
        body = r.json()
    except ValueError as exc:
        raise GatewayUnreachable(f"the gateway sent {what} that is not JSON", code=GATEWAY_MALFORMED) from exc
    if not isinstance(body, dict):
        raise GatewayUnreachable(f"the gateway sent {what} that is not a JSON object", code=GATEWAY_MALFORMED)
    return body
