"""pop3.aio's contracts with its caller, against scripted servers: flow
control for slow consumers, what concurrent use of one connection does,
file objects whose write is a coroutine."""

import asyncio
import base64

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


def test_slow_consumer_holds_no_more_than_the_clients_input_bound(scripted):
    """The protocol takes input without being asked: it pauses reading once
    what it holds and what the client holds reach the client's
    input_bound (the core's figure), not at a bound of its own; one read
    of the transport may overshoot it."""
    lines = 8 * 1024 * 1024 // len(LINE) + 1

    def serve(peer):
        peer.expect(b"RETR 1")
        peer.send(b"+OK\r\n" + LINE * lines + b".\r\n")
        peer.expect(b"QUIT")
        peer.send(b"+OK bye\r\n")

    server = scripted(login_then(serve))

    async def main():
        conn = await logged_in(server, timeout=10)
        bound = conn.client.input_bound
        held = []
        total = 0
        async for chunk in conn.retr(1):
            total += len(chunk)
            await asyncio.sleep(0.01)
            # What waits for the caller: in the protocol and in the core.
            held.append(conn._protocol.size + conn.client.buffered_input)
        await conn.quit()
        return total, bound, max(held)

    total, bound, most = run(main())
    assert total == len(LINE) * lines
    one_read = pop3.aio._READ_SIZE
    assert most <= bound + one_read, (most, bound)
    assert not server.errors


def mailbox(messages, pause_after=None):
    """A script serving `messages` (1-based) to any command order: CAPA,
    STAT, RETR, DELE, NOOP, QUIT. With `pause_after=(n, octets)`, RETR n
    sends its first `octets` octets, then waits (up to 3 s) for the next
    command line before sending the rest: the client is then waiting in
    the middle of a message when that command arrives."""

    def serve(peer):
        pending = None
        while True:
            line = pending if pending is not None else peer.line()
            pending = None
            if not line:
                return
            verb, _, arg = line.partition(b" ")
            verb = verb.upper()
            if verb == b"CAPA":
                peer.send(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n")
            elif verb == b"STAT":
                peer.send(b"+OK %d %d\r\n" % (len(messages), sum(map(len, messages))))
            elif verb == b"RETR":
                n = int(arg)
                reply = b"+OK\r\n" + messages[n - 1] + b".\r\n"
                if pause_after is not None and pause_after[0] == n:
                    cut = pause_after[1]
                    peer.send(reply[:cut])
                    peer.sock.settimeout(3)
                    try:
                        pending = peer.line()
                    except OSError:
                        pending = None
                    peer.sock.settimeout(30)
                    peer.send(reply[cut:])
                else:
                    peer.send(reply)
            elif verb in (b"DELE", b"NOOP", b"RSET"):
                peer.send(b"+OK\r\n")
            elif verb == b"QUIT":
                peer.send(b"+OK bye\r\n")
                return
            else:
                peer.send(b"-ERR unknown\r\n")

    return login_then(serve)


SMALL = [b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n) for n in range(1, 4)]


def test_dele_inside_retr_many_raises_at_once(scripted):
    """Point 6: the task iterating retr_many holds the connection; an
    operation it starts inside the loop would wait for itself. It is refused
    at once, with nothing sent, and the connection goes on."""
    server = scripted(mailbox(SMALL))

    async def main():
        conn = await logged_in(server, timeout=5)
        seen = []
        with pytest.raises(pop3.aio.ConcurrentUseError):
            async for msg, data in conn.retr_many([1, 2, 3]):
                seen.append((msg, data))
                await conn.dele(msg)
        assert seen == [(1, SMALL[0])]
        # The loop is over: what it left unread is dropped, and the way the
        # issue's loop should be written works.
        got = [m async for m, _ in conn.retr_many([1, 2, 3])]
        assert await conn.dele_many(got) == [None, None, None]
        assert await conn.stat() == (3, sum(map(len, SMALL)))
        await conn.quit()

    run(main(), timeout=30)
    assert not server.errors


def test_retr_many_left_with_break_lets_the_next_operation_run(scripted):
    """Point 6: leaving the loop with ``break`` is not concurrent use: the
    generator is closed by the event loop a turn later, and the next
    operation of the same task goes on (no error, no deadlock)."""
    server = scripted(mailbox(SMALL))

    async def main():
        conn = await logged_in(server, timeout=5)
        async for msg, _ in conn.retr_many([1, 2, 3]):
            break
        assert await asyncio.wait_for(conn.stat(), 5) == (3, sum(map(len, SMALL)))
        await conn.quit()

    run(main(), timeout=30)


BIG = b"Subject: big\r\n\r\n" + LINE * 2048


