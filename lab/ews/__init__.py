"""Simulated printer embedded web servers (EWS) for the lab LAN."""

from lab.ews.server import EwsLab, EwsServer

__all__ = ["EwsLab", "EwsServer"]
