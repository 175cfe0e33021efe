"""A demo cloud as its own process on pinned ports, so a fault test can SIGKILL it and start another.

    python -m tests.faults.cloud_proc BASE_DIR PORTS_JSON [--open-session IP]

Writes ``BASE_DIR/cloud.json`` (enrolment token, CA, ports; the session id once opened) when ready
and runs until killed. The same BASE_DIR and ports make the next process the restarted gateway.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from printgate.cli.demo_system import DemoSystem
from printgate.cli.until_stopped import until_stopped
from printgate.settings import Settings


class PinnedDemo(DemoSystem):
    def __init__(self, base_dir: Path, ports: dict[str, Any]) -> None:
        super().__init__(base_dir, log_level="warning", with_agent=False)
        self._ports = ports

    def _settings(self) -> Settings:
        s = super()._settings()
        p = self._ports
        portal = s.portal.model_copy(update={"port": p["portal"], "public_url": f"http://127.0.0.1:{p['portal']}"})
        update: dict[str, object] = {k: p[k] for k in ("relay_port", "proxy_port", "grpc_port", "enrol_port")}
        if "grpc_host" in p:  # e.g. the address of a network namespace the test made
            update |= {"grpc_host": p["grpc_host"], "relay_host": p["grpc_host"]}
        gateway = s.gateway.model_copy(update=update | {"agent_loss_grace_seconds": 60.0})
        return s.model_copy(update={"portal": portal, "gateway": gateway})


async def main(base: Path, ports: dict[str, Any], open_ip: str | None) -> None:
    async with PinnedDemo(base, ports) as system:
        ca = base / "gateway-ca.pem"
        ca.write_bytes(system.cloud.ca.cert_pem)
        facts: dict[str, object] = {"token": system.enrolment_token, "ca": str(ca),
                                    "grpc": system.cloud.channel.target,
                                    "enrol": system.cloud.channel.enrol_target,
                                    "snmp_port": system.snmp.port, "ews_port": system.ews_port,
                                    "database_url": system.settings.database_url}
        (base / "cloud.json").write_text(json.dumps(facts))
        if open_ip is not None:
            await system.wait_for_devices(minimum=1, timeout=120)
            launch = await system.open_session_as_demo_user(open_ip)
            live = system.cloud.broker.live_sessions_of("user-demo-tech")
            facts |= {"session": live[0].id, "launch": launch}
            (base / "cloud.json").write_text(json.dumps(facts))
        await until_stopped()


if __name__ == "__main__":
    ip = sys.argv[sys.argv.index("--open-session") + 1] if "--open-session" in sys.argv else None
    asyncio.run(main(Path(sys.argv[1]), json.loads(sys.argv[2]), ip))
