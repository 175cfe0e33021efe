"""Size and time limits of the proxy (what counts as a "small" body)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    # request bodies (technician -> device)
    max_form_body: int = 64 * 1024  # application/x-www-form-urlencoded
    max_text_body: int = 8 * 1024  # text/plain
    max_json_body: int = 32 * 1024  # JSON / XML

    # response bodies (device -> technician)
    max_page_body: int = 4 * 1024 * 1024  # HTML, CSS, JavaScript
    max_image_body: int = 1024 * 1024  # images and fonts
    max_data_body: int = 512 * 1024  # JSON / XML answers
    max_plain_text: int = 16 * 1024  # text/plain answers
    # hard cap on anything mitmproxy buffers; larger bodies kill the flow
    hard_body_limit: int = 32 * 1024 * 1024
    # websocket messages (status pages): small text only
    max_ws_message: int = 64 * 1024
    # fonts (only those the device's own CSS asks for) and SVG images (checked as text)
    max_font_body: int = 512 * 1024
    max_svg_body: int = 256 * 1024
    # encoded payloads (base64, hex, ...): the shortest run that counts as a smuggled file
    encoded_min_upload: int = 256  # characters, in anything the browser sends
    encoded_min_download: int = 4096  # characters, in page resources and WebSocket text
    # encoded-looking characters summed over a whole body, however cut up (runs of 64+ with the
    # entropy of encoded data, repeats and harmless data: images left out; issue 21 F1). The
    # lab EWS pages and the CUPS web UI hold none; a page with a few tokens and hashes a few hundred
    encoded_allowance_download: int = 4096  # per response body or WebSocket text message
    encoded_allowance_upload: int = 1024  # per request body towards the device
    # encoded-looking characters (runs of 96+) one user may send towards one device over all their
    # requests and sessions within ``budget_window_s`` (issue 21 F4: a file trickled out 200
    # characters a request); shared by the workers
    encoded_session_allowance: int = 2048
    # user-supplied data towards the device (query, form fields, JSON/text bodies, custom
    # headers, new cookie values, WebSocket frames): per request and summed per session. Sized
    # from EWS forms (a settings form is a few KB, an address-book entry under 1 KB). The
    # session budget is one user's on one device over ``budget_window_s``: a new session of
    # the same user on the same device continues the tally
    request_budget: int = 16 * 1024
    session_budget: int = 256 * 1024
    budget_window_s: float = 8 * 3600.0
    # how often the proxy sweeps expired / idle sessions
    sweep_interval_s: float = 1.0

    @property
    def max_request_body(self) -> int:
        """The largest request body any rule allows (larger declared bodies are refused unread)."""
        return max(self.max_form_body, self.max_text_body, self.max_json_body)

    @property
    def max_response_body(self) -> int:
        """The largest response body any rule allows (a compressed one stops decoding past it)."""
        return max(self.max_page_body, self.max_image_body, self.max_data_body, self.max_font_body,
                   self.max_svg_body, self.max_plain_text)
