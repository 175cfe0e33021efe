"""The tests' Mosquitto: the lab's, run from the reference config in ``deploy/mosquitto/``."""

from __future__ import annotations

from pathlib import Path

from lab.mosquitto import OBSERVER, Broker, config_from_reference

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["OBSERVER", "ROOT", "Broker", "config_from_reference"]
