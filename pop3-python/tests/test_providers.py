"""OAuth logins against scripted profiles of Microsoft 365 / Outlook.com and
Gmail (tests/providers.py), through pop3.aio and the sans-IO pop3.Client.

What is checked: tokens of real length (60 characters, 2,000, 16 KiB, 64 KiB)
are taken for XOAUTH2 and OAUTHBEARER; the client always logs in two-step
(``AUTH <mechanism>``, the continuation, then the message on its own line),
which Microsoft requires; the mail that follows arrives byte for byte; a
token Gmail refuses is answered as the mechanism says (an empty line, or
``AQ==``) and raised with the refusal's parts; the token never shows in the
trace.
"""

import asyncio
import base64
import hashlib
import socket
import ssl
from typing import List, Tuple

import pytest

import pop3
import pop3.aio
from conftest import server_context
from providers import (
    Gmail,
    Microsoft365,
    Profile,
    SaslMessage,
    messages,
    oauthbearer_message,
    xoauth2_message,
)

MS_USER = "alice@contoso.onmicrosoft.com"
GMAIL_USER = "alice.example@gmail.com"
SCOPE = "https://mail.google.com/"
LENGTHS = [60, 2000, 16 * 1024, 64 * 1024]


def make_token(length: int, prefix: str) -> str:
    """A bearer token of exactly ``length`` characters in the alphabet real
    ones use (base64url and dots), deterministic for a given prefix."""
    parts = [prefix]
    size = len(prefix)
    n = 0
    while size < length:
        digest = hashlib.sha256(f"{prefix}{n}".encode()).digest()
        chunk = base64.urlsafe_b64encode(digest).decode().rstrip("=") + ("." if n % 7 == 6 else "")
        parts.append(chunk)
        size += len(chunk)
        n += 1
    return "".join(parts)[:length]


def ms_token(length: int) -> str:
    return make_token(length, "eyJ0eXAiOiJKV1QiLCJub25jZSI6")


def gmail_token(length: int) -> str:
    return make_token(length, "ya29.a0AfB_by")


