"""printgate: agent."""
