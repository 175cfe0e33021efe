"""Every teardown trigger (docs/architecture.md, DWA flow step 8) ends the DWA session: sign-out and agent loss."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pyotp
from playwright.async_api import Browser, expect

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from printgate.domain import DwaState

PRINTER = by_name("dell-laser_s5830dn")


async def _closed_reason(system: DemoSystem, session_id: str) -> str:
    """The stored reason once the broker has finished tearing the session down."""
    async with asyncio.timeout(20):
        while True:
            stored = await system.cloud.broker.get_session(session_id)  # type: ignore[arg-type]
            assert stored is not None
            if stored.state.is_final:
                break
            await asyncio.sleep(0.1)
    assert stored.state is DwaState.CLOSED
    return stored.history[-1].reason


async def test_signing_out_of_the_portal_ends_the_users_dwa_sessions(
    system: DemoSystem, browser: Browser
) -> None:
    # A technician of its own: a TOTP code is accepted once, whatever test used it last.
    user_id, user = await system.add_technician("second.tech@demo.printgate.test")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(system.portal_url + "/login")
    await page.fill("input[name=email]", user.email)
    await page.fill("input[name=password]", user.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.fill("input[name=code]", pyotp.TOTP(user.totp_secret).now())
    await page.get_by_role("button", name="Verify").click()
    row = page.locator("tr", has_text=re.compile(re.escape(PRINTER.ip) + r"(?!\d)"))
    async with context.expect_page() as opened:  # the web page opens in a new tab
        await row.get_by_role("button", name="Open web page").click()
    page = await opened.value
    await page.wait_for_url(re.compile(r"^http://s-[0-9a-f]+\.dwa\.localhost:\d+/"), timeout=30_000)
    await expect(page.locator("body")).to_contain_text(PRINTER.name)
    session_origin = page.url.split("/", 3)[:3]
    (session,) = system.cloud.broker.live_sessions_of(user_id)

    await page.goto(system.portal_url + "/devices")
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.wait_for_url(re.compile(r"/login"))
    assert "signed out" in await _closed_reason(system, session.id)
    assert system.cloud.broker.live_sessions_of(user_id) == []
    await page.goto("/".join(session_origin) + "/")
    await expect(page.locator("body")).to_contain_text(re.compile("session (has )?ended", re.I))
    await context.close()


async def test_agent_loss_ends_its_sessions_after_the_grace_period(tmp_path: Path) -> None:
    overrides = {"agent_loss_grace_seconds": 0.5}
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides=overrides) as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        await system.open_session_as_demo_user(PRINTER.ip)
        (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        await system.agent.channel.aclose()  # the site loses its connection to the cloud
        async with asyncio.timeout(20):
            while system.cloud.broker.live_sessions_of("user-demo-tech"):
                await asyncio.sleep(0.1)
        assert "agent went offline" in await _closed_reason(system, session.id)
        assert session.id not in system.cloud.relay.live_session_ids()


async def test_session_lifetime_end_tears_down_tunnel_and_route(tmp_path: Path) -> None:
    overrides = {"session_ttl_seconds": 3}
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides=overrides) as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        launch = await system.open_session_as_demo_user(PRINTER.ip)
        (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        host = launch.split("/")[2].split(":")[0]
        assert system.cloud.routes.get(session.id) is not None
        async with asyncio.timeout(20):
            while system.cloud.broker.live_sessions_of("user-demo-tech"):
                await asyncio.sleep(0.2)
        reason = await _closed_reason(system, session.id)  # the broker's reaper or the proxy's limit
        assert "lifetime" in reason or "maximum session duration" in reason, reason
        assert system.cloud.routes.get(session.id) is None
        assert session.id not in system.cloud.relay.live_session_ids()
        assert system.cloud.routes.by_host(host) is not None  # the tombstone: "session ended" page
        assert not system.cloud.firewall.is_allowed("127.0.0.1", system.cloud.proxy.port)
