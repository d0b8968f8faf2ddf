"""A drop-in replacement for the standard :mod:`poplib` module.

Change ``import poplib`` to ``from pop3 import poplib`` and a program keeps
working: the same classes (:class:`POP3`, :class:`POP3_SSL`), the same
exception (:class:`error_proto`), the same constants, and the same methods
with the same signatures and return values (``bytes`` responses, lists of
``bytes`` lines, octet counts, the :meth:`POP3.capa` dictionary, the welcome
message), plus the ``poplib.connect`` and ``poplib.putline`` audit events.

Underneath, the ``pop3-proto`` Rust core parses every reply. Where the
standard module is unsafe, this one is safe:

* Certificates and host names are verified when no SSL context is given
  (:func:`ssl.create_default_context`); the standard module then checks
  nothing.
* Bytes a man in the middle injects after the ``+OK`` to ``STLS`` and before
  the TLS handshake raise :class:`error_proto`; the standard module drops
  them silently.
* Over-long reply lines and huge listings raise :class:`error_proto` instead
  of growing memory; message bodies are streamed.
* Command arguments containing CR, LF or NUL are refused before anything is
  sent (the standard module would send a second command).
* Passwords never reach debug output or audit hooks (they are replaced by
  ``<redacted>``).

Beyond the standard module: :meth:`POP3.retr_to` streams a message into a
file without building a list of lines.
"""

import base64
import binascii
import importlib
import socket
import ssl
import sys
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from . import (
    BodyChunk,
    BodyEnd,
    BodyStart,
    Cancelled,
    Capabilities,
    Client,
    Closed,
    Err,
    Error,
    Failed,
    Greeting,
    Listing,
    LoggedIn,
    NeedData,
    Ok,
    ProtocolError,
    Stat,
    StartTls,
    TlsEstablished,
    Trace,
    UidListing,
    UsageError,
)

__all__ = ["POP3", "error_proto", "POP3_SSL"]

#: The standard POP3 port.
POP3_PORT = 110
#: The standard POP3-over-TLS port.
POP3_SSL_PORT = 995
#: Line-ending constants, as in the standard module.
CR = b"\r"
LF = b"\n"
CRLF = CR + LF
#: TLS is always available (the standard module's flag).
HAVE_SSL = True
#: Longest reply line accepted (status, listing and CAPA lines), CRLF
#: excluded, as in the standard module; read when a connection opens, so a
#: program that raises it for its server keeps working. Message lines are
#: not limited by it (bodies stream; the standard module refuses them).
_MAXLINE = 2048

# Bytes asked of the socket per read: large reads keep the per-call overhead
# small for big messages.
_READ_SIZE = 256 * 1024

_TERMINAL = (Ok, LoggedIn, Err, Stat, Listing, UidListing, Capabilities, BodyEnd, Failed, Cancelled, TlsEstablished)


def _standard_error_proto() -> type:
    """The standard module's exception, so that ``except poplib.error_proto``
    in code that still imports the standard module catches this module's
    errors too. (When this module was put in its place in ``sys.modules``
    before the standard one was ever imported, there is none to extend.)"""
    standard: Any = sys.modules.get("poplib")
    if standard is None:
        try:
            standard = importlib.import_module("poplib")
        except ImportError:
            return Exception
    if standard.__name__ == __name__ or not hasattr(standard, "error_proto"):
        return Exception
    base: type = standard.error_proto
    return base


class error_proto(Error, _standard_error_proto()):  # type: ignore[misc]
    """Raised on any error of this module: a ``-ERR`` reply (the argument is
    the reply line as ``bytes``, as in the standard module), a reply the server
    got wrong, or a refused argument. Socket errors are not caught. A
    subclass of the standard module's ``error_proto`` too."""


