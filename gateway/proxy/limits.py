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
    # hard cap on anything mitmproxy buffers; larger bodies kill the flow
    hard_body_limit: int = 32 * 1024 * 1024
    # websocket messages (status pages): small text only
    max_ws_message: int = 64 * 1024
    # how often the proxy sweeps expired / idle sessions
    sweep_interval_s: float = 1.0

    @property
    def max_request_body(self) -> int:
        """The largest request body any rule allows (larger declared bodies are refused unread)."""
        return max(self.max_form_body, self.max_text_body, self.max_json_body)
