"""printgate: gateway."""
