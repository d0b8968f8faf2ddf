"""pop3.aio against the real Dovecot: every TLS mode, byte-for-byte messages,
pipelined retrieval, 100 concurrent sessions, cancellation."""

import asyncio
import io

import pytest

import pop3
import pop3.aio

MODES = ["implicit", "starttls", "none"]


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def session(dovecot, tls, **kw):
    return await pop3.aio.connect(
        dovecot.host,
        dovecot.port(tls),
        tls=tls,
        ssl_context=dovecot.context(),
        allow_plaintext_credentials=tls == "none",
        timeout=30,
        **kw,
    )


@pytest.mark.parametrize("tls", MODES)
def test_every_operation_in_every_mode(dovecot, tls):
    async def main():
        async with await session(dovecot, tls) as conn:
            assert conn.is_encrypted == (tls != "none")
            assert conn.greeting.startswith("Dovecot")
            await conn.login(dovecot.user, dovecot.password, "user")
            count, size = await conn.stat()
            assert count == len(dovecot.messages)
            assert size == sum(len(m) for m in dovecot.messages)
            listing = await conn.list()
            assert [(e.msg, e.size) for e in listing] == [
                (n, len(m)) for n, m in enumerate(dovecot.messages, start=1)
            ]
            one = await conn.list(2)
            assert (one.msg, one.size) == (2, len(dovecot.messages[1]))
            uids = await conn.uidl()
            assert len({e.uid for e in uids}) == count
            assert (await conn.uidl(3)).uid == uids[2].uid
            for n, on_disk in enumerate(dovecot.messages, start=1):
                chunks = [c async for c in conn.retr(n)]
                assert b"".join(chunks) == on_disk
                sink = io.BytesIO()
                assert await conn.retr_to(n, sink) == len(on_disk)
                assert sink.getvalue() == on_disk
            head = await conn.top(1, 0).read()
            assert dovecot.messages[0].startswith(head)
            assert head.endswith(b"\r\n\r\n")
            got = [(m, d) async for m, d in conn.retr_many(range(1, count + 1))]
            assert got == list(enumerate(dovecot.messages, start=1))
            await conn.dele(1)
            assert (await conn.stat())[0] == count - 1
            with pytest.raises(pop3.ServerError):
                await conn.retr(1).read()
            await conn.rset()
            assert (await conn.stat())[0] == count
            await conn.noop()
            with pytest.raises(pop3.ServerError) as info:
                await conn.retr(999).read()
            assert "999" in info.value.text or info.value.text
            # The session goes on after a -ERR.
            assert await conn.retr(1).read() == dovecot.messages[0]

    run(main())


MECHANISMS = {
    "auto": "SCRAM-SHA-256",
    "user": "USER/PASS",
    "apop": "APOP",
    "plain": "PLAIN",
    "login": "LOGIN",
    "cram-md5": "CRAM-MD5",
    "scram-sha-1": "SCRAM-SHA-1",
    "scram-sha-256": "SCRAM-SHA-256",
}


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_login_mechanisms(dovecot, mechanism):
    async def main():
        async with await session(dovecot, "implicit", trace=True) as conn:
            await conn.login(dovecot.user, dovecot.password, mechanism)
            assert conn.client.login_mechanism == MECHANISMS[mechanism]
            assert (await conn.stat())[0] == len(dovecot.messages)
            sent = [line for direction, line in conn.trace if direction == "sent"]
            assert sent and all(dovecot.password not in line for line in sent)

    run(main())


def test_wrong_password_is_a_server_error_with_its_code(dovecot):
    async def main():
        conn = await session(dovecot, "implicit")
        with pytest.raises(pop3.ServerError) as info:
            await conn.login(dovecot.user, "not the password", "user")
        assert info.value.code == "AUTH"
        assert isinstance(info.value, pop3.Error)
        conn.close()

    run(main())


def test_plaintext_credentials_are_refused_without_tls(dovecot):
    async def main():
        conn = await pop3.aio.connect(dovecot.host, dovecot.plain_port, tls="none", timeout=30)
        with pytest.raises(pop3.UsageError):
            await conn.login(dovecot.user, dovecot.password, "user")
        await conn.quit()

    run(main())


def test_certificate_verified_by_default(dovecot):
    import ssl

    async def main():
        with pytest.raises(ssl.SSLCertVerificationError):
            await pop3.aio.connect(dovecot.host, dovecot.tls_port, timeout=30)
        with pytest.raises(ssl.SSLCertVerificationError):
            await pop3.aio.connect(dovecot.host, dovecot.plain_port, tls="starttls", timeout=30)

    run(main())


def test_hundred_concurrent_sessions(dovecot):
    async def one(i):
        tls = MODES[i % 3]
        async with await session(dovecot, tls) as conn:
            await conn.login(dovecot.user, dovecot.password, "user")
            n = i % len(dovecot.messages) + 1
            data = await conn.retr(n).read()
            assert data == dovecot.messages[n - 1]
            return (await conn.stat())[0]

    async def main():
        counts = await asyncio.gather(*(one(i) for i in range(100)))
        assert counts == [len(dovecot.messages)] * 100

    run(main(), timeout=300)


def test_cancelled_read_leaves_the_connection_usable(dovecot):
    async def main():
        async with await session(dovecot, "implicit") as conn:
            await conn.login(dovecot.user, dovecot.password, "user")
            big = max(range(len(dovecot.messages)), key=lambda i: len(dovecot.messages[i])) + 1

            async def slow_reader():
                async for _ in conn.retr(big):
                    await asyncio.sleep(10)

            task = asyncio.ensure_future(slow_reader())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The rest of the message is read and dropped by the next call.
            assert await conn.retr(2).read() == dovecot.messages[1]

            # A reader abandoned by breaking out of the loop.
            async for _ in conn.retr(big):
                break
            assert (await conn.stat())[0] == len(dovecot.messages)

            # Cancelled while waiting for a reply.
            task = asyncio.ensure_future(conn.list())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await conn.retr(3).read() == dovecot.messages[2]

    run(main())


def test_operations_from_several_tasks_run_in_turn(dovecot):
    async def main():
        async with await session(dovecot, "implicit") as conn:
            await conn.login(dovecot.user, dovecot.password, "user")
            results = await asyncio.gather(
                *(conn.retr(n).read() for n in range(1, len(dovecot.messages) + 1)),
                conn.stat(),
            )
            assert results[:-1] == dovecot.messages

    run(main())


def test_deletions_committed_by_quit(fresh_dovecot):
    d = fresh_dovecot

    async def main():
        async with await session(d, "implicit") as conn:
            await conn.login(d.user, d.password, "user")
            await conn.dele(2)
        async with await session(d, "starttls") as conn:
            await conn.login(d.user, d.password, "user")
            assert (await conn.stat())[0] == len(d.messages) - 1
            assert await conn.retr(2).read() == d.messages[2]

    run(main())




def test_starttls_is_the_former_name_of_start_tls(monkeypatch):
    # The one name across surfaces is start_tls; the old one warns and
    # does exactly what it does.
    called = []

    async def spy(self):
        called.append(self)

    monkeypatch.setattr(pop3.aio.Connection, "start_tls", spy)
    conn = object.__new__(pop3.aio.Connection)
    with pytest.warns(DeprecationWarning):
        run(conn.starttls())
    assert called == [conn]
