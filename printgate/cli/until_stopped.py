"""Wait until the process is asked to stop (SIGTERM from systemd or ``kill``, SIGINT from Ctrl-C).

Long-running commands await ``until_stopped()`` instead of sleeping forever, so a
``systemctl stop`` or ``kill`` runs the same orderly shutdown as Ctrl-C: sessions
closed, firewall exceptions removed, child processes stopped.
"""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> str:
    """Return the name of the signal that asked the process to stop."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[str] = loop.create_future()
    signals = (signal.SIGTERM, signal.SIGINT)

    def asked(sig: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(sig.name)

    for sig in signals:
        loop.add_signal_handler(sig, asked, sig)
    try:
        return await stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
