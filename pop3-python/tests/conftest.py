"""Shared fixtures: a real Dovecot (started by the workspace's `local-dovecot`
binary) and scripted hostile servers on loopback."""

import json
import os
import pathlib
import socket
import ssl
import subprocess
import threading
from typing import Callable, List, Optional

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _local_dovecot() -> str:
    path = os.environ.get("POP3_LOCAL_DOVECOT") or str(REPO / "target" / "debug" / "local-dovecot")
    if not os.path.exists(path):
        raise RuntimeError(
            f"{path} is missing: run `cargo build -p test-support --bin local-dovecot` "
            "(scripts/test-python does) or set POP3_LOCAL_DOVECOT"
        )
    return path


class Dovecot:
    """A running Dovecot with one user; `messages` are the files of its
    maildrop in message-number order, read before any session started."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [_local_dovecot(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("local-dovecot exited before printing its address")
        info = json.loads(line)
        self.host: str = info["host"]
        self.plain_port: int = info["plain_port"]
        self.tls_port: int = info["tls_port"]
        self.user: str = info["user"]
        self.password: str = info["password"]
        self.ca: str = info["ca"]
        self.maildir = pathlib.Path(info["maildir"])
        self.messages: List[bytes] = [p.read_bytes() for p in self._files()]
        assert len(self.messages) == info["messages"]

    def _files(self) -> List[pathlib.Path]:
        files = [p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir()]
        return sorted(files, key=lambda p: int(p.name.split(".", 1)[0]))

    def context(self) -> ssl.SSLContext:
        """A verifying context that trusts the test CA."""
        return ssl.create_default_context(cafile=self.ca)

    def port(self, tls: str) -> int:
        return self.tls_port if tls == "implicit" else self.plain_port

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def dovecot():
    """The sample mailbox plus a few larger generated messages. Tests using it
    must leave the maildrop as they found it (RSET, never QUIT after DELE)."""
    server = Dovecot("--sample", "--messages", "4", "--size", "70000")
    yield server
    server.stop()


@pytest.fixture
def fresh_dovecot():
    """A Dovecot of its own, for tests that delete messages."""
    server = Dovecot("--sample")
    yield server
    server.stop()


# ----- scripted servers -----


class Peer:
    """The server's side of one scripted connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next command line, without CRLF (b"" at end of stream)."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                return b""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def expect(self, prefix: bytes) -> bytes:
        line = self.line()
        assert line.upper().startswith(prefix), (line, prefix)
        return line

    def start_tls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_side=True)


class Scripted:
    """A loopback server running `script(peer)` for each accepted connection
    in a thread; `tls_context` makes it implicit TLS."""

    def __init__(
        self,
        script: Callable[[Peer], None],
        tls_context: Optional[ssl.SSLContext] = None,
        connections: int = 1,
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.host = "127.0.0.1"
        self.errors: List[BaseException] = []
        self._script = script
        self._tls = tls_context
        self._thread = threading.Thread(target=self._run, args=(connections,), daemon=True)
        self._thread.start()

    def _run(self, connections: int) -> None:
        for _ in range(connections):
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.settimeout(30)
            try:
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_side=True)
                self._script(Peer(sock))
            except (OSError, AssertionError) as exc:
                self.errors.append(exc)
            finally:
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        self._thread.join(timeout=30)


@pytest.fixture
def scripted():
    servers: List[Scripted] = []

    def start(script, tls_context=None, connections=1) -> Scripted:
        server = Scripted(script, tls_context, connections)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory, dovecot):
    """PEM files for scripted TLS servers: `good` is signed by the test CA
    (the Dovecot's server certificate), `wrong_name` is valid only for
    wrong.example (self-signed; trusted by `wrong_name_ca`)."""
    d = tmp_path_factory.mktemp("certs")
    key = d / "wrong.key"
    cert = d / "wrong.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=wrong.example",
            "-addext", "subjectAltName=DNS:wrong.example",
        ],
        check=True,
        capture_output=True,
    )
    ssl_dir = pathlib.Path(dovecot.ca).parent
    return {
        "wrong_key": str(key),
        "wrong_cert": str(cert),
        "ssl_dir": ssl_dir,
    }


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


GREETING = b"+OK scripted server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
