"""/api/openapi.json describes the JSON API only (newcomer finding 14): the /api routes and the audit
routes for auditors and witnesses, which answer JSON (or files) to programs; none of the HTML pages and
form posts (/login, /mfa/enrol, /admin/..., /credentials, the /audit page itself)."""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from pydantic import SecretStr

from portal.app import create_app
from printgate.settings import PortalSettings
from printgate.testing.audit import RecordingAuditSink

API = {"/api/me", "/api/devices", "/api/sessions", "/api/approvals/{approval_id}",
       "/api/fleet/devices", "/api/fleet/devices/{device_id}", "/api/fleet/devices/{device_id}/readings",
       "/api/fleet/devices/{device_id}/supplies", "/api/fleet/devices/{device_id}/alerts",
       "/api/device-credentials", "/api/device-credentials/erase", "/api/device-credentials/use",
       "/api/device-credentials/reveal-requests", "/api/device-credentials/reveal-requests/{request_id}/reveal"}
AUDIT_API = {"/audit/events", "/audit/events.csv", "/audit/events.jsonl", "/audit/sessions/{session_id}",
             "/audit/checkpoints/latest", "/audit/checkpoints/{tree_size}", "/audit/proofs/consistency",
             "/audit/checkpoints/{tree_size}/cosignatures", "/audit/witness/refusals",
             "/audit/keys/audit-public.pem", "/audit/keys/audit-keys.json"}


def _app() -> FastAPI:
    settings = PortalSettings(public_url="http://portal.test", secret_key=SecretStr(secrets.token_urlsafe(32)))
    return create_app(settings, db=None, broker=None, audit=RecordingAuditSink())  # type: ignore[arg-type]


def test_the_schema_lists_the_json_api_and_no_page() -> None:
    app = _app()
    paths = set(app.openapi()["paths"])
    assert {p for p in paths if p.startswith("/api/")} == API  # the 14 /api routes
    assert paths == API | AUDIT_API
    assert not {p for p in paths if p.startswith(("/login", "/mfa", "/admin", "/sso", "/invite", "/credentials",
                                                   "/devices", "/sessions", "/approvals", "/tokens", "/agents",
                                                   "/integrations", "/security-alerts", "/fleet"))}
    assert "/audit" not in paths and "/audit/sessions/{session_id}/view" not in paths
