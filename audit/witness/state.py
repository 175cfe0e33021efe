"""The witness's own memory: the last checkpoint it cosigned (one JSON file).

Written atomically (temporary file, fsync, rename), so a crash never leaves a
half-written state. The file doubles as evidence: ``printgate audit verify
--anchor STATE`` checks a log against it even when the gateway dropped every
cosignature.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audit.cosignature import Cosignature
from printgate.errors import ConfigError

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class WitnessState:
    gateway_url: str
    gateway_key_id: str
    cosignature: Cosignature  # the newest cosigned checkpoint
    # the gateway key followed through a signed handover (audit/keyset.py) when it is not the pinned one
    gateway_key_pem: str | None = None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"v": STATE_VERSION, "gateway_url": self.gateway_url,
                                  "gateway_key_id": self.gateway_key_id, "cosignature": self.cosignature.to_json()}
        if self.gateway_key_pem is not None:
            doc["gateway_key_pem"] = self.gateway_key_pem
        return doc

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        """The saved state, or None before the first cosignature."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the witness state {path}: {exc}") from exc
        try:
            pem = data.get("gateway_key_pem")
            return cls(str(data["gateway_url"]), str(data["gateway_key_id"]),
                       Cosignature.from_json(data["cosignature"]), str(pem) if pem is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the witness state {path} is damaged ({exc}); restore it from a backup") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".witness-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_json(), fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
