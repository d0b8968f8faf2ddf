"""The sans-IO pop3.Client: events from scripted bytes, and a small blocking
driver over a socket against the real Dovecot in every TLS mode."""

import socket
import ssl
import threading

import pytest

import pop3

MODES = ["implicit", "starttls", "none"]


def drain(client):
    """Every event until the client needs data."""
    events = []
    while True:
        event = client.next_event()
        if isinstance(event, (pop3.NeedData, pop3.StartTls, pop3.Closed)):
            events.append(event)
            return events
        events.append(event)


def test_events_from_scripted_bytes():
    c = pop3.Client(encrypted=True)
    assert c.state == "greeting"
    c.receive_data(b"+OK ready <1.2@host>\r\n")
    [greeting, need] = drain(c)
    assert isinstance(greeting, pop3.Greeting)
    assert greeting.text == "ready <1.2@host>"
    assert greeting.apop_timestamp == "<1.2@host>"
    assert isinstance(need, pop3.NeedData)
    login = c.login("alice", "secret", "user")
    stat = c.stat()
    retr = c.retr(1)
    assert len({login, stat, retr}) == 3
    assert c.data_to_send() == b"USER alice\r\n"
    c.receive_data(b"+OK\r\n")
    drain(c)
    assert c.data_to_send() == b"PASS secret\r\n"
    c.receive_data(b"+OK in\r\n")
    events = drain(c)
    assert isinstance(events[0], pop3.LoggedIn) and events[0].handle == login
    assert c.state == "transaction"
    out = c.data_to_send()
    assert out == b"STAT\r\n"
    c.receive_data(b"+OK 1 7\r\n")
    [st, _] = drain(c)
    assert isinstance(st, pop3.Stat) and (st.handle, st.count, st.size) == (stat, 1, 7)
    assert c.data_to_send() == b"RETR 1\r\n"
    c.receive_data(b"+OK\r\nHi\r\n..\r\n")
    c.receive_data(b".\r\n")
    events = drain(c)
    assert isinstance(events[0], pop3.BodyStart) and events[0].handle == retr
    body = b"".join(e.data for e in events if isinstance(e, pop3.BodyChunk))
    assert body == b"Hi\r\n.\r\n"
    assert isinstance(events[-2], pop3.BodyEnd) and events[-2].handle == retr
    dele = c.dele(1)
    c.data_to_send()
    c.receive_data(b"-ERR [SYS/TEMP] later\r\n")
    [err, _] = drain(c)
    assert isinstance(err, pop3.Err)
    assert (err.handle, err.code, err.text) == (dele, "SYS/TEMP", "later")
    assert "SYS/TEMP" in repr(err)
    q = c.quit()
    assert c.data_to_send() == b"QUIT\r\n"
    c.receive_data(b"+OK bye\r\n")
    events = drain(c)
    assert isinstance(events[0], pop3.Ok) and events[0].handle == q
    assert isinstance(events[-1], pop3.Closed)
    assert c.state == "closed"


def logged_in(c):
    c.login("a", "b", "user")
    assert c.data_to_send() == b"USER a\r\n"
    c.receive_data(b"+OK\r\n")
    drain(c)
    assert c.data_to_send() == b"PASS b\r\n"
    c.receive_data(b"+OK\r\n")
    drain(c)
    assert c.state == "transaction"


def test_listing_events():
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK hi\r\n")
    drain(c)
    logged_in(c)
    c.data_to_send()
    mine = {}
    for submit, wire, reply in [
        (lambda: c.list(), b"LIST\r\n", b"+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n"),
        (lambda: c.uidl(2), b"UIDL 2\r\n", b"+OK 2 abc\r\n"),
        (lambda: c.capa(), b"CAPA\r\n", b"+OK\r\nTOP\r\nSASL PLAIN LOGIN\r\nIMPLEMENTATION x y\r\n.\r\n"),
    ]:
        h = submit()
        assert c.data_to_send() == wire
        c.receive_data(reply)
        [event, _] = drain(c)
        assert event.handle == h
        mine[h] = event
    lst, uidl, capa = mine
    assert [(e.msg, e.size) for e in mine[lst].entries] == [(1, 10), (2, 20)]
    assert [(e.msg, e.uid) for e in mine[uidl].entries] == [(2, "abc")]
    assert mine[capa].capabilities == {"TOP": [], "SASL": ["PLAIN", "LOGIN"], "IMPLEMENTATION": ["x", "y"]}


