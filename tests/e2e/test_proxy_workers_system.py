"""The gateway with its proxy as worker processes (gateway.proxy_workers > 1) serving session
hosts over HTTPS from the gateway's own CA (gateway.proxy_scheme = "https"), end to end."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem

PRINTER = by_name("okilan_9450g")


async def test_sessions_work_through_proxy_worker_processes(tmp_path: Path) -> None:
    overrides = {"proxy_workers": 2, "proxy_scheme": "https"}
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides=overrides) as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        assert len(system.cloud.proxy.live_pids()) == 2  # type: ignore[union-attr]
        ca = system.cloud.dwa_ca_cert
        assert ca is not None and ca.is_file()
        launch = await system.open_session_as_demo_user(PRINTER.ip)
        parts = urlsplit(launch)
        assert parts.scheme == "https"
        local = f"https://127.0.0.1:{parts.port}"
        sni = {"sni_hostname": parts.hostname}  # Python does not resolve *.localhost
        async with httpx.AsyncClient(timeout=30, verify=ssl.create_default_context(cafile=str(ca))) as client:
            first = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc},
                                     extensions=sni)
            assert first.headers["set-cookie"].startswith("__Host-")
            again = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc},
                                     extensions=sni)
            pages = [await client.get(f"{local}/", headers={"Host": parts.netloc}, cookies=first.cookies,
                                      extensions=sni)
                     for _ in range(8)]
            assert again.status_code in (401, 403, 410)  # one-time launch token, across workers
            assert all(p.status_code == 200 and PRINTER.name in p.text for p in pages)
            await system.close_all_sessions(reason="test done")
            await system.cloud.proxy.sync()  # type: ignore[union-attr]
            ended = await client.get(f"{local}/", headers={"Host": parts.netloc}, cookies=first.cookies,
                                     extensions=sni)
        assert ended.status_code in (403, 404, 410) and "ended" in ended.text.lower()
