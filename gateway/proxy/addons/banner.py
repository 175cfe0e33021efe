"""A small fixed bar on HTML pages: device, customer, remaining time, "End session"."""

from __future__ import annotations

import html
import re

from mitmproxy import http

from gateway.proxy.addons.block_uploads import media_type
from gateway.proxy.addons.inject_credentials import SIGNED_IN_KEY
from gateway.proxy.addons.session_auth import COOKIE_KEY, csrf_token
from gateway.proxy.charset import editable_as_bytes
from gateway.proxy.decision import is_generated, route_of
from gateway.proxy.deps import ProxyDeps
from gateway.proxy.routes import SessionRoute

BANNER_ID = "__printgate_bar"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_BODY_END_BYTES = re.compile(rb"</body\s*>", re.IGNORECASE)
BANNER_ID_BYTES = BANNER_ID.encode()
_TAIL_BYTES = 4096
_BAR_STYLE = (
    "all:initial;position:fixed;z-index:2147483647;left:0;right:0;bottom:0;min-height:28px;"
    "box-sizing:border-box;background:#1d3557;color:#fff;font:13px/20px system-ui,sans-serif;"
    "padding:4px 10px;display:flex;flex-wrap:wrap;gap:4px 12px;align-items:center;"
    "box-shadow:0 -1px 3px rgba(0,0,0,.35)"
)
_BUTTON_STYLE = (
    "all:initial;cursor:pointer;background:#c1121f;color:#fff;font:12px/20px system-ui,sans-serif;"
    "padding:0 10px;border-radius:3px;white-space:nowrap"
)
# White on #c1121f is 5.9:1 (WCAG AA for 12 px text needs 4.5:1; the old #e63946 was 4.0:1).
# Counts down the session and the idle limit (warning a minute before, "Stay" tells the proxy the
# technician is there); "More time" asks without leaving the page (the form still works without it).
_SCRIPT = (
    "<script>(function(){var d=document,e=d.getElementById('__printgate_left');if(!e)return;"
    "var f=d.getElementById('__printgate_extend_form'),w=d.getElementById('__printgate_idle'),"
    "m=d.getElementById('__printgate_msg'),seen=Date.now();"
    "function u(){var s=Math.max(0,Math.round(+e.getAttribute('data-expires')-Date.now()/1000));"
    "e.textContent=Math.floor(s/60)+' min '+(s%60)+' s';var i=+e.getAttribute('data-idle'),"
    "r=Math.max(0,Math.round(i-(Date.now()-seen)/1000));if(i>0&&r<=60){w.style.display='inline';"
    "w.firstChild.textContent='No activity: the session ends in '+r+' s ';}else{w.style.display='none';}}"
    "function post(p,cb){var x=new XMLHttpRequest();x.open('POST',p);x.setRequestHeader('accept','application/json');"
    "x.setRequestHeader('content-type','application/x-www-form-urlencoded');x.onload=function(){cb(x);};"
    "x.send('csrf='+encodeURIComponent(f.elements.csrf.value));}"
    "f.addEventListener('submit',function(v){v.preventDefault();post('/__printgate/extend',function(x){"
    "if(x.status==200){e.setAttribute('data-expires',JSON.parse(x.responseText).expires_at);seen=Date.now();"
    "m.textContent='More time granted';}else{var r='';try{r=JSON.parse(x.responseText).reason;}catch(_){}"
    "m.textContent=r?r.charAt(0).toUpperCase()+r.slice(1):'No more time: the policy does not allow it';}u();});});"
    "d.getElementById('__printgate_stay').addEventListener('click',function(){post('/__printgate/ping',"
    "function(x){if(x.status==204){seen=Date.now();u();}});});u();setInterval(u,1000);})();</script>"
)


