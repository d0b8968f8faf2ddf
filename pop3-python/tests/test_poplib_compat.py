"""Point 8 in detail: what the drop-in does as the standard module does, and
the safety it keeps while doing it (scripted servers)."""

import poplib as standard

import pytest

from pop3 import poplib as ours
from test_hostile import LOGIN, serve

RETR = b"+OK 9 octets\r\nline\r\n..x\r\n.\r\n"


def recording(replies):
    log = []
    return log, serve(replies, log=log)


def test_server_decides_what_fits_the_state(scripted):
    """Commands the core used to refuse before login (STAT, NOOP, TOP, PASS
    without USER) are sent, and the server's answer is returned."""
    log, script = recording({b"STAT": b"+OK 2 20\r\n", b"NOOP": b"-ERR log in first\r\n", b"PASS": b"+OK\r\n", b"QUIT": b"+OK\r\n"})
    server = scripted(script)
    conn = ours.POP3(server.host, server.port, timeout=10)
    assert conn.stat() == (2, 20)
    with pytest.raises(ours.error_proto) as info:
        conn.noop()
    assert info.value.args[0] == b"-ERR log in first"
    assert conn.pass_("secret") == b"+OK"
    conn.quit()
    assert log == [b"STAT", b"NOOP", b"PASS secret", b"QUIT"]


def test_message_numbers_pass_through_as_text(scripted):
    log, script = recording({**LOGIN, b"RETR": RETR, b"DELE": b"+OK gone\r\n", b"UIDL": b"+OK foo uid\r\n"})
    server = scripted(script)
    conn = ours.POP3(server.host, server.port, timeout=10)
    assert conn.retr("foo") == (b"+OK 9 octets", [b"line", b".x"], 10)
    assert conn.dele("foo") == b"+OK gone"
    assert conn.uidl("foo") == b"+OK foo uid"
    assert conn.retr("3")[1] == [b"line", b".x"]
    # Smuggling a second command stays impossible: nothing is sent.
    with pytest.raises(ours.error_proto):
        conn.retr("1\r\nDELE 2")
    conn.quit()
    assert log == [b"RETR foo", b"DELE foo", b"UIDL foo", b"RETR 3", b"QUIT"]


def test_standard_internal_names(scripted):
    """_shortcmd/_longcmd/_putcmd/_getresp/_getlongresp with the standard
    module's signatures, .file and .sock, _MAXLINE."""
    log, script = recording({**LOGIN, b"XTND": b"+OK extended\r\n", b"XLIST": b"+OK\r\na\r\nb\r\n.\r\n", b"BAD": b"-ERR no\r\n"})
    server = scripted(script)
    conn = ours.POP3(server.host, server.port, timeout=10)
    assert conn.sock is not None and conn.file is not None
    assert conn._shortcmd("XTND XMIT") == b"+OK extended"
    assert conn._longcmd("XLIST") == (b"+OK", [b"a", b"b"], 6)
    conn._putcmd("XTND two words")
    assert conn._getresp() == b"+OK extended"
    conn._putcmd("XLIST")
    assert conn._getlongresp()[1] == [b"a", b"b"]
    with pytest.raises(ours.error_proto):
        conn._shortcmd("BAD")
    assert conn._shortcmd("USER bob") == b"+OK"
    with pytest.raises(ours.error_proto):
        conn._shortcmd("XTND a\rb")
    assert ours._MAXLINE == standard._MAXLINE
    conn.quit()
    assert conn.sock is None and conn.file is None
    assert log == [b"XTND XMIT", b"XLIST", b"XTND two words", b"XLIST", b"BAD", b"USER bob", b"QUIT"]


def test_error_proto_is_the_standard_modules_too(scripted):
    server = scripted(serve({**LOGIN, b"STAT": b"-ERR locked\r\n"}))
    conn = ours.POP3(server.host, server.port, timeout=10)
    with pytest.raises(standard.error_proto):
        conn.stat()
    assert issubclass(ours.error_proto, standard.error_proto)
    conn.close()
