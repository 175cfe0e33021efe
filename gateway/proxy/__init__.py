"""The rewriting proxy (docs/architecture.md, DWA flow step 7): mitmproxy 12 as a library, one addon per behaviour."""