def encoded(mechanism: str, user: str, token: str) -> bytes:
    raw = (xoauth2_message if mechanism == "xoauth2" else oauthbearer_message)(user, token)
    return base64.b64encode(raw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def tls(certs, dovecot) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """The servers' context (the test CA's server certificate, valid for
    127.0.0.1) and a client context that trusts that CA."""
    ssl_dir = certs["ssl_dir"]
    return (
        server_context(str(ssl_dir / "server.pem"), str(ssl_dir / "server-key.pem")),
        dovecot.context(),
    )


@pytest.fixture
def serve(scripted, tls):
    """Starts a profile on loopback with implicit TLS, like port 995 of both
    providers; returns the Scripted server."""

    def start(profile: Profile, connections: int = 1):
        return scripted(profile, tls_context=tls[0], connections=connections)

    return start


def assert_clean(profile: Profile, server) -> None:
    assert profile.errors == [] and server.errors == []


def ms_profile(token: str) -> Microsoft365:
    return Microsoft365(MS_USER, token, messages("microsoft"))


def gmail_profile(token: str) -> Gmail:
    return Gmail(GMAIL_USER, token, messages("gmail"), downloaded=messages("gmail", 2, first=101))


CASES = [("microsoft", "xoauth2", n) for n in LENGTHS] + [
    ("gmail", mechanism, n) for mechanism in ("xoauth2", "oauthbearer") for n in LENGTHS
]


def case_id(case) -> str:
    return f"{case[0]}-{case[1]}-{case[2]}"


# ----- the profiles themselves -----


def raw_tls(server, context: ssl.SSLContext) -> Tuple[ssl.SSLSocket, "LineReader"]:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    tls_sock = context.wrap_socket(sock, server_hostname=server.host)
    return tls_sock, LineReader(tls_sock)


class LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        """The next line with its CRLF; b"" at the end of the stream."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"


def test_microsoft_profile_refuses_the_inline_form_and_closes(serve, tls):
    profile = ms_profile(ms_token(2000))
    server = serve(profile)
    sock, reader = raw_tls(server, tls[1])
    with sock:
        assert reader.line().startswith(b"+OK The Microsoft Exchange POP3 service is ready. [")
        sock.sendall(b"AUTH XOAUTH2 " + encoded("xoauth2", MS_USER, profile.token) + b"\r\n")
        assert reader.line() == b"-ERR Protocol error. Connection is closed. 10\r\n"
        assert reader.line() == b""
    server.close()
    assert profile.hung_up and profile.logins == []
    assert_clean(profile, server)


def test_microsoft_profile_takes_the_two_step_form(serve, tls):
    profile = ms_profile(ms_token(60))
    server = serve(profile)
    sock, reader = raw_tls(server, tls[1])
    with sock:
        reader.line()
        sock.sendall(b"AUTH XOAUTH2\r\n")
        assert reader.line() == b"+ \r\n"
        sock.sendall(encoded("xoauth2", MS_USER, profile.token) + b"\r\n")
        assert reader.line() == b"+OK User successfully authenticated.\r\n"
        sock.sendall(b"QUIT\r\n")
        assert reader.line().startswith(b"+OK")
    server.close()
    assert profile.logins == [SaslMessage("XOAUTH2", MS_USER, profile.token, False)]
    assert_clean(profile, server)


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_gmail_profile_takes_both_forms_and_reports_a_bad_token(serve, tls, mechanism):
    profile = gmail_profile(gmail_token(200))
    server = serve(profile)
    ack = b"" if mechanism == "xoauth2" else b"AQ=="
    verb = b"AUTH " + mechanism.upper().encode()
    sock, reader = raw_tls(server, tls[1])
    with sock:
        assert reader.line().startswith(b"+OK Gpop ready for requests from 127.0.0.1 ")
        # Inline, with a bad token: the JSON report, then -ERR after the ack.
        sock.sendall(verb + b" " + encoded(mechanism, GMAIL_USER, "expired") + b"\r\n")
        challenge = reader.line()
        assert challenge.startswith(b"+ ")
        report = base64.b64decode(challenge[2:].strip(), validate=True)
        assert report == b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
        sock.sendall(ack + b"\r\n")
        assert reader.line() == b"-ERR [AUTH] Invalid credentials\r\n"
        # Two-step, with the good token.
        sock.sendall(verb + b"\r\n")
        assert reader.line() == b"+\r\n"
        sock.sendall(encoded(mechanism, GMAIL_USER, profile.token) + b"\r\n")
        assert reader.line() == b"+OK Welcome.\r\n"
        sock.sendall(b"QUIT\r\n")
        assert reader.line() == b"+OK Farewell.\r\n"
    server.close()
    assert [m.inline for m in profile.logins] == [True, False]
    assert profile.exchanges[0][-1] == ack
    assert_clean(profile, server)


# ----- pop3.aio -----


async def login_and_fetch(server, context, user, token, mechanism):
    """Logs in, lists the unique ids, retrieves every message, quits."""
    conn = await pop3.aio.connect(server.host, server.port, ssl_context=context, timeout=10, trace=True)
    async with conn:  # QUIT at the end; closed at once on a failure
        text = await conn.login(user, token, mechanism)
        uids = await conn.uidl()
        bodies = [await conn.retr(entry.msg) for entry in uids]
    return conn, text, uids, bodies


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_aio_oauth_login_then_mail(serve, tls, case):
    provider, mechanism, length = case
    if provider == "microsoft":
        user, token = MS_USER, ms_token(length)
        profile: Profile = ms_profile(token)
        welcome = "User successfully authenticated."
    else:
        user, token = GMAIL_USER, gmail_token(length)
        profile = gmail_profile(token)
        welcome = "Welcome."
    assert len(token) == length
    server = serve(profile)
    conn, text, uids, bodies = run(login_and_fetch(server, tls[1], user, token, mechanism))
    server.close()

    assert text == welcome
    # Two-step, whatever the token's length: the AUTH line names only the
    # mechanism, and the message comes whole on the next line.
    assert profile.exchanges == [[b"AUTH " + mechanism.upper().encode(), encoded(mechanism, user, token)]]
    assert profile.logins == [SaslMessage(mechanism.upper(), user, token, False)]
    assert [(e.msg, e.uid) for e in uids] == [(n, uid) for n, (uid, _) in enumerate(profile.messages, 1)]
    assert bodies == [message for _, message in profile.messages]
    assert not any(token in line for _, line in conn.trace)
    assert not any(token[:40] in line for _, line in conn.trace)
    assert_clean(profile, server)


def test_aio_microsoft_unique_ids_are_long_base64(serve, tls):
    token = ms_token(2000)
    profile = ms_profile(token)
    server = serve(profile)
    _, _, uids, _ = run(login_and_fetch(server, tls[1], MS_USER, token, "xoauth2"))
    server.close()
    assert [len(e.uid) for e in uids] == [68, 68, 68]
    assert all(base64.b64decode(e.uid, validate=True) for e in uids)
    assert_clean(profile, server)


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_aio_gmail_refused_token(serve, tls, mechanism):
    good = gmail_token(2000)
    bad = gmail_token(2000)[:-10] + "expiredXYZ"
    profile = gmail_profile(good)
    server = serve(profile)

    async def main():
        async with await pop3.aio.connect(server.host, server.port, ssl_context=tls[1], timeout=10) as conn:
            with pytest.raises(pop3.ServerError) as info:
                await conn.login(GMAIL_USER, bad, mechanism)
            # The session goes on: the right token logs in on the same connection.
            assert await conn.login(GMAIL_USER, good, mechanism) == "Welcome."
            body = await conn.retr(1)
        return info.value, body

    error, body = run(main())
    server.close()

    assert error.code == "AUTH"
    assert error.text == "Invalid credentials"
    message = str(error)
    assert "Invalid credentials" in message
    assert "refused" in message and SCOPE in message
    assert error.token_status == "400"
    assert error.token_scope == SCOPE
    assert error.token_schemes == "Bearer"
    ack = b"" if mechanism == "xoauth2" else b"AQ=="
    verb = b"AUTH " + mechanism.upper().encode()
    assert profile.exchanges == [
        [verb, encoded(mechanism, GMAIL_USER, bad), ack],
        [verb, encoded(mechanism, GMAIL_USER, good)],
    ]
    assert body == profile.messages[0][1]
    assert_clean(profile, server)


def test_aio_microsoft_refused_token_has_no_refusal_parts(serve, tls):
    profile = ms_profile(ms_token(2000))
    server = serve(profile)

    async def main():
        async with await pop3.aio.connect(server.host, server.port, ssl_context=tls[1], timeout=10) as conn:
            with pytest.raises(pop3.ServerError) as info:
                await conn.login(MS_USER, ms_token(1999), "xoauth2")
        return info.value

    error = run(main())
    server.close()
    assert error.code is None
    assert error.text == "Authentication failure: unknown user name or bad password."
    assert error.token_status is None and error.token_scope is None and error.token_schemes is None
    assert "token was refused" not in str(error)
    # No error report, so no acknowledgement: AUTH and the message only.
    assert [len(e) for e in profile.exchanges] == [2]
    assert_clean(profile, server)


def test_aio_oauthbearer_to_microsoft_sends_no_token(serve, tls):
    """Microsoft takes XOAUTH2 only: asked for OAUTHBEARER it refuses the
    AUTH line, and as the token would only follow a continuation, it never
    left the client. The session goes on with XOAUTH2."""
    token = ms_token(2000)
    profile = ms_profile(token)
    server = serve(profile)

    async def main():
        async with await pop3.aio.connect(server.host, server.port, ssl_context=tls[1], timeout=10) as conn:
            with pytest.raises(pop3.ServerError) as info:
                await conn.login(MS_USER, token, "oauthbearer")
            assert await conn.login(MS_USER, token, "xoauth2") == "User successfully authenticated."
        return info.value

    error = run(main())
    server.close()
    assert error.text == "Unrecognized authentication type."
    assert error.token_status is None
    assert profile.exchanges == [[b"AUTH OAUTHBEARER"], [b"AUTH XOAUTH2", encoded("xoauth2", MS_USER, token)]]
    assert encoded("oauthbearer", MS_USER, token) not in profile.log
    assert not any(token.encode() in line for line in profile.log)
    assert_clean(profile, server)


def test_aio_gmail_recent_mode(serve, tls):
    token = gmail_token(2000)
    profile = gmail_profile(token)
    server = serve(profile)
    _, _, uids, bodies = run(login_and_fetch(server, tls[1], "recent:" + GMAIL_USER, token, "oauthbearer"))
    server.close()
    assert profile.logins[0].user == "recent:" + GMAIL_USER
    everything = profile.downloaded + profile.messages
    assert [e.uid for e in uids] == [uid for uid, _ in everything]
    assert all(e.uid.startswith("GmailId") for e in uids)
    assert bodies == [m for _, m in everything]
    assert_clean(profile, server)


# ----- the sans-IO pop3.Client, driven by hand -----


class Driver:
    """A minimal blocking pump for pop3.Client over a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.client = pop3.Client(encrypted=True)

    def events(self, handle=None) -> List[object]:
        """The events of ``handle`` up to its completion (without a handle:
        up to the greeting)."""
        out: List[object] = []
        while True:
            data = self.client.data_to_send()
            if data:
                self.sock.sendall(data)
            event = self.client.next_event()
            if isinstance(event, pop3.NeedData):
                self.client.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, (pop3.Greeting, pop3.Closed)):
                out.append(event)
                if handle is None or isinstance(event, pop3.Closed):
                    return out
                continue
            if handle is None or getattr(event, "handle", None) != handle:
                continue  # capabilities learnt on the way, other commands
            out.append(event)
            if not isinstance(event, (pop3.BodyStart, pop3.BodyChunk)):
                return out