def test_operation_of_another_task_while_a_reader_waits(scripted):
    """Point 6: one task iterates a MessageReader and is waiting for more of
    the message when another task runs STAT. The reads never interleave: STAT
    gets its answer, the reader gets ConcurrentUseError (its rest was
    dropped), nobody hangs, and the connection goes on."""
    server = scripted(mailbox([BIG], pause_after=(1, 64 * 1024)))

    async def main():
        conn = await logged_in(server, timeout=10)
        reader = conn.retr(1)
        first = await reader.__anext__()
        assert first

        async def read_rest():
            rest = []
            async for chunk in reader:
                rest.append(chunk)
            return rest

        reading = asyncio.ensure_future(read_rest())
        await asyncio.sleep(0.05)  # the reader is now waiting for the server
        stat = await asyncio.wait_for(conn.stat(), 10)
        assert stat == (1, len(BIG))
        with pytest.raises(pop3.aio.ConcurrentUseError):
            await asyncio.wait_for(reading, 10)
        assert await conn.retr(1).read() == BIG
        await conn.quit()

    run(main(), timeout=60)
    assert not server.errors


def test_an_operation_between_two_chunks_is_not_a_silent_end(scripted):
    """The task iterating a MessageReader starts another operation between
    two chunks: that operation drops the rest of the message, and the next
    step of the loop raises ConcurrentUseError; the message never looks
    complete when it is not."""
    server = scripted(mailbox([BIG]))

    async def main():
        conn = await logged_in(server, timeout=10)
        chunks = []
        with pytest.raises(pop3.aio.ConcurrentUseError):
            async for chunk in conn.retr(1):
                chunks.append(chunk)
                await conn.noop()
        assert chunks and len(b"".join(chunks)) < len(BIG)
        assert await conn.retr(1).read() == BIG
        await conn.quit()

    run(main(), timeout=60)
    assert not server.errors


def test_a_task_waiting_for_a_parked_retr_many_loop_is_refused(scripted):
    """Task A's retr_many loop waits for task B inside its body while B
    waits for the connection A holds: instead of both waiting for ever, B's
    operation raises ConcurrentUseError after the idle limit, nothing sent,
    and A's loop then finishes."""
    server = scripted(mailbox(SMALL))

    async def main():
        conn = await logged_in(server, timeout=1)
        handed = asyncio.Queue(maxsize=1)
        done = asyncio.Event()

        async def loop_a():
            seen = []
            async for msg, _ in conn.retr_many([1, 2, 3]):
                seen.append(msg)
                if msg == 1:
                    await handed.put(msg)
                    await done.wait()
            return seen

        async def task_b():
            msg = await handed.get()
            try:
                with pytest.raises(pop3.aio.ConcurrentUseError):
                    await conn.dele(msg)
            finally:
                done.set()

        seen, _ = await asyncio.gather(loop_a(), task_b())
        assert seen == [1, 2, 3]
        assert await conn.stat() == (3, sum(map(len, SMALL)))
        await conn.quit()

    run(main(), timeout=30)
    assert not server.errors


def test_retr_to_awaits_an_asynchronous_write(scripted):
    """Point 7: a file object whose write is a coroutine (aiofiles-style)
    gets every chunk written, each awaited before the next."""
    server = scripted(mailbox([BIG]))

    class AsyncFile:
        def __init__(self):
            self.parts = []
            self.writing = False

        async def write(self, data):
            assert not self.writing
            self.writing = True
            await asyncio.sleep(0)
            self.parts.append(bytes(data))
            self.writing = False
            return len(data)

    async def main():
        conn = await logged_in(server, timeout=5)
        sink = AsyncFile()
        written = await conn.retr_to(1, sink)
        await conn.quit()
        return written, b"".join(sink.parts)

    written, data = run(main(), timeout=30)
    assert written == len(BIG)
    assert data == BIG


def test_login_argument_is_called_method_as_in_client(scripted):
    """Point 11: aio's login takes `method=` like pop3.Client.login;
    `mechanism=` still works, deprecated."""
    server = scripted(mailbox(SMALL), connections=2)

    async def main():
        conn = await pop3.aio.connect(
            server.host, server.port, tls="none", allow_plaintext_credentials=True, timeout=5
        )
        assert await conn.login("alice", "secret", method="user") == "logged in"
        await conn.quit()
        conn = await pop3.aio.connect(
            server.host, server.port, tls="none", allow_plaintext_credentials=True, timeout=5
        )
        with pytest.warns(DeprecationWarning):
            await conn.login("alice", "secret", mechanism="user")
        await conn.quit()

    run(main(), timeout=30)
    assert not server.errors


