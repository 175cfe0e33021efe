"""printgate core: domain types, settings, store, wire protocol, CLI."""

__version__ = "0.1.0"