SANS_IO_CASES = [("microsoft", "xoauth2"), ("gmail", "xoauth2"), ("gmail", "oauthbearer")]


@pytest.mark.parametrize("case", SANS_IO_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_sans_io_16k_token_over_tls(serve, tls, case):
    provider, mechanism = case
    length = 16 * 1024
    if provider == "microsoft":
        user, token = MS_USER, ms_token(length)
        profile: Profile = ms_profile(token)
    else:
        user, token = GMAIL_USER, gmail_token(length)
        profile = gmail_profile(token)
    server = serve(profile)
    sock = socket.create_connection((server.host, server.port), timeout=10)
    with tls[1].wrap_socket(sock, server_hostname=server.host) as tls_sock:
        d = Driver(tls_sock)
        [greeting] = d.events()
        assert isinstance(greeting, pop3.Greeting)
        login = d.client.login(user, token, mechanism)
        [logged_in] = d.events(login)
        assert isinstance(logged_in, pop3.LoggedIn), logged_in
        assert d.client.state == "transaction"
        assert d.client.login_mechanism == mechanism.upper()
        uidl = d.client.uidl()
        [listing] = d.events(uidl)
        assert isinstance(listing, pop3.UidListing)
        assert [e.uid for e in listing.entries] == [uid for uid, _ in profile.messages]
        for n, (_, message) in enumerate(profile.messages, 1):
            retr = d.client.retr(n)
            events = d.events(retr)
            assert isinstance(events[-1], pop3.BodyEnd)
            assert b"".join(e.data for e in events if isinstance(e, pop3.BodyChunk)) == message
        quit_ = d.client.quit()
        assert isinstance(d.events(quit_)[0], pop3.Ok)
    server.close()
    assert profile.exchanges == [[b"AUTH " + mechanism.upper().encode(), encoded(mechanism, user, token)]]
    assert_clean(profile, server)


def drain(client: pop3.Client) -> List[object]:
    events: List[object] = []
    while True:
        event = client.next_event()
        events.append(event)
        if isinstance(event, (pop3.NeedData, pop3.Closed)):
            return events


GMAIL_CAPA = b"+OK Capability list follows\r\n" + b"".join(c + b"\r\n" for c in Gmail.capabilities) + b".\r\n"


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
@pytest.mark.parametrize("continuation", [b"+\r\n", b"+ \r\n"], ids=["bare", "space"])
def test_sans_io_gmail_refusal_byte_by_byte(mechanism, continuation):
    token = gmail_token(16 * 1024)
    c = pop3.Client(encrypted=True)
    c.receive_data(Gmail.greeting)
    assert isinstance(drain(c)[0], pop3.Greeting)
    login = c.login(GMAIL_USER, token, mechanism)
    out = c.data_to_send()
    if out == b"CAPA\r\n":
        c.receive_data(GMAIL_CAPA)
        assert not [e for e in drain(c) if getattr(e, "handle", None) == login]
        out = c.data_to_send()
    assert out == b"AUTH " + mechanism.upper().encode() + b"\r\n"
    assert not [e for e in drain(c) if getattr(e, "handle", None) == login]
    c.receive_data(continuation)
    drain(c)
    assert c.data_to_send() == encoded(mechanism, GMAIL_USER, token) + b"\r\n"
    report = base64.b64encode(b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}')
    c.receive_data(b"+ " + report + b"\r\n")
    drain(c)
    assert c.data_to_send() == (b"\r\n" if mechanism == "xoauth2" else b"AQ==\r\n")
    c.receive_data(b"-ERR [AUTH] Invalid credentials\r\n")
    [err, need] = drain(c)
    assert isinstance(need, pop3.NeedData)
    assert isinstance(err, pop3.Err)
    assert err.handle == login
    assert (err.code, err.text) == ("AUTH", "Invalid credentials")
    assert (err.token_status, err.token_scope, err.token_schemes) == ("400", SCOPE, "Bearer")
    assert c.state == "authorization"
    error = pop3.ServerError.from_event(err)
    assert error.token_status == "400" and error.token_scope == SCOPE
    assert SCOPE in str(error) and "refused" in str(error)
    assert c.data_to_send() == b""


def test_sans_io_gmail_refusal_over_tls(serve, tls):
    good = gmail_token(16 * 1024)
    bad = good[:-1] + "!"
    profile = gmail_profile(good)
    server = serve(profile)
    sock = socket.create_connection((server.host, server.port), timeout=10)
    with tls[1].wrap_socket(sock, server_hostname=server.host) as tls_sock:
        d = Driver(tls_sock)
        d.events()
        login = d.client.login(GMAIL_USER, bad, "xoauth2")
        [err] = d.events(login)
        assert isinstance(err, pop3.Err), err
        assert (err.code, err.token_status, err.token_scope) == ("AUTH", "400", SCOPE)
        login = d.client.login(GMAIL_USER, good, "xoauth2")
        assert isinstance(d.events(login)[-1], pop3.LoggedIn)
        quit_ = d.client.quit()
        d.events(quit_)
    server.close()
    assert profile.exchanges == [
        [b"AUTH XOAUTH2", encoded("xoauth2", GMAIL_USER, bad), b""],
        [b"AUTH XOAUTH2", encoded("xoauth2", GMAIL_USER, good)],
    ]
    assert_clean(profile, server)


def test_sans_io_events_without_a_refusal_have_none():
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK ready\r\n")
    drain(c)
    c.login("u", "p", "user")
    assert c.data_to_send() == b"USER u\r\n"
    c.receive_data(b"+OK\r\n")
    drain(c)
    assert c.data_to_send() == b"PASS p\r\n"
    c.receive_data(b"-ERR [AUTH] no\r\n")
    err = drain(c)[0]
    assert isinstance(err, pop3.Err)
    assert (err.token_status, err.token_scope, err.token_schemes) == (None, None, None)


@pytest.mark.parametrize("provider", ["microsoft", "gmail"])
def test_poplib_auth_xoauth2_runs_the_cores_exchange(serve, tls, provider):
    """Point 8: the drop-in's auth() (smtplib's shape, which CPython's poplib
    is gaining) takes the caller's XOAUTH2 message and the core runs the
    exchange: two steps, whatever the provider, the token never traced."""
    from pop3 import poplib as ours

    if provider == "microsoft":
        user, token = MS_USER, ms_token(1200)
        profile: Profile = ms_profile(token)
    else:
        user, token = GMAIL_USER, gmail_token(1200)
        profile = gmail_profile(token)
    server = serve(profile)
    conn = ours.POP3_SSL(server.host, server.port, context=tls[1], timeout=10)
    resp = conn.auth("XOAUTH2", lambda challenge=None: xoauth2_message(user, token))
    assert resp.startswith(b"+OK")
    assert conn.stat()[0] == len(profile.messages)
    conn.quit()
    server.close()
    assert profile.exchanges == [[b"AUTH XOAUTH2", encoded("xoauth2", user, token)]]
    assert_clean(profile, server)


@pytest.mark.parametrize("one_line", [False, True])
def test_poplib_shortcmd_auth_xoauth2_as_programs_send_it(serve, tls, one_line):
    """Programs written for the standard module log in to Gmail and
    Outlook.com with `_shortcmd("AUTH XOAUTH2")` then `_shortcmd(message)`
    (or the message on the AUTH line): the drop-in hands both shapes to the
    core's exchange, so they work and the token is never traced."""
    from pop3 import poplib as ours

    token = ms_token(1200)
    profile = ms_profile(token)
    server = serve(profile)
    conn = ours.POP3_SSL(server.host, server.port, context=tls[1], timeout=10)
    message = base64.b64encode(xoauth2_message(MS_USER, token)).decode("ascii")
    if one_line:
        resp = conn._shortcmd("AUTH XOAUTH2 " + message)
    else:
        assert conn._shortcmd("AUTH XOAUTH2") == b"+ "
        resp = conn._shortcmd(message)
    assert resp.startswith(b"+OK")
    assert conn.stat()[0] == len(profile.messages)
    conn.quit()
    server.close()
    assert profile.exchanges == [[b"AUTH XOAUTH2", encoded("xoauth2", MS_USER, token)]]
    assert_clean(profile, server)


def test_poplib_auth_refused_and_unsupported(serve, tls):
    from pop3 import poplib as ours

    token = ms_token(100)
    profile = ms_profile(token)
    server = serve(profile)
    conn = ours.POP3_SSL(server.host, server.port, context=tls[1], timeout=10)
    with pytest.raises(ours.error_proto):
        conn.auth("GSSAPI", lambda challenge=None: b"whatever")
    with pytest.raises(ours.error_proto):
        conn.auth("XOAUTH2", lambda challenge=None: xoauth2_message(MS_USER, "wrong-token"))
    conn.close()
    server.close()
