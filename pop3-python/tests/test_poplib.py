"""pop3.poplib against the standard poplib, on the same Dovecot, method by
method: same return values, same exceptions for -ERR."""

import io
import poplib as std
import re
import ssl
import sys

import pytest

import pop3
from pop3 import poplib as ours

MODES = ["implicit", "starttls", "none"]


def open_session(mod, dovecot, tls):
    if tls == "implicit":
        return mod.POP3_SSL(dovecot.host, dovecot.tls_port, context=dovecot.context(), timeout=30)
    conn = mod.POP3(dovecot.host, dovecot.plain_port, timeout=30)
    if tls == "starttls":
        assert conn.stls(dovecot.context()).startswith(b"+OK")
    return conn


def outcome(call):
    """The return value, or the exception's type name and arguments."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        kind = "error_proto" if isinstance(exc, (std.error_proto, ours.error_proto)) else type(exc).__name__
        return ("raised", kind, exc.args)


def run_script(mod, dovecot, tls, login="user"):
    conn = open_session(mod, dovecot, tls)
    results = []
    results.append(("welcome", re.sub(rb"<[^>]*>", b"<ts>", conn.getwelcome())))
    results.append(("capa", outcome(conn.capa)))
    if tls != "none":
        results.append(("stls again", outcome(lambda: conn.stls(dovecot.context()))))
    if login == "user":
        results.append(("user", outcome(lambda: conn.user(dovecot.user))))
        results.append(("pass_", outcome(lambda: conn.pass_(dovecot.password))))
    else:
        results.append(("apop", outcome(lambda: conn.apop(dovecot.user, dovecot.password))))
    count = len(dovecot.messages)
    for name, call in [
        ("capa after login", conn.capa),
        ("stat", conn.stat),
        ("list", conn.list),
        ("list 2", lambda: conn.list(2)),
        ("list '3' as str", lambda: conn.list("3")),
        ("list 999", lambda: conn.list(999)),
        ("uidl", conn.uidl),
        ("uidl 3", lambda: conn.uidl(3)),
        ("uidl 999", lambda: conn.uidl(999)),
        ("top 4 2", lambda: conn.top(4, 2)),
        ("top 1 0", lambda: conn.top(1, 0)),
        ("top 999 1", lambda: conn.top(999, 1)),
        ("retr 999", lambda: conn.retr(999)),
        ("noop", conn.noop),
        ("dele 1", lambda: conn.dele(1)),
        ("retr deleted", lambda: conn.retr(1)),
        ("dele 1 again", lambda: conn.dele(1)),
        ("stat after dele", conn.stat),
        ("rset", conn.rset),
        ("dele 999", lambda: conn.dele(999)),
        ("utf8 after login", conn.utf8),
        ("rpop", lambda: conn.rpop(dovecot.user)),
    ]:
        results.append((name, outcome(call)))
    for n in range(1, count + 1):
        results.append((f"retr {n}", outcome(lambda n=n: conn.retr(n))))
    results.append(("quit", outcome(conn.quit)))
    return results


def assert_same(expected, actual):
    assert [name for name, _ in actual] == [name for name, _ in expected]
    for (name, want), (_, got) in zip(expected, actual):
        if name == "utf8 after login":
            # RFC 6856 allows UTF8 only before login: the drop-in refuses it
            # without asking the server, which answers -ERR; both raise.
            assert want[:2] == got[:2] == ("raised", "error_proto"), (want, got)
            continue
        assert got == want, name


@pytest.mark.parametrize("tls", MODES)
def test_same_results_as_the_standard_module(dovecot, tls):
    assert_same(run_script(std, dovecot, tls), run_script(ours, dovecot, tls))


def test_apop_same_as_the_standard_module(dovecot):
    assert_same(
        run_script(std, dovecot, "implicit", login="apop"),
        run_script(ours, dovecot, "implicit", login="apop"),
    )


@pytest.mark.parametrize("tls", MODES)
def test_messages_match_the_files_byte_for_byte(dovecot, tls):
    conn = open_session(ours, dovecot, tls)
    conn.user(dovecot.user)
    conn.pass_(dovecot.password)
    for n, on_disk in enumerate(dovecot.messages, start=1):
        resp, lines, octets = conn.retr(n)
        assert b"\r\n".join(lines) + b"\r\n" == on_disk
        assert octets == len(on_disk)
        sink = io.BytesIO()
        resp2, written = conn.retr_to(n, sink)
        assert sink.getvalue() == on_disk
        assert written == len(on_disk)
        assert resp2 == resp
    conn.quit()


def test_wrong_password_raises_the_same_error(dovecot):
    results = []
    for mod in (std, ours):
        conn = open_session(mod, dovecot, "implicit")
        conn.user(dovecot.user)
        results.append(outcome(lambda: conn.pass_("not the password")))
        conn.quit()
    assert results[0][0] == "raised"
    assert results[1] == results[0]


def test_deletions_are_committed_by_quit(fresh_dovecot):
    d = fresh_dovecot
    conn = open_session(ours, d, "implicit")
    conn.user(d.user)
    conn.pass_(d.password)
    count, _ = conn.stat()
    assert conn.dele(1).startswith(b"+OK")
    assert conn.quit().startswith(b"+OK")
    conn = open_session(std, d, "implicit")
    conn.user(d.user)
    conn.pass_(d.password)
    assert conn.stat()[0] == count - 1
    assert b"\r\n".join(conn.retr(1)[1]) + b"\r\n" == d.messages[1]
    conn.quit()


def test_context_manager_timeout_and_attributes(dovecot):
    with ours.POP3(dovecot.host, dovecot.plain_port, timeout=7) as conn:
        assert conn.sock.gettimeout() == 7
        assert conn.timeout == 7
        assert conn.host == dovecot.host and conn.port == dovecot.plain_port
        conn.stls(dovecot.context())
        conn.user(dovecot.user)
        conn.pass_(dovecot.password)
        assert conn.stat()[0] == len(dovecot.messages)
    assert conn.sock is None
    assert ours.POP3_PORT == 110 and ours.POP3_SSL_PORT == 995
    assert ours.CRLF == b"\r\n" and ours.HAVE_SSL
    assert issubclass(ours.error_proto, pop3.Error)


def test_audit_events_and_debug_output_hide_the_password(dovecot, capsys):
    seen = []
    recording = [True]

    def hook(event, args):
        if recording[0] and event.startswith("poplib."):
            seen.append((event, args))

    sys.addaudithook(hook)
    try:
        conn = ours.POP3_SSL(dovecot.host, dovecot.tls_port, context=dovecot.context())
        conn.set_debuglevel(2)
        conn.user(dovecot.user)
        conn.pass_(dovecot.password)
        conn.quit()
    finally:
        recording[0] = False
    connects = [a for e, a in seen if e == "poplib.connect"]
    assert connects and connects[0][1:] == (dovecot.host, dovecot.tls_port)
    lines = [a[1] for e, a in seen if e == "poplib.putline"]
    assert lines[0] == b"USER " + dovecot.user.encode()
    assert b"QUIT" in lines
    out = capsys.readouterr().out
    assert "*cmd*" in out and "*put*" in out
    assert dovecot.password not in out
    assert all(dovecot.password.encode() not in line for line in lines)


def test_certificate_is_verified_without_a_context(dovecot):
    # The test CA is not in the system store: the standard module connects
    # anyway on STLS; the drop-in refuses.
    with pytest.raises(ssl.SSLCertVerificationError):
        ours.POP3_SSL(dovecot.host, dovecot.tls_port, timeout=10)
    conn = ours.POP3(dovecot.host, dovecot.plain_port, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.stls()
    conn.close()
    unsafe = std.POP3(dovecot.host, dovecot.plain_port, timeout=10)
    unsafe.stls()  # no verification at all in the standard module
    unsafe.quit()


def test_errors_before_login(dovecot):
    results = {}
    for mod in (std, ours):
        conn = open_session(mod, dovecot, "implicit")
        results[mod] = [
            outcome(conn.utf8),
            outcome(lambda: conn.rpop(dovecot.user)),
            outcome(lambda: conn.apop(dovecot.user, "not the password")),
            outcome(lambda: conn.pass_("no user yet")),
        ]
        conn.close()
    want, got = results[std], results[ours]
    assert got[:3] == want[:3]
    # PASS before USER: the server's -ERR there, refused before sending here.
    assert got[3][:2] == want[3][:2] == ("raised", "error_proto")
