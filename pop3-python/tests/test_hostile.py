"""Scripted hostile servers against the drop-in and the asyncio layer:
STLS injection, refused STLS, wrong certificates, disconnects in the middle
of a message, over-long lines and huge listings."""

import asyncio
import io
import ssl
import time

import pytest

import pop3
import pop3.aio
from pop3 import poplib as ours
from conftest import GREETING, server_context

CAPA_STLS = b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"
CAPA_NO_STLS = b"+OK\r\nUSER\r\nTOP\r\n.\r\n"


def serve(replies, greeting=GREETING, log=None):
    """A script answering each command by its verb; a callable reply gets
    (peer, line) and returns the bytes to send, or None to hang up."""

    def script(peer):
        peer.send(greeting)
        while True:
            line = peer.line()
            if not line:
                return
            if log is not None:
                log.append(line)
            verb = line.split()[0].upper()
            reply = replies.get(verb, b"-ERR unknown command\r\n")
            if callable(reply):
                reply = reply(peer, line)
                if reply is None:
                    return
            peer.send(reply)
            if verb == b"QUIT":
                return

    return script


LOGIN = {b"USER": b"+OK\r\n", b"PASS": b"+OK logged in\r\n", b"CAPA": b"-ERR no\r\n", b"QUIT": b"+OK bye\r\n"}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def aio_login(server, **kw):
    conn = await pop3.aio.connect(
        server.host, server.port, tls="none", allow_plaintext_credentials=True, timeout=10, **kw
    )
    await conn.login("u", "p", "user")
    return conn


# ----- STLS injection -----


def injecting(peer, line):
    # The +OK and a forged reply in one segment, before any TLS byte.
    peer.send(b"+OK begin TLS\r\n+OK 1 2\r\n")
    peer.line()
    return None


def test_stls_injection_raises_in_the_drop_in(scripted, dovecot):
    server = scripted(serve({b"CAPA": CAPA_STLS, b"STLS": injecting}))
    conn = ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(ours.error_proto, match="after"):
        conn.stls(dovecot.context())
    conn.close()


def test_stls_injection_raises_in_asyncio(scripted, dovecot):
    server = scripted(serve({b"CAPA": CAPA_STLS, b"STLS": injecting}))
    with pytest.raises(pop3.ProtocolError):
        run(pop3.aio.connect(server.host, server.port, tls="starttls", ssl_context=dovecot.context(), timeout=10))


# ----- refused STLS -----


def test_stls_not_offered(scripted, dovecot):
    log = []
    server = scripted(serve({b"CAPA": CAPA_NO_STLS}, log=log), connections=2)
    conn = ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(ours.error_proto, match="STLS not supported"):
        conn.stls(dovecot.context())
    conn.close()
    with pytest.raises(pop3.UsageError, match="STLS"):
        run(pop3.aio.connect(server.host, server.port, tls="starttls", ssl_context=dovecot.context(), timeout=10))
    time.sleep(0.2)
    assert all(line.upper().startswith(b"CAPA") for line in log), log


def test_stls_refused_with_err(scripted, dovecot):
    replies = {b"CAPA": CAPA_STLS, b"STLS": b"-ERR [SYS/TEMP] not now\r\n"}
    server = scripted(serve(replies), connections=2)
    conn = ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(ours.error_proto) as info:
        conn.stls(dovecot.context())
    assert info.value.args == (b"-ERR [SYS/TEMP] not now",)
    conn.close()
    with pytest.raises(pop3.ServerError) as info:
        run(pop3.aio.connect(server.host, server.port, tls="starttls", ssl_context=dovecot.context(), timeout=10))
    assert info.value.code == "SYS/TEMP"


# ----- certificates -----


