"""The simulated printer EWS (aiohttp): the page patterns real printers use.

Every page names the device by its ABSOLUTE address (``http://127.0.20.x:port``),
as many EWS do, so a proxy must rewrite them. Every non-GET request the device
receives is recorded in ``EwsState.received`` so tests can prove a blocked
transfer never reached it.
"""

from __future__ import annotations

import asyncio
import html
import json
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from lab.ews.assets import backup_zip, large_png, logo_png
from lab.ews.device_login import (
    PASSWORD,
    SESSION_COOKIE,
    USERNAME,
    LoginState,
    admin_allowed,
    form_login,
    locked_page,
    login_form_body,
)

__all__ = ["PASSWORD", "SESSION_COOKIE", "USERNAME", "EwsState", "make_app"]


@dataclass
class Received:
    method: str
    path: str
    content_type: str
    size: int


@dataclass
class EwsState:
    device_name: str
    serial: str
    origin: str = ""
    location: str = "Room 101"
    auth: LoginState = field(default_factory=LoginState)
    received: list[Received] = field(default_factory=list)
    pages: int = 1000
    last_host: str = ""
    seen_paths: list[str] = field(default_factory=list)
    last_cookie_header: str = ""
    echoed: dict[str, str] = field(default_factory=dict)  # Host, Origin, Referer of the last /headers request


STATE: web.AppKey[EwsState] = web.AppKey("ews_state", EwsState)


def _page(state: EwsState, title: str, body: str, *, head: str = "") -> web.Response:
    o = state.origin
    nav = (
        f"<nav><a href='{o}/'>Home</a> | <a href='{o}/status'>Status</a> | "
        f"<a href='{o}/settings'>Settings</a> | <a href='{o}/addressbook'>Address book</a> | "
        f"<a href='{o}/firmware'>Firmware</a> | <a href='{o}/styled'>Styled</a></nav>"
    )
    text = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} - {html.escape(state.device_name)}</title>"
        f"<link rel=stylesheet href='{o}/style.css'>{head}</head>"
        f"<body><img id=logo src='{o}/logo.png' alt=logo><h1>{html.escape(title)}</h1>{nav}{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", charset="utf-8")


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    state.last_host = request.headers.get("host", "")
    state.seen_paths.append(request.path)
    state.last_cookie_header = request.headers.get("cookie", "")
    if request.method not in ("GET", "HEAD"):
        body = await request.read()
        state.received.append(
            Received(request.method, request.path, request.headers.get("content-type", ""), len(body))
        )
    return await handler(request)


