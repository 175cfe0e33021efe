"""printgate: policy."""
