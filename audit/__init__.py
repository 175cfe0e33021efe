"""printgate: audit."""
