"""Composition root: wires a running printgate system (portal + gateway, demo)."""
