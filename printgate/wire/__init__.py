"""printgate: wire."""
