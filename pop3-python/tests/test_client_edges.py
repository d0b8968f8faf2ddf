"""The sans-IO pop3.Client at its edges, without sockets: limits configured
to their extremes, text from a hostile server, errors of the right type."""

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
