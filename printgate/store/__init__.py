"""printgate: store."""