def test_usage_errors_send_nothing():
    c = pop3.Client()
    c.receive_data(b"+OK hi\r\n")
    drain(c)
    with pytest.raises(pop3.UsageError):
        c.login("alice", "secret", "user")  # plaintext credentials
    with pytest.raises(pop3.UsageError):
        c.retr(0)
    with pytest.raises(pop3.UsageError):
        c.stat()  # not logged in
    c2 = pop3.Client(allow_plaintext_credentials=True)
    with pytest.raises(pop3.UsageError):
        c2.user("bob\r\nDELE 1")
    assert c.data_to_send() == b"" and c2.data_to_send() == b""
    assert issubclass(pop3.UsageError, pop3.Error)
    assert issubclass(pop3.ProtocolError, pop3.Error)
    assert issubclass(pop3.ServerError, pop3.Error)


def test_protocol_errors_are_fatal_and_sticky():
    c = pop3.Client()
    c.receive_data(b"HELLO I am not POP3\r\n")
    for _ in range(2):
        with pytest.raises(pop3.ProtocolError):
            c.next_event()
    assert c.error


def test_stls_injection_is_refused():
    c = pop3.Client()
    c.receive_data(b"+OK hi\r\n")
    drain(c)
    h = c.stls()
    assert c.data_to_send() == b"STLS\r\n"
    c.receive_data(b"+OK go\r\n+OK forged\r\n")
    with pytest.raises(pop3.ProtocolError):
        drain(c)


def test_stls_then_tls_established():
    c = pop3.Client()
    c.receive_data(b"+OK hi\r\n")
    drain(c)
    h = c.stls()
    c.data_to_send()
    c.receive_data(b"+OK go\r\n")
    events = drain(c)
    # The STLS completes with its +OK, as in C (test_tls_upgrade.py).
    assert isinstance(events[0], pop3.Ok) and events[0].handle == h
    assert isinstance(events[-1], pop3.StartTls)
    # Repeated until the handshake is reported.
    assert isinstance(c.next_event(), pop3.StartTls)
    c.tls_established()
    assert c.is_encrypted
    assert c.data_to_send() == b"CAPA\r\n"


def test_eof_in_the_middle_of_a_reply():
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK hi\r\n")
    drain(c)
    logged_in(c)
    c.retr(1)
    c.data_to_send()
    c.receive_data(b"+OK\r\npartial")
    c.receive_data(b"")
    with pytest.raises(pop3.ProtocolError):
        drain(c)


def test_client_is_usable_from_another_thread():
    c = pop3.Client()
    result = []
    t = threading.Thread(target=lambda: result.append(c.next_event()))
    t.start()
    t.join()
    assert isinstance(result[0], pop3.NeedData)


# ----- a blocking driver against Dovecot -----


class Driver:
    """The smallest complete driver: socket I/O, TLS when told."""

    def __init__(self, dovecot, tls):
        self.dovecot = dovecot
        self.sock = socket.create_connection((dovecot.host, dovecot.port(tls)), timeout=30)
        if tls == "implicit":
            self.sock = dovecot.context().wrap_socket(self.sock, server_hostname=dovecot.host)
        self.client = pop3.Client(encrypted=tls == "implicit", allow_plaintext_credentials=tls == "none")

    def until(self, handle):
        """Events of `handle` up to its completion."""
        mine = []
        while True:
            out = self.client.data_to_send()
            if out:
                self.sock.sendall(out)
            event = self.client.next_event()
            if isinstance(event, pop3.NeedData):
                self.client.receive_data(self.sock.recv(65536))
            elif isinstance(event, pop3.StartTls):
                self.sock = self.dovecot.context().wrap_socket(self.sock, server_hostname=self.dovecot.host)
                self.client.tls_established()
            elif isinstance(event, pop3.Closed):
                return mine + [event]
            elif getattr(event, "handle", None) == handle:
                mine.append(event)
                if not isinstance(event, (pop3.BodyStart, pop3.BodyChunk)):
                    return mine
            elif isinstance(event, pop3.Greeting) and handle is None:
                return [event]


@pytest.mark.parametrize("tls", MODES)
def test_sans_io_against_dovecot(dovecot, tls):
    d = Driver(dovecot, tls)
    [greeting] = d.until(None)
    assert isinstance(greeting, pop3.Greeting)
    if tls == "starttls":
        done = d.until(d.client.start_tls())
        assert isinstance(done[-1], pop3.TlsEstablished)
        assert d.client.is_encrypted
    [ok] = d.until(d.client.login(dovecot.user, dovecot.password, "user"))
    assert isinstance(ok, pop3.LoggedIn)
    [bad] = d.until(d.client.retr(999))
    assert isinstance(bad, pop3.Err)
    for n, on_disk in enumerate(dovecot.messages, start=1):
        events = d.until(d.client.retr(n))
        assert b"".join(e.data for e in events if isinstance(e, pop3.BodyChunk)) == on_disk
    handles = d.client.retr_many(list(range(1, len(dovecot.messages) + 1)))
    for h, on_disk in zip(handles, dovecot.messages):
        events = d.until(h)
        assert b"".join(e.data for e in events if isinstance(e, pop3.BodyChunk)) == on_disk
    events = d.until(d.client.quit())
    assert isinstance(events[0], pop3.Ok)
    d.sock.close()