async def index(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return _page(
        s,
        "Device home",
        f"<p id=model>{html.escape(s.device_name)}</p><p id=serial>Serial: {html.escape(s.serial or 'not reported by this printer')}</p>"
        f"<p id=location>Location: {html.escape(s.location)}</p>"
        f"<p><a id=login-link href='{s.origin}/login'>Log in</a> <a id=redirect-link href='{s.origin}/redirect'>Go via redirect</a>"
        f" <a id=api-link href='{s.origin}/api/status'>API</a></p>",
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    s = request.app[STATE]
    if s.auth.login.kind != "form":  # Basic/Digest devices: the browser's own dialog
        raise web.HTTPFound(f"{s.origin}/settings")
    return _page(s, "Log in", login_form_body(s.auth, s.origin))


async def login(request: web.Request) -> web.StreamResponse:
    s = request.app[STATE]
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    outcome, sid = form_login(s.auth, form)
    if outcome == "locked":
        return locked_page()
    if outcome == "csrf":
        return _page(s, "Log in", login_form_body(s.auth, s.origin, error="The form has expired, log in again"))
    if sid is None:
        return _page(s, "Log in", login_form_body(s.auth, s.origin, error="Wrong user name or password"))
    resp = web.HTTPFound(f"{s.origin}/settings")
    resp.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True)
    raise resp


async def settings_page(request: web.Request) -> web.StreamResponse:
    s = request.app[STATE]
    refused = admin_allowed(request, s.auth, s.origin)
    if refused is not None:
        return refused
    if request.method == "POST":
        form = await request.post()
        s.location = str(form.get("location", s.location))[:200]
    # As many EWS do, the admin password field comes pre-filled with the current password.
    return _page(
        s,
        "Settings",
        f"<p id=logged-in>Logged in as {html.escape(s.auth.username)}</p>"
        f"<p id=location>Location: {html.escape(s.location)}</p>"
        f"<form id=settings method=post action='{s.origin}/settings'>"
        f"<input name=location id=location-input value='{html.escape(s.location)}'>"
        f"<input type=password name=admin_password id=admin-pw value='{html.escape(s.auth.password)}'>"
        "<button type=submit id=settings-submit>Save</button></form>",
    )


async def status_page(request: web.Request) -> web.Response:
    s = request.app[STATE]
    ws = s.origin.replace("http", "ws", 1) + "/ws/status"
    script = (
        "<script>var DEVICE_WS='" + ws + "';var sock=new WebSocket(DEVICE_WS);"
        "sock.onmessage=function(e){var d=JSON.parse(e.data);"
        "document.getElementById('pages').textContent=d.pages;"
        "document.getElementById('updates').textContent=(+document.getElementById('updates').textContent)+1;};"
        "</script>"
    )
    return _page(s, "Status", "<p>Pages: <span id=pages>?</span> Updates: <span id=updates>0</span></p>" + script)


async def ws_status(request: web.Request) -> web.WebSocketResponse:
    s = request.app[STATE]
    ws = web.WebSocketResponse()
    await ws.prepare(request)

    async def reader() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(json.dumps({"echo": msg.data}))
            elif msg.type == WSMsgType.BINARY:
                s.received.append(Received("WS", "/ws/status", "binary", len(msg.data)))

    task = asyncio.create_task(reader())
    try:
        for _ in range(3000):  # bounded: 10 minutes at most
            if ws.closed:
                break
            s.pages += 1
            await ws.send_str(json.dumps({"pages": s.pages, "self": f"{s.origin}/status", "location": s.location}))
            await asyncio.sleep(0.2)
    except ConnectionError:
        pass
    finally:
        task.cancel()
    return ws


async def firmware_form(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return _page(
        s,
        "Firmware update",
        f"<form id=firmware method=post enctype=multipart/form-data action='{s.origin}/firmware/upload'>"
        "<input type=file name=firmware id=firmware-file><button type=submit id=firmware-submit>Upload</button></form>",
    )


async def firmware_upload(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return _page(s, "Firmware received", "<p id=fw-ok>Firmware accepted, device will restart</p>")


async def addressbook(request: web.Request) -> web.Response:
    s = request.app[STATE]
    o = s.origin
    return _page(
        s,
        "Address book",
        f"<ul><li><a id=export-csv href='{o}/addressbook/entries.csv'>Export (CSV)</a></li>"
        f"<li><a id=config-download href='{o}/settings/saved'>Download configuration</a></li>"
        f"<li><a id=view-csv href='{o}/addressbook/view'>View as page</a></li>"
        f"<li><a id=backup-html href='{o}/settings/archive.html'>Backup</a></li>"
        f"<li><a id=large-image href='{o}/images/large.png'>Large image</a></li></ul>",
    )


_CSV = "name,email,fax\nAlice,alice@example.com,+49 30 1234\nBob,bob@example.com,+49 30 5678\nCarol,carol@example.com,+49 30 9999\n"


async def export_csv(request: web.Request) -> web.Response:
    return web.Response(
        text=_CSV, content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="addressbook.csv"'},
    )


async def config_download(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return web.Response(
        text=f"key,value\nserial,{s.serial}\nlocation,{s.location}\nsnmp_community,public\n",
        content_type="text/csv",
        headers={"Content-Disposition": "ATTACHMENT; filename*=UTF-8''config%20backup.csv"},
    )


async def view_csv(request: web.Request) -> web.Response:
    return web.Response(text=_CSV, content_type="text/html")  # lies about its type


async def backup_html(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return web.Response(body=backup_zip(s.device_name, s.serial), content_type="text/html")  # a ZIP


async def large_image(request: web.Request) -> web.Response:
    return web.Response(body=large_png(), content_type="image/png")


async def logo(request: web.Request) -> web.Response:
    return web.Response(body=logo_png(), content_type="image/png")


async def style(request: web.Request) -> web.Response:
    o = request.app[STATE].origin
    css = (
        f"body{{font-family:sans-serif;background:#fff url('{o}/logo.png') no-repeat right top}}"
        f"@import url({o}/extra.css);#logo{{width:16px}}"
    )
    return web.Response(text=css, content_type="text/css")


async def extra_css(request: web.Request) -> web.Response:
    return web.Response(text="h1{color:#1d3557}", content_type="text/css")


async def styled(request: web.Request) -> web.Response:
    s = request.app[STATE]
    o = s.origin
    proto_relative = o.split(":", 1)[1]
    head = (
        f"<link rel=stylesheet href='{proto_relative}/extra.css'>"
        f"<meta http-equiv=refresh content='600;url={o}/status'>"
        f"<script>var DEVICE_ADDRESS = \"{o}\"; var DEVICE_HOST = '{o.split('//', 1)[1]}';</script>"
    )
    body = (
        f"<img id=srcset-img srcset='{o}/logo.png 1x, {o}/logo.png 2x' src='{o}/logo.png'>"
        f"<div id=styled-div style=\"background:url('{o}/logo.png');width:16px;height:16px\"></div>"
        f"<p id=js-address></p><script>document.getElementById('js-address').textContent=DEVICE_ADDRESS;</script>"
    )
    return _page(s, "Styled page", body, head=head)


async def external(request: web.Request) -> web.Response:
    """A page that pulls a script and an image from another origin (``?src=``: vendor help,
    analytics), with the lax caching, framing and CSP headers of an old EWS."""
    src = html.escape(request.query.get("src", "http://127.0.0.1:9"), quote=True)
    body = (
        f"<img id=ext-img src='{src}/pixel.png'><p id=ext-script>not loaded</p>"
        f"<script src='{src}/track.js'></script>"
    )
    resp = _page(request.app[STATE], "Help and support", body)
    resp.headers.update({
        "Cache-Control": "public, max-age=3600",
        "X-Frame-Options": "ALLOWALL",
        "Content-Security-Policy": "default-src *",
        "Referrer-Policy": "unsafe-url",
    })
    return resp


async def echo_headers(request: web.Request) -> web.Response:
    """What the device was sent (Host, Origin, Referer), with URL-bearing response headers."""
    o = request.app[STATE].origin
    seen = request.app[STATE].echoed = {k: request.headers.get(k, "") for k in ("Host", "Origin", "Referer")}
    return web.json_response(seen, headers={
        "Content-Location": f"{o}/headers",
        "Refresh": f"30; url={o}/status",
        "Link": f"<{o}/style.css>; rel=preload; as=style",
    })


async def api_status(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return web.json_response(
        {"model": s.device_name, "serial": s.serial, "pages": s.pages, "self": f"{s.origin}/api/status"}
    )


async def api_settings(request: web.Request) -> web.Response:
    s = request.app[STATE]
    data = await request.json() if request.body_exists else {}
    if isinstance(data, dict) and "location" in data:
        s.location = str(data["location"])[:200]
    return web.json_response({"ok": True, "location": s.location})


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{request.app[STATE].origin}/status")


async def ipp(request: web.Request) -> web.Response:
    return web.Response(body=b"\x02\x00\x00\x00\x00\x00\x00\x01\x03", content_type="application/ipp")


async def small_page(request: web.Request) -> web.Response:
    return web.Response(text="<html><body><p>ok</p></body></html>", content_type="text/html")


_BIG = "<html><body>" + ("<p>" + "x" * 96 + "</p>\n") * 1000 + "</body></html>"


async def big_page(request: web.Request) -> web.Response:
    return web.Response(text=_BIG, content_type="text/html")


def make_app(state: EwsState) -> web.Application:
    app = web.Application(middlewares=[record], client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    if state.auth.login.path != "/login":
        r.add_get(state.auth.login.path, login_form)
        r.add_post(state.auth.login.path, login)
    r.add_route("*", "/settings", settings_page)
    r.add_get("/status", status_page)
    r.add_get("/ws/status", ws_status)
    r.add_get("/firmware", firmware_form)
    r.add_route("*", "/firmware/upload", firmware_upload)
    r.add_get("/addressbook", addressbook)
    r.add_get("/addressbook/entries.csv", export_csv)
    r.add_get("/settings/saved", config_download)
    r.add_get("/addressbook/view", view_csv)
    r.add_get("/settings/archive.html", backup_html)
    r.add_get("/images/large.png", large_image)
    r.add_get("/logo.png", logo)
    r.add_get("/style.css", style)
    r.add_get("/extra.css", extra_css)
    r.add_get("/styled", styled)
    r.add_get("/external", external)
    r.add_route("*", "/headers", echo_headers)
    r.add_get("/api/status", api_status)
    r.add_route("*", "/api/settings", api_settings)
    r.add_get("/redirect", redirect)
    r.add_route("*", "/ipp/print", ipp)
    r.add_get("/bench/small", small_page)
    r.add_get("/bench/100k", big_page)
    return app