def banner_html(route: SessionRoute, csrf: str, now_epoch: float, signed_in_as: str | None = None) -> str:
    ends = int(route.expires_at.timestamp())
    if route.maintenance_epoch:  # the node drains: the session ends earlier
        ends = min(ends, route.maintenance_epoch)
    left = max(0, int(ends - now_epoch))
    return (
        f"<div id={BANNER_ID} role=status style='{_BAR_STYLE}'>"
        f"<span style='all:initial;color:#fff;font:inherit;flex:1 1 14em;min-width:0;overflow-wrap:anywhere'>"
        f"Remote session: "
        f"<b style='all:initial;color:#fff;font:inherit;font-weight:bold'>{html.escape(route.device_label)}</b>"
        f" &middot; {html.escape(route.customer_name)}{_signed_in(signed_in_as)}{_reason(route)}"
        f"{_maintenance(route)} &middot; ends in "
        f"<span id=__printgate_left data-expires={ends} "
        f"data-idle={int(route.idle_timeout_s)} "
        f"style='all:initial;color:#fff;font:inherit'>{left // 60} min</span>"
        f" &middot; ends after {max(1, route.idle_timeout_s // 60)} min without activity</span>"
        f"<span id=__printgate_idle style='all:initial;display:none;color:#ffd166;font:inherit;font-weight:bold'>"
        f"<span style='all:initial;color:inherit;font:inherit'>No activity</span>"
        f"<button type=button id=__printgate_stay style='{_BUTTON_STYLE};background:#f4a261;color:#1d3557'>Stay</button></span>"
        f"<span id=__printgate_msg role=status style='all:initial;color:#fff;font:inherit'></span>"
        f"<span style='all:initial;margin-left:auto;display:flex;gap:12px'>"
        f"<form method=post action=/__printgate/extend id=__printgate_extend_form style='all:initial'>"
        f"<input type=hidden name=csrf value={csrf}>"
        f"<button type=submit id=__printgate_extend style='{_BUTTON_STYLE};background:#457b9d'>More time</button></form>"
        f"<form method=post action=/__printgate/end style='all:initial'>"
        f"<input type=hidden name=csrf value={csrf}>"
        f"<button type=submit id=__printgate_end style='{_BUTTON_STYLE}'>End session</button></form></span>"
        f"</div>{_SCRIPT}"
    )


def _signed_in(account: str | None) -> str:
    """The stored credential the proxy signed in with (issue 19), by account name only."""
    if not account:
        return ""
    return (" &middot; <span id=__printgate_signed_in style='all:initial;color:#fff;font:inherit'>"
            f"signed in to the device as {html.escape(account)} by printgate</span>")


def _reason(route: SessionRoute) -> str:
    """Why the session was opened (issue 20) and, for an alert, whether it cleared meanwhile."""
    if not route.reason:
        return ""
    cleared = ""
    if route.reason_cleared_at:
        cleared = (" <b id=__printgate_reason_cleared style='all:initial;color:#ffd166;font:inherit;"
                   f"font-weight:bold'>(the alert cleared at {html.escape(route.reason_cleared_at)} UTC)</b>")
    return (" &middot; <span id=__printgate_reason style='all:initial;color:#fff;font:inherit'>"
            f"reason: {html.escape(route.reason)}</span>{cleared}")


def _maintenance(route: SessionRoute) -> str:
    """The gateway node serving the session is draining for an upgrade (docs/scale-out.md)."""
    if not route.maintenance_at:
        return ""
    return (" &middot; <b id=__printgate_maintenance style='all:initial;color:#ffd166;font:inherit;"
            f"font-weight:bold'>this session ends at {html.escape(route.maintenance_at)} UTC: gateway maintenance</b>")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Banner:
    def __init__(self, deps: ProxyDeps) -> None:
        self._deps = deps

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        route = route_of(flow)
        cookie = flow.metadata.get(COOKIE_KEY)
        if resp is None or route is None or not isinstance(cookie, str) or is_generated(flow):
            return
        if resp.status_code != 200 or media_type(resp.headers.get("content-type", "")) != "text/html":
            return
        if flow.request.headers.get("sec-fetch-dest", "document") != "document":
            return  # frames and fetches get no bar
        bar = banner_html(route, csrf_token(self._deps.csrf_key, cookie), self._deps.routes.now().timestamp(),
                          _str_or_none(flow.metadata.get(SIGNED_IN_KEY)))
        content = resp.get_content(strict=False) or b""
        if editable_as_bytes(resp.headers.get("content-type", ""), content):
            # the bar is ASCII (names as character references): insert it into the bytes
            if BANNER_ID_BYTES in content:
                return
            resp.set_content(_insert_before_body_end(content, bar.encode("ascii", "xmlcharrefreplace")))
            return
        text = resp.get_text(strict=False)
        if text is None or BANNER_ID in text:
            return
        matches = list(_BODY_END.finditer(text))
        if matches:
            at = matches[-1].start()
            resp.text = text[:at] + bar + text[at:]
        else:
            resp.text = text + bar


def _insert_before_body_end(content: bytes, bar: bytes) -> bytes:
    """Before the last ``</body>`` (looked for near the end first), else at the end."""
    at = -1
    for start in (max(0, len(content) - _TAIL_BYTES), 0):
        for m in _BODY_END_BYTES.finditer(content, start):
            at = m.start()
        if at >= 0 or start == 0:
            break
    if at < 0:
        return content + bar
    return b"".join((content[:at], bar, content[at:]))
