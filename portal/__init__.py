"""printgate: portal."""
