"""Errors as pages a person can act on: every 4xx/5xx a portal route answers is an HTML page
saying what happened and what to do, except for API clients, which get FastAPI's JSON
(``{"detail": ...}``): paths under ``/api/``, requests with an ``Authorization`` header (API
tokens) and clients asking for JSON rather than HTML."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal.deps import login_of
from portal.state import Login, PortalState
from printgate.logs import get_logger

log = get_logger("portal.errors")


@dataclass(frozen=True, slots=True)
class Advice:
    title: str
    todo: str


ADVICE: dict[int, Advice] = {
    400: Advice("The request was not understood", "Go back, check what you entered and try again."),
    401: Advice("Please sign in", "Sign in again; your session may have ended."),
    403: Advice("You may not do this",
                "If you need it for your work, ask an administrator of your organisation: they manage "
                "accounts and their roles on the Users page."),
    404: Advice("Not found", "The page or item does not exist, or it belongs to another organisation. "
                             "Check the address or start again from your start page."),
    405: Advice("Not possible here", "This address does not take this kind of request; start again from "
                                     "your start page."),
    409: Advice("Not possible right now", "Something changed meanwhile (see above). Reload the page to see "
                                          "the current state."),
    410: Advice("No longer valid", "Ask for a new link."),
    413: Advice("Too large", "Send less at once."),
    422: Advice("Some values are not valid", "Correct the values named above and try again."),
    429: Advice("Too many attempts", "Wait a little, then try again."),
    500: Advice("Something went wrong on our side",
                "Try again in a moment. If it keeps happening, tell your printgate operator the reference "
                "below."),
    503: Advice("Temporarily unavailable", "Try again in a minute."),
}


def wants_json(request: Request) -> bool:
    """API clients get JSON; people get pages."""
    accept = request.headers.get("accept", "")
    return (request.url.path.startswith("/api/") or request.url.path == "/api"
            or "authorization" in request.headers
            or ("application/json" in accept and "text/html" not in accept))


# a 403 that names the roles it needs (``require_role``) says which to ask for
ROLES_NAMED = Advice("You may not do this",
                     "If you need it for your work, ask an administrator of your organisation to give your "
                     "account the role named above (Users page).")


def advice_for(status: int, message: str = "") -> Advice:
    if status == 403 and message.startswith("this needs the ") and message.endswith(" role"):
        return ROLES_NAMED
    if status in ADVICE:
        return ADVICE[status]
    return ADVICE[500] if status >= 500 else ADVICE[400]


def validation_problems(exc: RequestValidationError) -> list[str]:
    """One line per invalid value: "since: Input should be a valid datetime (got 'yesterday')"."""
    out = []
    for err in exc.errors():
        where = [str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "header", "cookie")]
        name = ".".join(where) or "request"
        got = err.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) and len(repr(got)) < 80 else ""
        out.append(f"{name}: {err.get('msg', 'invalid')}{shown}")
    return out


async def _signed_in(request: Request, status: int) -> Login | None:
    """The page's signed-in user (for the navigation bar); None when signed out, for 401s, and
    when the lookup itself fails (an error page must render even with the database down)."""
    if status == 401:
        return None
    try:
        return await login_of(request)
    except Exception as exc:  # the page is shown without navigation
        log.warning("portal.error_page.no_login", path=request.url.path, error=type(exc).__name__)
        return None


async def error_page(request: Request, status: int, message: str, *, problems: list[str] | None = None,
                     reference: str | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    state: PortalState = request.app.state.portal
    login = await _signed_in(request, status)
    return state.templates.TemplateResponse(
        request, "error.html",
        {"login": login, "user": login.user if login else None,
         "csrf_token": login.csrf_token if login else "", "status": status, "message": message,
         "advice": advice_for(status, message), "problems": problems or [], "reference": reference,
         "path": request.url.path},
        status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (call once, in ``create_app``)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_json(request):
            return await http_exception_handler(request, exc)
        message = exc.detail if isinstance(exc.detail, str) else advice_for(exc.status_code).title
        return await error_page(request, exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if wants_json(request):
            return await request_validation_exception_handler(request, exc)
        return await error_page(request, 422, "Some of the values sent are not valid:",
                          problems=validation_problems(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        reference = secrets.token_hex(4)
        log.error("portal.unhandled_error", path=request.url.path, reference=reference,
                  error=f"{type(exc).__name__}: {exc}"[:500])
        if wants_json(request):
            return JSONResponse({"detail": "internal error", "reference": reference}, status_code=500)
        return await error_page(request, 500, "The portal could not complete this request.", reference=reference)
