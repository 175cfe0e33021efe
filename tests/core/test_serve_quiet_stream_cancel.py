"""Issue 18 finding 13: the end of a drain printed a CancelledError traceback ("Exception in callback
StreamReaderProtocol.connection_made...") for each proxy connection still open: CPython 3.12.0/1's
start_server done-callback asks a cancelled task for its exception. ``serve`` installs a handler that
drops exactly that, and passes every other loop error on."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from printgate.cli.serve import quiet_cancelled_stream_handlers


async def _cancel_an_open_connection() -> None:
    async def forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    before = asyncio.all_tasks()
    server = await asyncio.start_server(forever, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(100):  # the server's connection task
        handlers = asyncio.all_tasks() - before - {asyncio.current_task()}
        if handlers:
            break
        await asyncio.sleep(0.01)
    for task in handlers:
        task.cancel()
    await asyncio.sleep(0.05)  # the done-callbacks run
    writer.close()
    server.close()


def _run(quiet: bool) -> list[str]:
    loop = asyncio.new_event_loop()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("asyncio").addHandler(handler)
    try:
        if quiet:
            quiet_cancelled_stream_handlers(loop)
        loop.run_until_complete(_cancel_an_open_connection())

        async def other_error() -> None:  # everything else still reaches the default handler
            loop.call_soon(lambda: 1 / 0)
            await asyncio.sleep(0.01)
        loop.run_until_complete(other_error())
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        loop.close()
    return seen


@pytest.mark.skipif(sys.version_info >= (3, 12, 2), reason="CPython fixed the done-callback in 3.12.2")
def test_the_cancelled_connection_traceback_is_gone_other_loop_errors_stay() -> None:
    assert any("StreamReaderProtocol.connection_made" in m for m in _run(quiet=False))  # the old output
    seen = _run(quiet=True)
    assert not any("StreamReaderProtocol.connection_made" in m for m in seen), seen
    assert any("Exception in callback" in m for m in seen), seen  # 1 / 0 is still reported
