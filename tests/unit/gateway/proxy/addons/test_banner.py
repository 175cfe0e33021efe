"""Banner alone: the session bar goes before ``</body>`` of a session's HTML page, once, and nowhere else."""

from gateway.proxy.addons.banner import BANNER_ID, Banner
from gateway.proxy.addons.session_auth import COOKIE_KEY
from tests.unit.gateway.proxy.addons.flows import deps, flow, response, route


def _page(content: bytes = b"<html><body><p>Status</p></body></html>", **headers: str):  # type: ignore[no-untyped-def]
    f = flow(path="/", response=response(content=content, headers={"content-type": "text/html", **headers}),
             with_route=route(device_label="Front <desk>"))
    f.metadata[COOKIE_KEY] = "cookie-value"
    return f


def test_the_bar_is_inserted_before_the_end_of_the_body_once() -> None:
    banner, f = Banner(deps()), _page()
    banner.response(f)
    banner.response(f)
    assert f.response is not None
    text = f.response.get_text()
    assert text is not None and text.count(f"id={BANNER_ID}") == 1
    assert text.index(BANNER_ID) < text.index("</body>")
    assert "Front &lt;desk&gt;" in text  # the device label is escaped


def test_no_bar_without_a_session_cookie_or_on_other_content() -> None:
    banner = Banner(deps())
    no_cookie = _page()
    del no_cookie.metadata[COOKIE_KEY]
    image = _page(content=b"\x89PNG", **{"content-type": "image/png"})
    for f in (no_cookie, image):
        banner.response(f)
        assert f.response is not None and BANNER_ID.encode() not in f.response.content


def test_the_bar_names_the_sessions_reason_escaped_and_says_when_its_alert_cleared() -> None:
    """Issue 20: the alert (or ticket, or text) a session was opened for, then its clearing."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from gateway.proxy.routes import RouteTable

    table = RouteTable()
    table.add(route(reason="alert 'Toner <empty>' (critical)"))
    seen = []
    table.on_change(seen.append)
    banner = Banner(deps())

    def bar(r):  # type: ignore[no-untyped-def]
        f = flow(path="/", response=response(content=b"<html><body>x</body></html>",
                                             headers={"content-type": "text/html"}), with_route=r)
        f.metadata[COOKIE_KEY] = "cookie-value"
        banner.response(f)
        assert f.response is not None
        return f.response.get_text() or ""

    text = bar(table.by_host(route().host))
    assert "reason: alert &#x27;Toner &lt;empty&gt;&#x27; (critical)" in text
    assert "__printgate_reason_cleared" not in text
    table.note_reason_cleared("abc", datetime(2026, 12, 5, 20, 31, 40, tzinfo=UTC))
    assert seen and seen[-1].kind == "add"  # the worker processes get the change
    cleared = table.by_host(route().host)
    text = bar(cleared)
    assert "(the alert cleared at 20:31 UTC)" in text
    assert "reason_cleared" not in bar(replace(route(), reason=""))  # no reason, nothing said


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_every_banner_button_has_aa_contrast() -> None:
    """Issue 15: white on #e63946 at 12 px was 4.0:1; WCAG AA asks 4.5:1 for small text."""
    import re
    from datetime import UTC, datetime

    from gateway.proxy.addons.banner import banner_html

    page = banner_html(route(), "csrf", datetime.now(UTC).timestamp())
    buttons = re.findall(r"<button [^>]*id=(__printgate_\w+) style='([^']*)'>", page)
    assert {b for b, _ in buttons} == {"__printgate_stay", "__printgate_extend", "__printgate_end"}
    for button, style in buttons:
        declared = dict(d.split(":", 1) for d in style.split(";") if ":" in d)  # the last one wins
        fg, bg = _luminance(declared["color"]), _luminance(declared["background"])
        ratio = (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05)
        assert ratio >= 4.5, f"{button}: {declared['color']} on {declared['background']} is {ratio:.2f}:1"