def test_wrong_host_name_and_unknown_issuer(scripted, certs, dovecot):
    tls = server_context(certs["wrong_cert"], certs["wrong_key"])
    server = scripted(serve(LOGIN), tls_context=tls, connections=4)
    trusting = ssl.create_default_context(cafile=certs["wrong_cert"])
    # Trusted issuer, wrong name: 127.0.0.1 is not wrong.example.
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        ours.POP3_SSL(server.host, server.port, context=trusting, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        run(pop3.aio.connect(server.host, server.port, ssl_context=trusting, timeout=10))
    # No context: the system's trust store, which does not know the issuer.
    with pytest.raises(ssl.SSLCertVerificationError):
        ours.POP3_SSL(server.host, server.port, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        run(pop3.aio.connect(server.host, server.port, timeout=10))


def test_wrong_certificate_after_stls(scripted, certs, dovecot):
    tls = server_context(certs["wrong_cert"], certs["wrong_key"])

    def upgrade(peer, line):
        peer.send(b"+OK begin\r\n")
        peer.start_tls(tls)
        return None

    server = scripted(serve({b"CAPA": CAPA_STLS, b"STLS": upgrade}), connections=2)
    conn = ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.stls()
    conn.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        run(pop3.aio.connect(server.host, server.port, tls="starttls", timeout=10))


def test_good_certificate_from_the_test_ca(scripted, certs, dovecot):
    ssl_dir = certs["ssl_dir"]
    tls = server_context(str(ssl_dir / "server.pem"), str(ssl_dir / "server-key.pem"))
    server = scripted(serve({**LOGIN, b"STAT": b"+OK 0 0\r\n"}), tls_context=tls)
    conn = ours.POP3_SSL(server.host, server.port, context=dovecot.context(), timeout=10)
    conn.user("u")
    conn.pass_("p")
    assert conn.stat() == (0, 0)
    conn.quit()


# ----- disconnect in the middle of a message -----


def cut_off(peer, line):
    peer.send(b"+OK 5000 octets\r\nFrom: a@example.org\r\n\r\nthe first part of the bo")
    return None


def test_disconnect_mid_message(scripted):
    server = scripted(serve({**LOGIN, b"RETR": cut_off}), connections=3)
    conn = ours.POP3(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    with pytest.raises(ours.error_proto):
        conn.retr(1)
    conn.close()

    conn = ours.POP3(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    with pytest.raises(ours.error_proto):
        conn.retr_to(1, io.BytesIO())
    conn.close()

    async def main():
        conn = await aio_login(server)
        chunks = []
        with pytest.raises(pop3.ProtocolError):
            async for chunk in conn.retr(1):
                chunks.append(chunk)
        with pytest.raises(pop3.Error):
            await conn.noop()

    run(main())


# ----- over-long lines, huge listings -----


def test_over_long_reply_line(scripted):
    long_stat = b"+OK " + b"9" * 100_000 + b"\r\n"
    server = scripted(serve({**LOGIN, b"STAT": long_stat, b"NOOP": b"+OK\r\n"}), connections=2)
    conn = ours.POP3(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    with pytest.raises(ours.error_proto):
        conn.stat()
    # The line was read to its end: the session goes on.
    assert conn.noop() == b"+OK"
    conn.close()

    async def main():
        conn = await aio_login(server)
        with pytest.raises(pop3.ProtocolError):
            await conn.stat()
        assert await conn.noop() == ""
        conn.close()

    run(main())


def test_over_long_greeting(scripted):
    server = scripted(serve({}, greeting=b"+OK " + b"x" * 1_000_000 + b"\r\n"), connections=2)
    with pytest.raises(ours.error_proto):
        ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(pop3.ProtocolError):
        run(pop3.aio.connect(server.host, server.port, tls="none", timeout=10))


def huge_listing(count):
    def reply(peer, line):
        peer.send(b"+OK\r\n" + b"".join(b"%d 100\r\n" % i for i in range(1, count + 1)) + b".\r\n")
        return b""

    return reply


def test_huge_listing_default_limit(scripted):
    server = scripted(serve({**LOGIN, b"LIST": huge_listing(100_001), b"NOOP": b"+OK\r\n"}))
    conn = ours.POP3(server.host, server.port, timeout=60)
    conn.user("u")
    conn.pass_("p")
    with pytest.raises(ours.error_proto):
        conn.list()
    assert conn.noop() == b"+OK"
    conn.close()


def test_huge_listing_configured_limit(scripted):
    class Small(ours.POP3):
        max_listing_lines = 1000

    server = scripted(serve({**LOGIN, b"UIDL": huge_listing(1001), b"LIST": huge_listing(1000)}), connections=2)
    conn = Small(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    assert len(conn.list()[1]) == 1000
    with pytest.raises(ours.error_proto):
        conn.uidl()
    conn.close()

    async def main():
        conn = await aio_login(server, max_listing_lines=1000)
        assert len(await conn.list()) == 1000
        with pytest.raises(pop3.ProtocolError):
            await conn.uidl()
        conn.close()

    run(main())


def test_listing_bytes_limit(scripted):
    """A listing over ``max_listing_bytes`` fails that command alone."""
    server = scripted(serve({**LOGIN, b"LIST": huge_listing(1000), b"NOOP": b"+OK\r\n"}))

    async def main():
        conn = await aio_login(server, max_listing_bytes=1000)
        with pytest.raises(pop3.ProtocolError, match="octets"):
            await conn.list()
        await conn.noop()
        conn.close()

    run(main())


def test_err_greeting(scripted):
    server = scripted(serve({}, greeting=b"-ERR [SYS/TEMP] go away\r\n"), connections=2)
    with pytest.raises(ours.error_proto):
        ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(pop3.ProtocolError):
        run(pop3.aio.connect(server.host, server.port, tls="none", timeout=10))


def test_silent_server_times_out(scripted):
    def silent(peer):
        peer.line()

    server = scripted(silent, connections=2)
    with pytest.raises(OSError):
        ours.POP3(server.host, server.port, timeout=0.5)
    with pytest.raises(asyncio.TimeoutError):
        run(pop3.aio.connect(server.host, server.port, tls="none", timeout=0.5))


def test_trickling_server_meets_the_session_timeout(scripted):
    """A reply trickled a byte every 200 ms never trips the 1 s idle limit;
    the 2 s session_timeout ends it with SessionTimeout, and the connection
    is closed."""

    def trickle(peer, line):
        try:
            peer.send(b"+OK ")
            for _ in range(50):
                peer.send(b"x")
                time.sleep(0.2)
        except OSError:
            pass
        return None

    server = scripted(serve({**LOGIN, b"NOOP": trickle}))

    async def main():
        started = asyncio.get_running_loop().time()
        conn = await pop3.aio.connect(
            server.host,
            server.port,
            tls="none",
            allow_plaintext_credentials=True,
            timeout=1,
            session_timeout=2,
        )
        await conn.login("u", "p", "user")
        with pytest.raises(pop3.aio.SessionTimeout):
            await conn.noop()
        took = asyncio.get_running_loop().time() - started
        assert 1.8 <= took < 3.5, took
        with pytest.raises(pop3.Error):
            await conn.noop()

    run(main())


def test_odd_line_endings_split_like_the_standard_module(scripted):
    import poplib as std

    body = (
        b"Subject: odd\r\n\r\nbare LF here\nthen CRLF\r\nlone CR \r inside\r\n"
        b"..stuffed\r\n" + b"x" * 1500 + b"\r\n\r\nlast\r\n"
    )

    def retr(peer, line):
        return b"+OK\r\n" + body + b".\r\n"

    server = scripted(serve({**LOGIN, b"RETR": retr}), connections=2)
    results = []
    for mod in (std, ours):
        conn = mod.POP3(server.host, server.port, timeout=10)
        conn.user("u")
        conn.pass_("p")
        results.append(conn.retr(1))
        conn.quit()
    assert results[1] == results[0]


def test_cancelled_tls_handshake_closes_the_connection(scripted, dovecot):
    def stall(peer, line):
        peer.send(b"+OK begin\r\n")
        peer.sock.recv(65536)  # the ClientHello, never answered
        peer.line()
        return None

    server = scripted(serve({b"CAPA": CAPA_STLS, b"STLS": stall}))

    async def main():
        conn = await pop3.aio.connect(server.host, server.port, tls="none", timeout=10)
        task = asyncio.ensure_future(conn.start_tls())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(pop3.Error, match="closed"):
            await conn.noop()

    run(main())