def test_discard_and_trace():
    c = pop3.Client(encrypted=True, trace=True)
    c.receive_data(b"+OK hi\r\n")
    events = drain(c)
    assert isinstance(events[0], pop3.Trace) and events[0].direction == "received"
    c.login("a", "secret", "user")
    c.data_to_send()
    c.receive_data(b"+OK\r\n")
    drain(c)
    c.data_to_send()
    c.receive_data(b"+OK\r\n")
    events = drain(c)
    c.data_to_send()
    traces = [e for e in events if isinstance(e, pop3.Trace)]
    sent = [e.line for e in traces if e.direction == "sent"]
    assert all("secret" not in line for line in sent)
    r = c.retr(1)
    n = c.noop()
    out = c.data_to_send()
    assert out.startswith(b"RETR 1\r\n")
    c.receive_data(b"+OK\r\nbody line\r\n")
    c.discard(r)
    c.receive_data(b"more\r\n.\r\n")
    if b"NOOP" not in out:
        c.data_to_send()
    c.receive_data(b"+OK noop\r\n")
    events = [e for e in drain(c) if not isinstance(e, (pop3.Trace, pop3.NeedData))]
    assert not any(getattr(e, "handle", None) == r and isinstance(e, pop3.BodyEnd) for e in events)
    assert any(isinstance(e, pop3.Ok) and e.handle == n for e in events)


def test_status_line_of_each_event_from_the_core():
    """Client.status_line is the status line of the reply the event last
    returned came from, as the core read it (sanitised), even when several
    pipelined replies arrived at once: the drop-in returns it as the
    standard module returns the line."""
    c = pop3.Client(encrypted=True)
    assert c.status_line is None
    c.receive_data(b"+OK ready <1.2@host>\r\n")
    drain(c)
    assert c.status_line == "+OK ready <1.2@host>"
    logged_in(c)
    c.capa()
    c.data_to_send()
    c.receive_data(b"+OK\r\nPIPELINING\r\n.\r\n")
    drain(c)
    stat, retr, lst, bad = c.stat(), c.retr(1), c.list(), c.dele(9)
    assert c.data_to_send() == b"STAT\r\nRETR 1\r\nLIST\r\nDELE 9\r\n"
    c.receive_data(
        b"+OK 1 10\r\n+OK 10 octets\r\nHi\r\n.\r\n+OK 1 messages (10 octets)\r\n1 10\r\n.\r\n"
        b"-ERR [SYS/TEMP] \x1b[2Jno such message\r\n"
    )
    seen = {}
    while True:
        event = c.next_event()
        if isinstance(event, pop3.NeedData):
            break
        if isinstance(event, (pop3.Stat, pop3.BodyEnd, pop3.Listing, pop3.Err)):
            seen[event.handle] = c.status_line
    assert seen == {
        stat: "+OK 1 10",
        retr: "+OK 10 octets",
        lst: "+OK 1 messages (10 octets)",
        # The terminal escape is replaced, by the core's one rule.
        bad: "-ERR [SYS/TEMP] \ufffd[2Jno such message",
    }


@pytest.mark.parametrize(
    "refusal",
    [
        b"-ERR Logon failure: unknown user name or bad password.\r\n",
        b"-ERR [AUTH] Authentication failed.\r\n",
    ],
)
def test_a_refused_login_is_authentication_refused_with_or_without_a_code(refusal):
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK ready\r\n")
    drain(c)
    login = c.login("alice", "secret", "user")
    assert c.data_to_send() == b"USER alice\r\n"
    c.receive_data(b"+OK\r\n")
    drain(c)
    assert c.data_to_send() == b"PASS secret\r\n"
    c.receive_data(refusal)
    [err, _] = drain(c)
    assert isinstance(err, pop3.Err) and err.handle == login
    assert err.authentication_refused
    error = pop3.ServerError.from_event(err)
    assert isinstance(error, pop3.AuthenticationRefused)
    assert isinstance(error, pop3.ServerError)


def test_a_busy_mailbox_and_other_refusals_are_not_authentication_refused():
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK ready\r\n")
    drain(c)
    c.login("alice", "secret", "user")
    c.data_to_send()
    c.receive_data(b"+OK\r\n")
    drain(c)
    c.data_to_send()
    c.receive_data(b"-ERR [IN-USE] locked\r\n")
    [busy, _] = drain(c)
    assert not busy.authentication_refused
    assert type(pop3.ServerError.from_event(busy)) is pop3.ServerError
