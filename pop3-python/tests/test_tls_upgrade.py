"""The STLS upgrade as the core runs it, in every Python layer: a failed
handshake ends the session through the core (``Client.tls_failed``), a
plain STLS is reported as the C ABI reports it, and a login queued behind
STLS gets the channel binding after the handshake."""

import asyncio
import socket
import ssl

import pytest

import pop3
import pop3.aio
from pop3 import poplib as ours
from conftest import GREETING

CAPA_STLS = b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"


def garbage_instead_of_tls(peer):
    """Accepts STLS, reads the ClientHello and answers it with plaintext."""
    peer.send(b"+OK begin TLS\r\n")
    peer.sock.recv(65536)
    peer.send(b"this is not a TLS record\r\n" * 8)


def hang_up_instead_of_tls(peer):
    """Accepts STLS, reads the ClientHello and closes the connection."""
    peer.send(b"+OK begin TLS\r\n")
    peer.sock.recv(65536)
    peer.sock.shutdown(socket.SHUT_RDWR)


def stls_server(upgrade):
    def script(peer):
        peer.send(GREETING)
        while True:
            line = peer.line()
            if not line:
                return
            verb = line.split()[0].upper()
            if verb == b"CAPA":
                peer.send(CAPA_STLS)
            elif verb == b"STLS":
                upgrade(peer)
                # Wait for the client to give up (or for the socket's timeout:
                # the tests' own timeouts are shorter).
                try:
                    while peer.sock.recv(65536):
                        pass
                except OSError:
                    pass
                return
            else:
                peer.send(b"-ERR no\r\n")

    return script


UPGRADES = [garbage_instead_of_tls, hang_up_instead_of_tls]


def drain(client):
    events = []
    while True:
        event = client.next_event()
        events.append(event)
        if isinstance(event, (pop3.NeedData, pop3.StartTls, pop3.Closed)):
            return events


@pytest.mark.parametrize("upgrade", UPGRADES)
def test_sans_io_client_failed_handshake_ends_the_session(scripted, upgrade):
    """A driver that reports the failed handshake with tls_failed(): the
    start_tls() handle fails, the login queued behind it is cancelled, and
    then the client raises ProtocolError instead of asking for TLS again."""
    server = scripted(stls_server(upgrade))
    sock = socket.create_connection((server.host, server.port), timeout=10)
    client = pop3.Client()
    op = None
    login = None
    try:
        while True:
            out = client.data_to_send()
            if out:
                sock.sendall(out)
            event = client.next_event()
            if isinstance(event, pop3.Greeting):
                op = client.start_tls()
                login = client.login("u", "p", "auto")
            elif isinstance(event, pop3.NeedData):
                client.receive_data(sock.recv(65536))
            elif isinstance(event, pop3.StartTls):
                with pytest.raises((ssl.SSLError, OSError)):
                    ssl.create_default_context().wrap_socket(sock, server_hostname="localhost")
                client.tls_failed()
                break
        events = []
        with pytest.raises(pop3.ProtocolError, match="TLS handshake after STLS failed"):
            while True:
                events.append(client.next_event())
        assert any(isinstance(e, pop3.Failed) and e.handle == op for e in events), events
        assert any(isinstance(e, pop3.Cancelled) and e.handle == login for e in events), events
        assert client.state == "closed"
        # Sticky, and nothing more to send.
        with pytest.raises(pop3.ProtocolError):
            client.next_event()
        with pytest.raises(pop3.ProtocolError):
            client.tls_failed()
    finally:
        sock.close()


def test_sans_io_end_of_stream_during_the_upgrade():
    """End of stream between StartTls and the handshake's end: the same
    ending, by the core alone (UnexpectedEof)."""
    client = pop3.Client()
    client.receive_data(GREETING)
    drain(client)
    op = client.start_tls()
    assert client.data_to_send() == b"CAPA\r\n"
    client.receive_data(CAPA_STLS)
    drain(client)
    assert client.data_to_send() == b"STLS\r\n"
    client.receive_data(b"+OK go\r\n")
    assert isinstance(drain(client)[-1], pop3.StartTls)
    client.receive_data(b"")
    events = []
    with pytest.raises(pop3.ProtocolError, match="closed the connection"):
        while True:
            events.append(client.next_event())
    assert any(isinstance(e, pop3.Failed) and e.handle == op for e in events), events
    assert client.state == "closed"


