"""The sans-IO pop3.Client at its edges, without sockets: limits configured
to their extremes, text from a hostile server, errors of the right type."""

import base64

import pytest

import pop3

MAX = 2**64 - 1

SESSION = [
    (None, b"+OK ready <1.2@host>\r\n"),
    ("USER", b"+OK\r\n"),
    ("PASS", b"+OK in\r\n"),
    ("LIST", b"+OK 2 messages\r\n1 120\r\n2 5\r\n.\r\n"),
    ("RETR", b"+OK\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"),
]


def run_split(client, step):
    """Drives the scripted session feeding the server's bytes `step` at a
    time; returns the events of interest."""
    events = []

    def pump(reply):
        for i in range(0, len(reply), step):
            client.receive_data(reply[i : i + step])
            while True:
                event = client.next_event()
                if isinstance(event, (pop3.NeedData, pop3.Closed)):
                    break
                events.append(event)

    pump(SESSION[0][1])
    client.login("alice", "secret", "user")
    client.list()
    client.retr(1)
    for verb, reply in SESSION[1:]:
        assert client.data_to_send().startswith(verb.encode())
        pump(reply)
    return events


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_limits_at_their_extremes_split_reads_work(step):
    """Point 13: every limit at 2**64-1 neither panics nor breaks framing,
    whatever the split of the server's bytes."""
    client = pop3.Client(
        encrypted=True,
        max_line_len=MAX,
        max_listing_lines=MAX,
        max_listing_bytes=MAX,
        max_body_line_len=MAX,
        pipeline_window=MAX,
        read_size=MAX,
    )
    events = run_split(client, step)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Greeting" and "LoggedIn" in kinds and "BodyEnd" in kinds
    [listing] = [e for e in events if isinstance(e, pop3.Listing)]
    assert [(e.msg, e.size) for e in listing.entries] == [(1, 120), (2, 5)]
    body = b"".join(e.data for e in events if isinstance(e, pop3.BodyChunk))
    assert body == b"Subject: x\r\n\r\n.dot\r\nbody\r\n"


@pytest.mark.parametrize("value", [0, 1])
def test_limits_at_their_lowest(value):
    """Point 13, the other end: tiny limits fail replies, never the process."""
    client = pop3.Client(
        encrypted=True,
        max_line_len=value,
        max_listing_lines=value,
        max_listing_bytes=value,
        max_body_line_len=value,
        pipeline_window=value,
        read_size=value,
    )
    try:
        run_split(client, 3)
    except (pop3.ProtocolError, pop3.UsageError):
        pass


def test_negative_or_huge_limits_are_a_python_error():
    with pytest.raises(OverflowError):
        pop3.Client(max_line_len=-1)
    with pytest.raises(OverflowError):
        pop3.Client(max_line_len=2**64)


# ----- point 12: server text is terminal-safe -----

EVIL_UTF8 = "\x1b[31m\u202eevil\x07\u200b\x9b".encode()
EVIL = EVIL_UTF8 + b"\xff"


def strings_of(obj):
    """Every str an event carries, in attributes, dicts, lists and tuples."""
    found = []

    def walk(value):
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif hasattr(value, "__match_args__"):
            for name in value.__match_args__:
                walk(getattr(value, name))

    walk(obj)
    return found


def collect(client, texts):
    while True:
        try:
            event = client.next_event()
        except pop3.Error as exc:
            texts.append(str(exc))
            return
        if isinstance(event, (pop3.NeedData, pop3.Closed, pop3.StartTls)):
            return
        texts.extend(strings_of(event))


def exchange(client, texts, submit, reply):
    submit(client)
    client.data_to_send()
    client.receive_data(reply)
    collect(client, texts)