def scram_server(iterations):
    """Offers SCRAM-SHA-256 with `iterations`, then refuses the proof (the
    client has derived its key by then)."""

    def script(peer):
        # A debug build derives the key slowly: wait for it.
        peer.sock.settimeout(300)
        peer.send(GREETING)
        while True:
            line = peer.line()
            if not line:
                return
            verb = line.split(b" ")[0].upper()
            if verb == b"CAPA":
                peer.send(b"+OK\r\nSASL SCRAM-SHA-256\r\n.\r\n")
            elif verb == b"AUTH":
                words = line.split(b" ")
                initial = words[2] if len(words) > 2 else None
                if initial is None:
                    peer.send(b"+ \r\n")
                    initial = peer.line()
                client_first = base64.b64decode(initial)
                nonce = client_first.split(b"r=", 1)[1]
                first = b"r=" + nonce + b"SERVER,s=" + base64.b64encode(b"salt") + b",i=%d" % iterations
                peer.send(b"+ " + base64.b64encode(first) + b"\r\n")
                peer.line()
                peer.send(b"-ERR [AUTH] no\r\n")
            elif verb == b"QUIT":
                peer.send(b"+OK\r\n")
                return
            else:
                peer.send(b"-ERR\r\n")

    return script


def test_scram_key_derivation_runs_off_the_event_loop(scripted):
    """Point 11: at the largest iteration count the core accepts, the key
    derivation takes a fifth of a second (more in a debug build); the event
    loop keeps turning meanwhile."""
    server = scripted(scram_server(1_000_000))

    async def main():
        conn = await pop3.aio.connect(
            server.host, server.port, tls="none", allow_plaintext_credentials=True, timeout=300
        )
        gaps = []
        stop = asyncio.Event()

        async def tick():
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        start = asyncio.get_running_loop().time()
        with pytest.raises(pop3.ServerError):
            await conn.login("alice", "secret", "scram-sha-256")
        took = asyncio.get_running_loop().time() - start
        stop.set()
        await ticker
        await conn.quit()
        return took, max(gaps)

    took, longest_gap = run(main(), timeout=600)
    assert took > 0.1  # the derivation was real work
    # On the loop, the longest gap was the whole derivation.
    assert longest_gap < took / 2, (took, longest_gap)


def test_scram_plus_over_tls_binds_to_the_server_certificate(scripted, certs, dovecot):
    """Point 10: over TLS, "auto" picks SCRAM-SHA-256-PLUS with the
    tls-server-end-point binding: the hash of the server's certificate as
    received, the hash function read from its signature algorithm by the
    core (sha256WithRSAEncryption here)."""
    import hashlib
    import ssl

    from conftest import server_context

    ssl_dir = certs["ssl_dir"]
    cert_pem = (ssl_dir / "server.pem").read_text()
    cert_der = ssl.PEM_cert_to_DER_cert(cert_pem[cert_pem.index("-----BEGIN") :])
    seen = {}

    def script(peer):
        peer.send(GREETING)
        while True:
            line = peer.line()
            if not line:
                return
            words = line.split(b" ")
            verb = words[0].upper()
            if verb == b"CAPA":
                peer.send(b"+OK\r\nSASL SCRAM-SHA-256-PLUS SCRAM-SHA-256\r\nUSER\r\n.\r\n")
            elif verb == b"AUTH" and words[1] == b"SCRAM-SHA-256-PLUS" and "first" not in seen:
                initial = words[2] if len(words) > 2 else None
                if initial is None:
                    peer.send(b"+ \r\n")
                    initial = peer.line()
                client_first = base64.b64decode(initial)
                seen["first"] = client_first
                nonce = client_first.split(b"r=", 1)[1]
                first = b"r=" + nonce + b"S,s=" + base64.b64encode(b"salt") + b",i=4096"
                peer.send(b"+ " + base64.b64encode(first) + b"\r\n")
                seen["final"] = base64.b64decode(peer.line())
                peer.send(b"-ERR [AUTH] no\r\n")
            elif verb == b"AUTH":
                if len(words) == 2:
                    peer.send(b"+ \r\n")
                    peer.line()
                peer.send(b"-ERR [AUTH] no\r\n")
            elif verb == b"QUIT":
                peer.send(b"+OK\r\n")
                return
            else:
                peer.send(b"-ERR\r\n")

    server = scripted(
        script,
        tls_context=server_context(str(ssl_dir / "server.pem"), str(ssl_dir / "server-key.pem")),
    )

    async def main():
        conn = await pop3.aio.connect(
            server.host, server.port, tls="implicit", ssl_context=dovecot.context(), timeout=30
        )
        with pytest.raises(pop3.ServerError):
            await conn.login("alice", "secret")
        await conn.quit()

    run(main(), timeout=120)
    assert seen["first"].startswith(b"p=tls-server-end-point,,n=alice,r="), seen
    channel = dict(part.split(b"=", 1) for part in seen["final"].split(b","))[b"c"]
    assert base64.b64decode(channel) == b"p=tls-server-end-point,," + hashlib.sha256(cert_der).digest()
