"""The drop-in's memory and time bounds against scripted servers: CAPA goes
through the core's limits, the line splitter is linear, `_MAXLINE` is
honoured like the standard module's."""

import resource
import time

import pytest

from pop3 import poplib as ours
from pop3.poplib import _LineSplitter
from test_hostile import LOGIN, serve


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def million_line_capa(peer, line):
    peer.send(b"+OK\r\n")
    block = b"".join(b"X-CAPABILITY-%07d\r\n" % i for i in range(10_000))
    for _ in range(100):
        peer.send(block)
    return b".\r\n"


def test_million_line_capa_is_refused_with_memory_bounded(scripted):
    """Point 9: a CAPA of a million lines (21 MiB) raises error_proto once
    past the core's CAPA limit, holding no more than a small buffer (the
    Python collection used to cost 242 MiB), and the session goes on."""
    server = scripted(serve({**LOGIN, b"CAPA": million_line_capa}))
    conn = ours.POP3(server.host, server.port, timeout=30)
    before = rss_mib()
    with pytest.raises(ours.error_proto) as info:
        conn.capa()
    assert "capa" in str(info.value).lower() or "line" in str(info.value).lower()
    assert rss_mib() - before < 32
    assert conn.user("alice") == b"+OK"
    conn.close()


def test_long_capa_line_is_refused_quickly(scripted):
    """Point 9: one 64 MiB CAPA line is read to its end and dropped, in
    linear time (it took 15 s when Python collected the reply)."""

    def long_line(peer, line):
        peer.send(b"+OK\r\nSASL ")
        block = b"A" * (1 << 20)
        for _ in range(64):
            peer.send(block)
        return b"\r\n.\r\n"

    server = scripted(serve({**LOGIN, b"CAPA": long_line}))
    conn = ours.POP3(server.host, server.port, timeout=30)
    start = time.monotonic()
    with pytest.raises(ours.error_proto):
        conn.capa()
    assert time.monotonic() - start < 10
    assert conn.user("alice") == b"+OK"
    conn.close()


def test_line_splitter_is_linear_in_a_long_line():
    """Point 9: a 64 MiB message line in 64 KiB chunks is joined once, not
    copied again with every chunk (1024 chunks: 32 GiB of copying before)."""
    splitter = _LineSplitter()
    piece = b"a" * 65536
    start = time.monotonic()
    for _ in range(1024):
        splitter.feed(piece)
    splitter.feed(b"\r\nnext\r")
    splitter.feed(b"\nlast")
    lines = splitter.finish()
    assert time.monotonic() - start < 5
    assert [len(x) for x in lines] == [64 << 20, 4, 4]
    assert lines[1:] == [b"next", b"last"]


def test_retr_of_a_long_line_message(scripted):
    """Point 9, end to end: RETR of a message with one 16 MiB line."""
    body = b"Subject: x\r\n\r\n" + b"b" * (16 << 20) + b"\r\n"

    def retr(peer, line):
        return b"+OK\r\n" + body + b".\r\n"

    server = scripted(serve({**LOGIN, b"RETR": retr}))
    conn = ours.POP3(server.host, server.port, timeout=30)
    conn.user("u")
    conn.pass_("p")
    start = time.monotonic()
    resp, lines, octets = conn.retr(1)
    assert time.monotonic() - start < 10
    assert lines == [b"Subject: x", b"", b"b" * (16 << 20)]
    assert octets == len(body)
    conn.close()


def test_maxline_is_honoured_like_the_standard_module(scripted, monkeypatch):
    """Point 9: status lines longer than `_MAXLINE` raise error_proto (the
    session goes on); a program that raises `_MAXLINE` gets longer ones."""
    long_noop = b"+OK " + b"x" * 3000 + b"\r\n"
    server = scripted(serve({**LOGIN, b"NOOP": long_noop, b"RSET": b"+OK\r\n"}), connections=2)
    conn = ours.POP3(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    with pytest.raises(ours.error_proto):
        conn.noop()
    assert conn.rset() == b"+OK"
    conn.close()
    monkeypatch.setattr(ours, "_MAXLINE", 4096)
    conn = ours.POP3(server.host, server.port, timeout=10)
    conn.user("u")
    conn.pass_("p")
    assert conn.noop() == long_noop.rstrip()
    conn.close()
