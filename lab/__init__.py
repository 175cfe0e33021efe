"""printgate: lab."""
