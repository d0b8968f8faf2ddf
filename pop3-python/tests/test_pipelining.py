"""Bulk operations of the asyncio layer (`retr_many_and_quit`,
`dele_many_and_quit`, `dele_many`): the scripted server reads every command
of the bulk before it answers any, so a client that waited for a reply
before sending the next would time out; the session's QUIT goes out only
once those replies are in (a server may drop unsent replies when it reads
QUIT); then the same against the real Dovecot."""

import asyncio

import pytest

import pop3
import pop3.aio
from conftest import GREETING


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def one_flight(commands, replies, quit_reply=None):
    """Login, the core's CAPA (answered with PIPELINING), then `commands`
    all read before `replies` is sent; with `quit_reply`, then QUIT is read
    and answered."""

    def script(peer):
        peer.send(GREETING)
        peer.expect(b"USER")
        peer.send(b"+OK\r\n")
        peer.expect(b"PASS")
        peer.send(b"+OK logged in\r\n")
        peer.expect(b"CAPA")
        peer.send(b"+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n")
        got = [peer.line() for _ in commands]
        assert got == commands, got
        peer.send(replies)
        if quit_reply is not None:
            peer.expect(b"QUIT")
            peer.send(quit_reply)

    return script


async def login(server):
    conn = await pop3.aio.connect(
        server.host, server.port, tls="none", allow_plaintext_credentials=True, timeout=10
    )
    await conn.login("u", "p", "user")
    return conn


def test_retr_many_and_quit_after_the_replies(scripted):
    server = scripted(
        one_flight(
            [b"RETR 1", b"RETR 2"],
            b"+OK\r\nfirst\r\n.\r\n+OK\r\nsecond\r\n.\r\n",
            b"+OK bye\r\n",
        )
    )

    async def main():
        conn = await login(server)
        got = [item async for item in conn.retr_many_and_quit([1, 2])]
        assert got == [(1, b"first\r\n"), (2, b"second\r\n")]
        with pytest.raises(pop3.Error):
            await conn.noop()

    run(main())
    assert not server.errors, server.errors


def test_dele_many_and_quit_after_the_replies(scripted):
    server = scripted(
        one_flight(
            [b"DELE 1", b"DELE 2"],
            b"+OK\r\n-ERR already deleted\r\n",
            b"-ERR [SYS/TEMP] not committed\r\n",
        )
    )

    async def main():
        conn = await login(server)
        with pytest.raises(pop3.ServerError) as raised:
            await conn.dele_many_and_quit([1, 2])
        assert "not committed" in str(raised.value)
        with pytest.raises(pop3.Error):
            await conn.noop()

    run(main())
    assert not server.errors, server.errors


def test_dele_many_reports_each_message(scripted):
    server = scripted(
        one_flight(
            [b"DELE 1", b"DELE 2", b"DELE 3"],
            b"+OK\r\n-ERR no such message\r\n+OK\r\n",
        )
    )

    async def main():
        conn = await login(server)
        results = await conn.dele_many([1, 2, 3])
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], pop3.ServerError)
        conn.close()

    run(main())
    assert not server.errors, server.errors


def test_against_dovecot(fresh_dovecot):
    d = fresh_dovecot

    async def session():
        conn = await pop3.aio.connect(
            d.host, d.port("implicit"), tls="implicit", ssl_context=d.context(), timeout=30
        )
        await conn.login(d.user, d.password, "user")
        return conn

    async def main():
        count = len(d.messages)
        conn = await session()
        got = [item async for item in conn.retr_many_and_quit(range(1, count + 1))]
        assert got == list(enumerate(d.messages, start=1))
        conn = await session()
        assert await conn.dele_many([1]) == [None]
        results = await conn.dele_many_and_quit([1, 2])
        assert isinstance(results[0], pop3.ServerError) and results[1] is None
        conn = await session()
        assert (await conn.stat())[0] == count - 2
        assert await conn.retr(1).read() == d.messages[2]
        await conn.quit()

    run(main())