def test_server_text_reaching_python_is_terminal_safe():
    """Point 12: escapes, C1 controls, bidirectional overrides, invisible
    characters and invalid UTF-8 from the server never reach Python as
    such: event text, response codes, capabilities, languages, the trace,
    failures, fatal errors and SCRAM's e= all follow the core's rule."""
    texts = []
    c = pop3.Client(encrypted=True, trace=True)
    c.receive_data(b"+OK " + EVIL + b" <1.2@h>\r\n")
    collect(c, texts)
    exchange(c, texts, lambda c: c.login("u", "p", "user"), b"+OK " + EVIL + b"\r\n")
    c.data_to_send()
    c.receive_data(b"+OK " + EVIL + b"\r\n")
    collect(c, texts)
    exchange(c, texts, lambda c: c.capa(), b"+OK\r\nX-" + EVIL + b" a" + EVIL + b"\r\n.\r\n")
    exchange(c, texts, lambda c: c.noop(), b"-ERR [SYS/" + EVIL + b"] " + EVIL + b"\r\n")
    exchange(c, texts, lambda c: c.lang(), b"+OK\r\nen " + EVIL + b"\r\n.\r\n")
    exchange(c, texts, lambda c: c.uidl(), b"+OK\r\n1 " + EVIL + b"\r\n.\r\n")
    exchange(c, texts, lambda c: c.stat(), b"+OK x " + EVIL + b"\r\n")
    exchange(c, texts, lambda c: c.noop(), EVIL + b"\r\n")
    scram = pop3.Client(encrypted=True)
    scram.receive_data(b"+OK hi\r\n")
    collect(scram, texts)
    nonce = "abcdefghijklmnopqrstuvwx"
    scram.login("u", "p", "scram-sha-256", scram_nonce=nonce)
    scram.data_to_send()
    first = b"r=" + nonce.encode() + b"SERVER,s=" + base64.b64encode(b"salt") + b",i=4096"
    scram.receive_data(b"+ " + base64.b64encode(first) + b"\r\n")
    collect(scram, texts)
    assert scram.data_to_send()
    scram.receive_data(b"+ " + base64.b64encode(b"e=" + EVIL_UTF8) + b"\r\n")
    collect(scram, texts)
    scram.data_to_send()
    scram.receive_data(b"-ERR " + EVIL + b"\r\n")
    collect(scram, texts)

    evil_ones = [t for t in texts if "evil" in t]
    # Greeting, login, capabilities, -ERR and its code, language, the
    # trace, the fatal error, SCRAM's e=: each arrived.
    assert len(evil_ones) >= 12, texts
    assert any("SCRAM" in t and "evil" in t for t in texts), texts
    for text in texts:
        assert pop3.safe_text(text) == text, repr(text)
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text), repr(text)
        assert "\u202e" not in text and "\u200b" not in text


def test_safe_text_is_the_cores_rule():
    assert pop3.safe_text(b"a\x1b[1m\xff\tb") == "a\ufffd[1m\ufffd b"
    assert pop3.safe_text("\u202eok") == "\ufffdok"


# ----- point 11: the server's doing is a ProtocolError -----


def test_commands_after_the_server_broke_the_protocol_raise_protocol_error():
    """Point 11: once the server broke the protocol, submitting a command is
    refused as ProtocolError (the server's doing), not UsageError."""
    c = pop3.Client(encrypted=True)
    c.receive_data(b"+OK hi\r\n")
    collect(c, [])
    c.capa()
    c.data_to_send()
    c.receive_data(b"garbage\r\n")
    with pytest.raises(pop3.ProtocolError):
        c.next_event()
    with pytest.raises(pop3.ProtocolError):
        c.noop()
    # What is the caller's stays a UsageError.
    with pytest.raises(pop3.UsageError):
        pop3.Client().retr(0)


def test_event_is_a_real_name():
    """Point 11: pop3.Event exists at run time, not only in the stub."""
    import typing

    classes = typing.get_args(pop3.Event)
    assert pop3.Greeting in classes and pop3.Cancelled in classes
    assert len(classes) == 19