class POP3:
    """A POP3 connection in plaintext, like :class:`poplib.POP3`.

    The connection is opened by the constructor; the greeting is in
    :attr:`welcome`. ``timeout`` applies to connecting and every read.
    """

    encoding = "UTF-8"
    #: Longest reply line accepted, CRLF excluded; None: the module's
    #: ``_MAXLINE`` when the connection opens.
    max_line_len: Optional[int] = None
    #: Most lines accepted in a LIST or UIDL listing.
    max_listing_lines = 100_000

    def __init__(
        self,
        host: str,
        port: int = POP3_PORT,
        timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._tls_established = False
        self._debugging = 0
        # The +OK to STLS, which stls() returns as the standard module does.
        self._stls_status: Optional[bytes] = None
        sys.audit("poplib.connect", self, host, port)
        self.sock: Any = self._create_socket(timeout)
        # The standard module's reading file; every read here goes through
        # the core, so it is only there for code that checks it.
        self.file: Any = self.sock.makefile("rb")
        self._pending_line: Optional[str] = None
        # `_shortcmd("AUTH XOAUTH2")` answered `+ `: the mechanism whose
        # client message the next `_shortcmd` carries.
        self._sasl_waiting: Optional[str] = None
        self._client = Client(
            encrypted=self._tls_established,
            allow_plaintext_credentials=True,
            max_line_len=self.max_line_len if self.max_line_len is not None else _MAXLINE,
            max_listing_lines=self.max_listing_lines,
            trace=True,
            # As the standard module: the server decides whether a command
            # fits the session's state.
            state_checks=False,
        )
        self.welcome = self._read_greeting()

    # ----- plumbing -----

    def _create_socket(self, timeout: Any) -> socket.socket:
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return socket.create_connection((self.host, self.port), timeout)

    def _flush(self) -> None:
        data = self._client.data_to_send()
        if not data:
            return
        self.sock.sendall(data)

    def _next(self) -> Any:
        client = self._client
        while True:
            try:
                event = client.next_event()
            except ProtocolError as exc:
                raise error_proto(str(exc)) from exc
            if isinstance(event, NeedData):
                self._flush()
                client.receive_data(self.sock.recv(_READ_SIZE))
                continue
            if isinstance(event, StartTls):
                # The core has read nothing after the +OK to STLS.
                self._stls_status = self._status()
                self._flush()
                self._start_tls()
                continue
            if isinstance(event, Trace):
                # The core's wire trace, secrets already redacted: for the
                # debug output and the audit hook only.
                line = event.line.encode("utf-8", "replace")
                if event.direction == "sent":
                    if self._debugging > 1:
                        print("*put*", repr(line))
                    sys.audit("poplib.putline", self, line)
                elif self._debugging > 1:
                    print("*get*", repr(line))
                continue
            if isinstance(event, Closed):
                raise error_proto("-ERR connection closed")
            return event

    def _status(self) -> bytes:
        """The status line of the reply the latest event came from, as the
        core read it (sanitised by its one rule, CRLF removed): what the
        standard module returns."""
        line = self._client.status_line
        return line.encode("utf-8", "replace") if line is not None else b""

    def _submit(self, what: str, submit) -> int:
        if self._debugging:
            print("*cmd*", repr(what))
        try:
            return submit(self._client)
        except UsageError as exc:
            # Refused before sending: nothing went to the server.
            raise error_proto(f"-ERR {exc}".encode("utf-8", "replace")) from exc
        except ProtocolError as exc:
            # The session ended earlier (the server broke the protocol, or
            # the TLS handshake failed): nothing can be sent any more.
            raise error_proto(str(exc)) from exc

    def _complete(self, handle: int, sink=None, cancelled: Optional[bytes] = None) -> Any:
        """Pumps until ``handle`` completes; raises :class:`error_proto` for
        ``-ERR``, failures and cancellations (with ``cancelled`` as the
        message, when given)."""
        self._flush()
        while True:
            event = self._next()
            if getattr(event, "handle", None) != handle:
                continue
            if isinstance(event, BodyChunk):
                sink(event.data)
                continue
            if isinstance(event, BodyStart):
                continue
            if isinstance(event, Err):
                line = self._status()
                if self._debugging > 1:
                    print("*resp*", repr(line))
                raise error_proto(line)
            if isinstance(event, Failed):
                raise error_proto(event.error)
            if isinstance(event, Cancelled):
                raise error_proto(cancelled or f"-ERR {event.reason}".encode("utf-8", "replace"))
            if isinstance(event, _TERMINAL):
                return event

    def _command(self, what: str, submit) -> bytes:
        self._complete(self._submit(what, submit))
        return self._status()

    def _long_command(self, what: str, submit) -> Tuple[bytes, List[bytes], int]:
        splitter = _LineSplitter()
        self._complete(self._submit(what, submit), splitter.feed)
        return self._status(), splitter.finish(), splitter.octets

    def _raw_command(self, line: str, multiline: bool) -> Any:
        """Sends ``line`` as it is (a command the core does not model, or
        an argument that is no message number) and reads the reply: the
        status line, or with ``multiline`` ``(status, lines, octets)``."""
        verb, _, rest = line.partition(" ")
        args = rest.split(" ") if rest else []
        submit = _raw_submitter(verb, args, multiline)
        shown = f"{verb} <redacted>" if verb.upper() in ("PASS", "APOP") else line
        if multiline:
            return self._long_command(shown, submit)
        return self._command(shown, submit)

    # ----- the standard module's internal names, which programs use -----

    def _putline(self, line: bytes) -> None:
        """Sends one command line (``bytes`` without CRLF); its reply is read
        by :meth:`_getresp` or :meth:`_getlongresp`."""
        self._putcmd(line.decode(self.encoding))

    def _putcmd(self, line: str) -> None:
        """Sends one command; its reply is read by :meth:`_getresp` or
        :meth:`_getlongresp` (which say whether it is multi-line)."""
        self._pending_line = line

    def _take_pending(self) -> str:
        line, self._pending_line = self._pending_line, None
        if line is None:
            raise error_proto("-ERR no command sent")
        return line

    def _getresp(self) -> bytes:
        """The status line of the command sent by :meth:`_putcmd`."""
        line = self._take_pending()
        sasl = self._sasl_line(line)
        if sasl is not None:
            return sasl
        return self._raw_command(line, multiline=False)

    def _sasl_line(self, line: str) -> Optional[bytes]:
        """``AUTH XOAUTH2`` / ``OAUTHBEARER`` / ``PLAIN`` sent with
        :meth:`_shortcmd`, as programs written for the standard module do:
        with the client message on the same line, or answered ``+ `` and the
        message in the next ``_shortcmd``. The core runs the exchange, as for
        :meth:`auth` (the token is never traced, never sent in the clear
        unless allowed). None for any other line."""
        if self._sasl_waiting is not None:
            name, self._sasl_waiting = self._sasl_waiting, None
            if line.strip() == "*":
                raise error_proto(b"-ERR authentication cancelled (nothing was sent)")
            return self._sasl_login(name, line)
        verb, _, rest = line.partition(" ")
        name, _, message = rest.strip().partition(" ")
        name = name.upper()
        if verb.upper() != "AUTH" or name not in ("XOAUTH2", "OAUTHBEARER", "PLAIN"):
            return None
        if not message.strip():
            # Nothing goes out yet: the core sends AUTH and the message
            # together with the next line, in its own two steps.
            self._sasl_waiting = name
            return b"+ "
        return self._sasl_login(name, message)

    def _sasl_login(self, name: str, encoded: str) -> bytes:
        try:
            message = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise error_proto(f"-ERR AUTH {name}: the client message is not base64") from None
        def client_message(_challenge: Optional[bytes] = None) -> bytes:
            return message

        return self.auth(name, client_message)

    def _getlongresp(self) -> Tuple[bytes, List[bytes], int]:
        """``(status, lines, octets)`` of the multi-line reply to the command
        sent by :meth:`_putcmd`."""
        return self._raw_command(self._take_pending(), multiline=True)

    def _shortcmd(self, line: str) -> bytes:
        """Sends a command line and returns its status line, as the standard
        module's does; ``-ERR`` raises :class:`error_proto`."""
        self._putcmd(line)
        return self._getresp()

    def _longcmd(self, line: str) -> Tuple[bytes, List[bytes], int]:
        """Sends a command line and returns ``(status, lines, octets)`` of its
        multi-line reply, as the standard module's does."""
        self._putcmd(line)
        return self._getlongresp()

    def _read_greeting(self) -> bytes:
        while True:
            try:
                event = self._next()
            except error_proto:
                self.close()
                raise
            if isinstance(event, Greeting):
                return self._status()

    def _start_tls(self) -> None:
        # Anything already waiting on the socket came before our ClientHello:
        # the core refuses it (STLS injection), so hand it over.
        previous = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            early: Optional[bytes] = self.sock.recv(_READ_SIZE)
        except BlockingIOError:
            early = None
        finally:
            self.sock.settimeout(previous)
        if early is not None:
            self._client.receive_data(early)
            if early:
                return
        try:
            self.sock = self._stls_context.wrap_socket(self.sock, server_hostname=self.host)
        except BaseException:
            # The core ends the session: every later command raises
            # error_proto at once instead of asking for a handshake again.
            # The handshake's own exception is raised, as the standard
            # module does.
            try:
                self._client.tls_failed()
            except Error:
                pass
            raise
        if self.file is not None:
            self.file.close()
        self.file = self.sock.makefile("rb")
        self._tls_established = True
        self._client.tls_established()

    # ----- the documented API -----

    def getwelcome(self) -> bytes:
        """The server's greeting line (``bytes``)."""
        return self.welcome

    def set_debuglevel(self, level: int) -> None:
        """0: quiet; 1: one line per command; 2 or more: every line sent and
        received. Passwords are shown as ``<redacted>``."""
        self._debugging = level

    def user(self, user: str) -> bytes:
        """``USER``: returns the response."""
        return self._command(f"USER {user}", lambda c: c.user(user))

    def pass_(self, pswd: str) -> bytes:
        """``PASS``: returns the response; the maildrop is locked until :meth:`quit`."""
        return self._command("PASS <redacted>", lambda c: c.pass_(pswd))

    def stat(self) -> Tuple[int, int]:
        """``STAT``: ``(message count, mailbox size)``."""
        event = self._complete(self._submit("STAT", lambda c: c.stat()))
        return event.count, event.size

    def list(self, which: Any = None) -> Any:
        """``LIST``: ``(response, [b'msg octets', ...], octets)``; with
        ``which``, that message's response line."""
        if which is not None:
            n = _msg(which)
            if n is None:
                return self._raw_command(f"LIST {which}", multiline=False)
            self._complete(self._submit(f"LIST {which}", lambda c: c.list(n)))
            return self._status()
        event = self._complete(self._submit("LIST", lambda c: c.list()))
        lines = [b"%d %d" % (e.msg, e.size) for e in event.entries]
        return self._status(), lines, sum(len(line) + 2 for line in lines)

    def retr(self, which: Any) -> Tuple[bytes, List[bytes], int]:
        """``RETR``: ``(response, [line, ...], octets)``; lines without their
        line endings."""
        n = _msg(which)
        if n is None:
            return self._raw_command(f"RETR {which}", multiline=True)
        return self._long_command(f"RETR {which}", lambda c: c.retr(n))

    def retr_to(self, which: Any, file: IO[bytes]) -> Tuple[bytes, int]:
        """Streams message ``which`` into a binary file object, line endings as
        sent, without building a list of lines (not in the standard module).
        Returns ``(response, octets written)``."""
        n = _msg_strict(which)
        written = 0
        write = file.write

        def sink(data: bytes) -> None:
            nonlocal written
            write(data)
            written += len(data)

        self._complete(self._submit(f"RETR {which}", lambda c: c.retr(n)), sink)
        return self._status(), written

    def dele(self, which: Any) -> bytes:
        """``DELE``: marks the message deleted (committed by :meth:`quit`)."""
        n = _msg(which)
        if n is None:
            return self._raw_command(f"DELE {which}", multiline=False)
        return self._command(f"DELE {which}", lambda c: c.dele(n))

    def noop(self) -> bytes:
        """``NOOP``."""
        return self._command("NOOP", lambda c: c.noop())

    def rset(self) -> bytes:
        """``RSET``: unmarks deleted messages."""
        return self._command("RSET", lambda c: c.rset())

    def quit(self) -> bytes:
        """``QUIT``: commits deletions and closes the connection."""
        try:
            resp = self._command("QUIT", lambda c: c.quit())
        finally:
            self.close()
        return resp

    def close(self) -> None:
        """Closes the connection without QUIT."""
        file, self.file = self.file, None
        if file is not None:
            file.close()
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.close()

    def rpop(self, user: str) -> bytes:
        """``RPOP`` (obsolete; few servers accept it)."""
        return self._command(f"RPOP {user}", lambda c: c.raw("RPOP", [user]))

    def apop(self, user: str, password: str) -> bytes:
        """``APOP`` with the greeting's timestamp. Raises :class:`error_proto`
        when the greeting has none."""
        if self._client.apop_timestamp is None:
            raise error_proto("-ERR APOP not supported by server")
        return self._command(f"APOP {user} <redacted>", lambda c: c.apop(user, password))

    def auth(self, mechanism: str, authobject: Callable[[Optional[bytes]], Any]) -> bytes:
        """SASL login (RFC 5034) in the shape of ``smtplib.SMTP.auth``:
        ``authobject(None)`` returns the client's message before base64 (str
        or bytes), for XOAUTH2 ``"user=NAME\\x01auth=Bearer TOKEN\\x01\\x01"``.
        The core runs the exchange, as for every login here: XOAUTH2 and
        OAUTHBEARER always in two steps (a server's refusal report is
        answered), PLAIN with its initial response. Those three mechanisms
        are supported (others raise :class:`error_proto`, nothing sent).
        Returns the ``+OK`` line; a refusal raises :class:`error_proto`.
        ``_shortcmd("AUTH XOAUTH2")`` and the message after its ``+ `` (or on
        the same line) come here too."""
        name = mechanism.upper()
        message = authobject(None)
        if isinstance(message, str):
            message = message.encode("utf-8")
        parsed = _sasl_credentials(name, bytes(message))
        if parsed is None:
            raise error_proto(f"-ERR AUTH {name}: unsupported mechanism or malformed message")
        user, secret = parsed
        self._complete(
            self._submit(f"AUTH {name} <redacted>", lambda c: c.login(user, secret, name.lower()))
        )
        return self._status()

    def top(self, which: Any, howmuch: int) -> Tuple[bytes, List[bytes], int]:
        """``TOP``: the headers and ``howmuch`` body lines, as :meth:`retr`."""
        n = _msg(which)
        if n is None:
            return self._raw_command(f"TOP {which} {howmuch}", multiline=True)
        lines = int(howmuch)
        return self._long_command(f"TOP {which} {howmuch}", lambda c: c.top(n, lines))

    def uidl(self, which: Any = None) -> Any:
        """``UIDL``: ``(response, [b'msg uid', ...], octets)``; with ``which``,
        that message's response line."""
        if which is not None:
            n = _msg(which)
            if n is None:
                return self._raw_command(f"UIDL {which}", multiline=False)
            self._complete(self._submit(f"UIDL {which}", lambda c: c.uidl(n)))
            return self._status()
        event = self._complete(self._submit("UIDL", lambda c: c.uidl()))
        lines = [b"%d %s" % (e.msg, e.uid.encode("ascii")) for e in event.entries]
        return self._status(), lines, sum(len(line) + 2 for line in lines)

    def utf8(self) -> bytes:
        """``UTF8`` (RFC 6856): returns the response or raises :class:`error_proto`."""
        return self._command("UTF8", lambda c: c.utf8())

    def capa(self) -> Dict[str, List[str]]:
        """``CAPA``: ``{'NAME': ['arg', ...], ...}``."""
        handle = self._submit("CAPA", lambda c: c.capa())
        try:
            event = self._complete(handle)
        except error_proto as exc:
            # A -ERR gets the standard module's words; a listing past the
            # core's limits says so.
            if isinstance(exc.args[0], bytes) and exc.args[0].startswith(b"-ERR"):
                raise error_proto("-ERR CAPA not supported by server") from None
            raise
        # The core parsed the listing (and keeps it for its own decisions);
        # the dictionary is a copy the caller may change.
        return {name: list(args) for name, args in event.capabilities.items()}

    def stls(self, context: Optional[ssl.SSLContext] = None) -> bytes:
        """``STLS``: upgrades the connection to TLS. Without ``context`` the
        certificate and host name are verified (unlike the standard module).
        The core asks ``CAPA`` first when it does not know the capabilities,
        sends ``STLS`` only if they list it (otherwise :class:`error_proto`,
        nothing else sent), and asks ``CAPA`` again over TLS."""
        if self._tls_established:
            raise error_proto("-ERR TLS session already established")
        self._stls_context = context if context is not None else ssl.create_default_context()
        self._stls_status = None
        # Cancelled: the capabilities lack STLS (the standard module's words).
        self._complete(
            self._submit("STLS", lambda c: c.start_tls()),
            cancelled=b"-ERR STLS not supported by server",
        )
        # The +OK to STLS itself (kept when the handshake was asked for),
        # not to the CAPA that followed it.
        status, self._stls_status = self._stls_status, None
        return status if status is not None else b"+OK"

    def __enter__(self) -> "POP3":
        return self

    def __exit__(self, *args: Any) -> None:
        if self.sock is not None:
            try:
                self.quit()
            except (OSError, Error):
                pass
            finally:
                self.close()


class POP3_SSL(POP3):
    """A POP3 connection over TLS from the start (port 995), like
    :class:`poplib.POP3_SSL`. Without ``context`` the certificate and host
    name are verified; ``keyfile``/``certfile`` load a client certificate."""

    def __init__(
        self,
        host: str,
        port: int = POP3_SSL_PORT,
        keyfile: Optional[str] = None,
        certfile: Optional[str] = None,
        timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if context is not None and (keyfile is not None or certfile is not None):
            raise ValueError("context and keyfile/certfile arguments are mutually exclusive")
        if context is None:
            context = ssl.create_default_context()
            if certfile is not None:
                context.load_cert_chain(certfile, keyfile)
        self.keyfile = keyfile
        self.certfile = certfile
        self.context = context
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: Any) -> socket.socket:
        sock = super()._create_socket(timeout)
        sock = self.context.wrap_socket(sock, server_hostname=self.host)
        self._tls_established = True
        return sock

    def stls(self, context: Optional[ssl.SSLContext] = None) -> bytes:
        """Always raises: the connection is already TLS."""
        raise error_proto("-ERR TLS session already established")


def _msg(which: Any) -> Optional[int]:
    """The message number ``which`` names, or None when it is not one: the
    standard module passes whatever it is given through as text, and the
    server answers it (the core still refuses CR, LF and NUL in it)."""
    if isinstance(which, int) and not isinstance(which, bool):
        text = str(which)
    elif isinstance(which, (str, bytes)):
        text = which.decode("ascii", "replace") if isinstance(which, bytes) else which
    else:
        text = str(which)
    if text.isascii() and text.isdigit() and 1 <= int(text) <= 0xFFFFFFFF and text == str(int(text)):
        return int(text)
    return None


def _msg_strict(which: Any) -> int:
    n = _msg(which)
    if n is None:
        raise error_proto(f"-ERR not a message number: {which!r}")
    return n


def _sasl_credentials(mechanism: str, message: bytes) -> Optional[Tuple[str, str]]:
    """``(user, secret)`` from a caller's SASL client message, for the core
    to rebuild and send; None when it is not in the mechanism's format."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if mechanism == "PLAIN":
        parts = text.split("\0")
        if len(parts) != 3 or parts[0] not in ("", parts[1]):
            return None
        return parts[1], parts[2]
    if mechanism not in ("XOAUTH2", "OAUTHBEARER") or not text.endswith("\x01\x01"):
        return None
    fields = text[:-2].split("\x01")
    user = None
    if mechanism == "XOAUTH2":
        head = fields.pop(0)
        if head.startswith("user="):
            user = head[len("user="):]
    else:
        # The GS2 header: "n,a=NAME," (RFC 7628).
        head = fields.pop(0)
        for part in head.split(",")[1:]:
            if part.startswith("a="):
                user = part[2:]
    token = None
    for field in fields:
        if field.startswith("auth=Bearer "):
            token = field[len("auth=Bearer "):]
    if not user or not token:
        return None
    return user, token


def _raw_submitter(verb: str, args: List[str], multiline: bool):
    """How a raw command line is submitted: the commands that change the
    session's state go through their typed commands, so the core keeps
    track (and redacts the password); the rest as the core's raw command."""
    name = verb.upper()
    if name == "USER" and len(args) == 1:
        return lambda c: c.user(args[0])
    if name == "PASS" and args:
        password = " ".join(args)
        return lambda c: c.pass_(password)
    if name == "QUIT" and not args:
        return lambda c: c.quit()
    if name == "UTF8" and not args:
        return lambda c: c.utf8()
    return lambda c: c.raw(verb, args, multiline)


class _LineSplitter:
    """Splits a body into lines as it streams in, as the standard module
    returns them: split at LF, a CR before the LF dropped. Splitting each
    chunk while it is in the CPU cache is several times faster than joining
    the message and splitting it once.

    The unfinished last line is kept as a list of pieces and joined once,
    when its LF arrives: a line spread over many chunks costs its length,
    not its length times the number of chunks."""

    def __init__(self) -> None:
        self.lines: List[bytes] = []
        self.octets = 0
        self._carry: List[bytes] = []

    def feed(self, data: bytes) -> None:
        self.octets += len(data)
        if b"\n" not in data:
            if data:
                self._carry.append(data)
            return
        if self._carry:
            # Only up to this chunk's first LF is joined with the carry.
            head, _, data = data.partition(b"\n")
            self._carry.append(head)
            line = b"".join(self._carry)
            self._carry = []
            self.lines.append(line[:-1] if line.endswith(b"\r") else line)
        parts = data.split(b"\r\n")
        if data.count(b"\n") != len(parts) - 1:
            # A bare LF in this chunk: the slow, exact path.
            parts = [p[:-1] if p.endswith(b"\r") else p for p in data.split(b"\n")]
            parts[-1] = data.rpartition(b"\n")[2]
        last = parts.pop()
        if last:
            self._carry.append(last)
        self.lines += parts

    def finish(self) -> List[bytes]:
        if self._carry:
            self.lines.append(b"".join(self._carry))
            self._carry = []
        return self.lines
