"""pop3.aio's contracts with its caller, against scripted servers: flow
control for slow consumers, what concurrent use of one connection does,
file objects whose write is a coroutine."""

import asyncio

import pytest

import pop3
import pop3.aio
from conftest import GREETING


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def login_then(serve):
    """A script: greeting, USER/PASS accepted, then `serve(peer)`."""

    def script(peer):
        peer.send(GREETING)
        peer.expect(b"USER")
        peer.send(b"+OK\r\n")
        peer.expect(b"PASS")
        peer.send(b"+OK logged in\r\n")
        serve(peer)

    return script


async def logged_in(server, **kw):
    conn = await pop3.aio.connect(
        server.host, server.port, tls="none", allow_plaintext_credentials=True, **kw
    )
    await conn.login("alice", "secret", "user")
    return conn


LINE = b"x" * 998 + b"\r\n"
BIG_LINES = 20 * 1024 * 1024 // len(LINE) + 1


def test_slow_consumer_of_a_20_mib_message_completes(scripted):
    """Point 5: reading pauses above 4 MiB buffered and must resume once the
    caller catches up, however the buffered chunks were taken."""

    def serve(peer):
        peer.expect(b"RETR 1")
        peer.send(b"+OK\r\n" + LINE * BIG_LINES + b".\r\n")
        peer.expect(b"QUIT")
        peer.send(b"+OK bye\r\n")

    server = scripted(login_then(serve))

    async def main():
        # The idle limit is far shorter than the whole transfer takes the
        # slow consumer: a read that never resumes trips it.
        conn = await logged_in(server, timeout=5)
        total = 0
        async for chunk in conn.retr(1):
            total += len(chunk)
            await asyncio.sleep(0.01)
        await conn.quit()
        return total

    assert run(main()) == len(LINE) * BIG_LINES
    assert not server.errors
