"""The rewriting proxy (DESIGN §4 steps 8-10): mitmproxy 12 as a library, one addon per behaviour."""