@pytest.mark.parametrize("upgrade", UPGRADES)
def test_aio_failed_handshake_ends_the_session(scripted, upgrade):
    server = scripted(stls_server(upgrade))

    async def main():
        conn = await pop3.aio.connect(server.host, server.port, tls="none", timeout=10)
        with pytest.raises((ssl.SSLError, OSError)):
            await conn.start_tls()
        # The core was told: the session is over, with the reason.
        assert conn.client.state == "closed"
        assert "TLS handshake after STLS failed" in (conn.client.error or "")
        with pytest.raises(pop3.Error):
            await conn.noop()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert not server.errors


@pytest.mark.parametrize("upgrade", UPGRADES)
def test_poplib_failed_handshake_ends_the_session(scripted, upgrade):
    server = scripted(stls_server(upgrade))
    conn = ours.POP3(server.host, server.port, timeout=10)
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            conn.stls()
        # Every later command: the drop-in's exception, at once, nothing sent.
        with pytest.raises(ours.error_proto, match="TLS handshake after STLS failed"):
            conn.noop()
        with pytest.raises(ours.error_proto, match="TLS handshake after STLS failed"):
            conn.stat()
    finally:
        conn.close()
    assert not server.errors


def test_plain_stls_is_reported_as_the_c_abi_reports_it():
    """A STLS submitted on its own completes with its +OK (C:
    POP3_EVENT_OK with POP3_REPLY_START_TLS), then StartTls, which names
    no command (C: POP3_EVENT_START_TLS), asks for the handshake; after
    tls_established() nothing more comes for the STLS handle."""
    client = pop3.Client()
    client.receive_data(GREETING)
    drain(client)
    h = client.stls()
    assert client.data_to_send() == b"STLS\r\n"
    client.receive_data(b"+OK go\r\n")
    events = drain(client)
    assert [type(e) for e in events] == [pop3.Ok, pop3.StartTls], events
    assert events[0].handle == h
    assert events[1].handle is None
    client.tls_established()
    assert client.is_encrypted
    # The core asks CAPA again over TLS; nothing for the STLS handle.
    assert client.data_to_send() == b"CAPA\r\n"
    client.receive_data(b"+OK\r\nUSER\r\n.\r\n")
    events = drain(client)
    assert not [e for e in events if getattr(e, "handle", None) == h], events


def test_login_queued_behind_stls_gets_the_channel_binding(certs):
    """A login submitted before the handshake could name the certificate:
    bind_pending_logins() after tls_established() gives it the binding, so
    "auto" picks SCRAM-SHA-256-PLUS as it does for a login after TLS."""
    pem = (certs["ssl_dir"] / "server.pem").read_text()
    der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN") :])

    def mechanism(bind):
        client = pop3.Client()
        client.receive_data(GREETING)
        drain(client)
        client.start_tls()
        client.login("alice", "secret", "auto", scram_nonce="n" * 24)
        assert client.data_to_send() == b"CAPA\r\n"
        client.receive_data(CAPA_STLS)
        drain(client)
        assert client.data_to_send() == b"STLS\r\n"
        client.receive_data(b"+OK go\r\n")
        assert isinstance(drain(client)[-1], pop3.StartTls)
        client.tls_established()
        if bind:
            assert client.bind_pending_logins(der) == 1
        assert client.data_to_send() == b"CAPA\r\n"
        client.receive_data(b"+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\nUSER\r\n.\r\n")
        drain(client)
        return client.data_to_send().split(b" ")[1]

    assert mechanism(bind=True) == b"SCRAM-SHA-256-PLUS"
    assert mechanism(bind=False) == b"SCRAM-SHA-256"
    # A certificate the core cannot read gives no binding (as login()).
    assert pop3.Client().bind_pending_logins(b"not a certificate") == 0
