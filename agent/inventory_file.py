"""The agent's own record of its printers (``inventory.json``), so polling starts at once.

Written after every discovery sweep, read at start-up: the agent polls the printers
it knew before whatever the cloud's state, and a sweep that cannot be uploaded
still changes what is polled.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb

log = get_logger("agent.inventory_file")


@dataclass(frozen=True, slots=True)
class SavedInventory:
    printers: list[DiscoveryResult]  # what to poll (ip, credential that answered, serial)
    entries: list[pb.DiscoveredDevice]  # the inventory lines last reported


def save_inventory(path: Path, printers: list[DiscoveryResult], entries: list[pb.DiscoveredDevice]) -> None:
    body = {
        "printers": [{"ip": p.ip, "credential": p.credential,
                      "serial": p.identity.serial if p.identity else None} for p in printers],
        "entries": [base64.b64encode(e.SerializeToString()).decode() for e in entries],
    }
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)
    except OSError as exc:  # a full disk keeps the previous inventory; the sweep still counts in memory
        log.warning("agent.inventory_save_failed", path=str(path), error=str(exc))


def load_inventory(path: Path) -> SavedInventory:
    try:
        body = json.loads(path.read_text())
        printers = [
            DiscoveryResult(ip=str(p["ip"]), status=DiscoveryStatus.PRINTER, credential=p.get("credential"),
                            identity=DeviceIdentity(serial=p.get("serial")))
            for p in body.get("printers", [])
        ]
        entries = [pb.DiscoveredDevice.FromString(base64.b64decode(e)) for e in body.get("entries", [])]
    except FileNotFoundError:
        return SavedInventory([], [])
    except (OSError, ValueError, KeyError, TypeError, DecodeError) as exc:
        log.warning("agent.inventory_unreadable", path=str(path), error=str(exc))
        return SavedInventory([], [])
    return SavedInventory(printers, entries)
