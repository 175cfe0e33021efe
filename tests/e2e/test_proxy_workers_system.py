"""The gateway with its proxy as worker processes (gateway.proxy_workers > 1), end to end."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from printgate.system import DemoSystem

PRINTER = by_name("okilan_9450g")


async def test_sessions_work_through_proxy_worker_processes(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides={"proxy_workers": 2}) as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        assert len(system.cloud.proxy.live_pids()) == 2  # type: ignore[union-attr]
        launch = await system.open_session_as_demo_user(PRINTER.ip)
        parts = urlsplit(launch)
        local = f"http://127.0.0.1:{parts.port}"
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            again = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            pages = [await client.get(f"{local}/", headers={"Host": parts.netloc}, cookies=first.cookies)
                     for _ in range(8)]
            assert again.status_code in (401, 403, 410)  # one-time launch token, across workers
            assert all(p.status_code == 200 and PRINTER.name in p.text for p in pages)
            await system.close_all_sessions(reason="test done")
            await system.cloud.proxy.sync()  # type: ignore[union-attr]
            ended = await client.get(f"{local}/", headers={"Host": parts.netloc}, cookies=first.cookies)
        assert ended.status_code in (403, 404, 410) and "ended" in ended.text.lower()
