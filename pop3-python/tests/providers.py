"""Scripted profiles of two large providers' POP3 services, for OAuth logins.

* :class:`Microsoft365` (Microsoft 365 / Outlook.com): takes ``XOAUTH2`` only
  in two steps (``AUTH XOAUTH2``, an empty continuation ``+ ``, then the
  base64 message on a line of its own). The inline form
  ``AUTH XOAUTH2 <base64>`` gets a protocol-error line and the connection is
  closed. Unique ids are long base64 strings.
* :class:`Gmail`: takes ``XOAUTH2`` and ``OAUTHBEARER`` in two steps (bare
  ``+`` continuation) or inline. A token it does not accept gets a
  continuation carrying a base64 JSON error report; the client must answer it
  (an empty line for ``XOAUTH2``, ``AQ==`` for ``OAUTHBEARER``) before the
  final ``-ERR [AUTH]``. A ``recent:`` prefix on the user name selects the
  recent mode, which also lists mail already downloaded.

Each profile is a script for :class:`conftest.Scripted`: one instance serves
any number of connections, one after the other, and keeps what it saw:
``log`` (every line received, SASL answers included, in order),
``exchanges`` (the lines of each SASL exchange), ``logins`` (each SASL
message it decoded), ``hung_up`` (it closed the connection itself) and
``errors`` (a broken script). The server side never blocks longer than the socket timeout the
``Scripted`` harness sets.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Callable, List, Optional, Set, Tuple


@dataclass
class SaslMessage:
    """One decoded XOAUTH2 / OAUTHBEARER client message."""

    mechanism: str
    user: str
    token: str
    inline: bool


def xoauth2_message(user: str, token: str) -> bytes:
    """The XOAUTH2 client message, before base64."""
    return b"user=%s\x01auth=Bearer %s\x01\x01" % (user.encode(), token.encode())


def oauthbearer_message(user: str, token: str) -> bytes:
    """The OAUTHBEARER (RFC 7628) client message, before base64."""
    return b"n,a=%s,\x01auth=Bearer %s\x01\x01" % (user.encode(), token.encode())


def parse_message(mechanism: str, raw: bytes) -> Optional[Tuple[str, str]]:
    """``(user, token)`` from a decoded client message, or None when it is
    not in the mechanism's format."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields = text[:-2].split("\x01")
    if mechanism == "XOAUTH2":
        if len(fields) != 2 or not fields[0].startswith("user="):
            return None
        user = fields[0][len("user="):]
    else:
        if len(fields) != 2 or not fields[0].startswith("n,a=") or not fields[0].endswith(","):
            return None
        user = fields[0][len("n,a="):-1].replace("=2C", ",").replace("=3D", "=")
    if not fields[1].startswith("auth=Bearer "):
        return None
    return user, fields[1][len("auth=Bearer "):]


def stuff(message: bytes) -> bytes:
    """A message as a multi-line reply body: dot-stuffed, with the final dot."""
    lines = message.split(b"\r\n")
    assert lines[-1] == b"", "messages end with CRLF"
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines[:-1]]
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


class Hangup(Exception):
    """The profile closes the connection."""


class Session:
    """One connection's state: its own line reader (which tells an empty line
    from the end of the stream, unlike ``Peer.line``), whether it logged in,
    and the messages marked deleted."""

    def __init__(self, peer, profile: "Profile") -> None:
        self.peer = peer
        self.profile = profile
        self.buf = b""
        self.user: Optional[str] = None
        self.mailbox: Optional[List[Tuple[str, bytes]]] = None
        self.deleted: Set[int] = set()

    def send(self, data: bytes) -> None:
        self.peer.send(data)

    def line(self) -> Optional[bytes]:
        """The next line without its CRLF; None at the end of the stream."""
        while b"\n" not in self.buf:
            chunk = self.peer.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        line = line[:-1] if line.endswith(b"\r") else line
        self.profile.log.append(line)
        return line

    def item(self, i: int) -> Tuple[str, bytes]:
        """``(uid, message)`` of the message at index ``i``."""
        assert self.mailbox is not None
        return self.mailbox[i]

    def message(self, arg: bytes) -> Optional[int]:
        """The index of a live message named by ``arg``, or None."""
        if self.mailbox is None:
            return None
        try:
            n = int(arg)
        except ValueError:
            return None
        if 1 <= n <= len(self.mailbox) and n not in self.deleted:
            return n - 1
        return None


class Profile:
    """The common part: by-verb dispatch, the transaction state, the OAuth
    exchange. Subclasses set the texts and the SASL policy."""

    greeting = b"+OK\r\n"
    capabilities: List[bytes] = []
    mechanisms: Tuple[str, ...] = ()
    continuation = b"+ \r\n"
    accepts_inline = True
    ok_login = b"+OK\r\n"
    bad_login = b"-ERR [AUTH] bad credentials\r\n"
    unknown = b"-ERR unknown command\r\n"
    no_mechanism = b"-ERR unsupported mechanism\r\n"
    farewell = b"+OK bye\r\n"

    def __init__(self, user: str, token: str, messages: List[Tuple[str, bytes]]) -> None:
        self.user = user
        self.token = token
        self.messages = messages
        self.log: List[bytes] = []
        self.logins: List[SaslMessage] = []
        #: Each SASL exchange as the lines the client sent: the AUTH line,
        #: then its answers to continuations (the message, an error's ack).
        self.exchanges: List[List[bytes]] = []
        self.errors: List[BaseException] = []
        self.hung_up = False

    # ----- the script -----

    def __call__(self, peer) -> None:
        session = Session(peer, self)
        try:
            session.send(self.greeting)
            while True:
                line = session.line()
                if line is None:
                    return
                verb, _, rest = line.partition(b" ")
                handler: Optional[Callable[[Session, bytes], None]] = getattr(
                    self, "on_" + verb.decode("ascii", "replace").lower(), None
                )
                if handler is None:
                    session.send(self.unknown)
                    continue
                handler(session, rest)
        except Hangup:
            self.hung_up = True
        except (OSError, ValueError, UnicodeError) as exc:
            self.errors.append(exc)

    # ----- authorization -----

    def mailbox_for(self, user: str) -> Optional[List[Tuple[str, bytes]]]:
        return self.messages if user == self.user else None

    def on_capa(self, s: Session, rest: bytes) -> None:
        lines = self.capabilities if s.mailbox is None else self.after_login_capabilities()
        s.send(b"+OK\r\n" + b"".join(c + b"\r\n" for c in lines) + b".\r\n")

    def after_login_capabilities(self) -> List[bytes]:
        return self.capabilities

    def on_user(self, s: Session, rest: bytes) -> None:
        s.send(b"+OK\r\n" if s.mailbox is None else b"-ERR already logged in\r\n")

    def on_pass(self, s: Session, rest: bytes) -> None:
        # Basic authentication is off for both providers' OAuth accounts.
        s.send(self.bad_login)

    def on_auth(self, s: Session, rest: bytes) -> None:
        words = rest.split()
        if s.mailbox is not None or not words:
            s.send(b"-ERR\r\n")
            return
        mechanism = words[0].decode("ascii", "replace").upper()
        exchange = [b"AUTH " + rest]
        self.exchanges.append(exchange)
        if mechanism not in self.mechanisms:
            s.send(self.no_mechanism)
            return
        if len(words) > 1:
            if not self.accepts_inline:
                self.refuse_inline(s)
            encoded = words[1]
            inline = True
        else:
            s.send(self.continuation)
            answer = s.line()
            if answer is None:
                raise Hangup()
            encoded = answer
            exchange.append(encoded)
            inline = False
        if encoded == b"*":
            s.send(b"-ERR authentication cancelled\r\n")
            return
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            s.send(b"-ERR invalid base64\r\n")
            return
        parsed = parse_message(mechanism, raw)
        if parsed is None:
            s.send(b"-ERR malformed " + mechanism.encode() + b" message\r\n")
            return
        user, token = parsed
        self.logins.append(SaslMessage(mechanism, user, token, inline))
        mailbox = self.mailbox_for(user)
        if mailbox is None or token != self.token:
            self.refuse_token(s, mechanism, exchange)
            return
        s.user = user
        s.mailbox = mailbox
        s.send(self.ok_login)

    def refuse_inline(self, s: Session) -> None:
        raise NotImplementedError

    def refuse_token(self, s: Session, mechanism: str, exchange: List[bytes]) -> None:
        s.send(self.bad_login)

    # ----- transaction -----

    def transaction(self, s: Session) -> bool:
        if s.mailbox is None:
            s.send(b"-ERR not logged in\r\n")
            return False
        return True

    def live(self, s: Session) -> List[Tuple[int, str, bytes]]:
        assert s.mailbox is not None
        return [(i + 1, uid, m) for i, (uid, m) in enumerate(s.mailbox) if i + 1 not in s.deleted]

    def on_stat(self, s: Session, rest: bytes) -> None:
        if self.transaction(s):
            live = self.live(s)
            s.send(b"+OK %d %d\r\n" % (len(live), sum(len(m) for _, _, m in live)))

    def on_list(self, s: Session, rest: bytes) -> None:
        if not self.transaction(s):
            return
        if rest:
            i = s.message(rest)
            if i is None:
                s.send(b"-ERR no such message\r\n")
                return
            s.send(b"+OK %d %d\r\n" % (i + 1, len(s.item(i)[1])))
            return
        live = self.live(s)
        s.send(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (n, len(m)) for n, _, m in live) + b".\r\n")

    def on_uidl(self, s: Session, rest: bytes) -> None:
        if not self.transaction(s):
            return
        if rest:
            i = s.message(rest)
            if i is None:
                s.send(b"-ERR no such message\r\n")
                return
            s.send(b"+OK %d %s\r\n" % (i + 1, s.item(i)[0].encode()))
            return
        live = self.live(s)
        s.send(b"+OK\r\n" + b"".join(b"%d %s\r\n" % (n, u.encode()) for n, u, _ in live) + b".\r\n")

    def on_retr(self, s: Session, rest: bytes) -> None:
        if not self.transaction(s):
            return
        i = s.message(rest)
        if i is None:
            s.send(b"-ERR no such message\r\n")
            return
        message = s.item(i)[1]
        s.send(b"+OK %d octets\r\n" % len(message) + stuff(message))

    def on_top(self, s: Session, rest: bytes) -> None:
        if not self.transaction(s):
            return
        args = rest.split()
        i = s.message(args[0]) if len(args) == 2 and args[1].isdigit() else None
        if i is None:
            s.send(b"-ERR no such message\r\n")
            return
        head, sep, body = s.item(i)[1].partition(b"\r\n\r\n")
        kept = b"".join(line + b"\r\n" for line in body.split(b"\r\n")[: int(args[1])] if body)
        s.send(b"+OK\r\n" + stuff(head + sep + kept if sep else head))

    def on_dele(self, s: Session, rest: bytes) -> None:
        if not self.transaction(s):
            return
        i = s.message(rest)
        if i is None:
            s.send(b"-ERR no such message\r\n")
            return
        s.deleted.add(i + 1)
        s.send(b"+OK marked for deletion\r\n")

    def on_noop(self, s: Session, rest: bytes) -> None:
        if self.transaction(s):
            s.send(b"+OK\r\n")

    def on_rset(self, s: Session, rest: bytes) -> None:
        if self.transaction(s):
            s.deleted.clear()
            s.send(b"+OK\r\n")

    def on_quit(self, s: Session, rest: bytes) -> None:
        s.send(self.farewell)
        raise Hangup()


def exchange_name() -> bytes:
    """Microsoft's greeting ends with a bracketed base64 string of the
    front-end server's name in UTF-16."""
    return base64.b64encode("DB9PR07CA0123.EURPRD07.PROD.OUTLOOK.COM".encode("utf-16-le"))


class Microsoft365(Profile):
    """Microsoft 365 / Outlook.com (outlook.office365.com:995)."""

    greeting = b"+OK The Microsoft Exchange POP3 service is ready. [" + exchange_name() + b"]\r\n"
    capabilities = [b"TOP", b"UIDL", b"SASL PLAIN XOAUTH2", b"USER"]
    mechanisms = ("XOAUTH2",)
    continuation = b"+ \r\n"
    accepts_inline = False
    ok_login = b"+OK User successfully authenticated.\r\n"
    bad_login = b"-ERR Authentication failure: unknown user name or bad password.\r\n"
    unknown = b"-ERR Protocol error. 14\r\n"
    no_mechanism = b"-ERR Unrecognized authentication type.\r\n"
    farewell = b"+OK Microsoft Exchange Server POP3 server signing off.\r\n"

    def after_login_capabilities(self) -> List[bytes]:
        return [b"TOP", b"UIDL", b"USER"]

    def refuse_inline(self, s: Session) -> None:
        s.send(b"-ERR Protocol error. Connection is closed. 10\r\n")
        raise Hangup()


def exchange_uid(n: int) -> str:
    """A unique id in the shape Exchange gives: base64 of an item id, 68
    characters with padding (the core takes at most 70)."""
    raw = b"\x00\x04\x24\x00" + (b"mailbox-item-%05d-" % n) * 3 + b"\x00\x10\x00"
    uid = base64.b64encode(raw[:50]).decode()
    assert len(uid) == 68 and uid.endswith("=")
    return uid


class Gmail(Profile):
    """Gmail (pop.gmail.com:995)."""

    greeting = b"+OK Gpop ready for requests from 127.0.0.1 k7mb12345678pfx\r\n"
    capabilities = [
        b"USER",
        b"RESP-CODES",
        b"EXPIRE 0",
        b"LOGIN-DELAY 300",
        b"TOP",
        b"UIDL",
        b"X-GOOGLE-RICO",
        b"SASL PLAIN XOAUTH2 OAUTHBEARER",
    ]
    mechanisms = ("XOAUTH2", "OAUTHBEARER")
    continuation = b"+\r\n"
    accepts_inline = True
    ok_login = b"+OK Welcome.\r\n"
    bad_login = b"-ERR [AUTH] Invalid credentials\r\n"
    unknown = b"-ERR bad command\r\n"
    farewell = b"+OK Farewell.\r\n"
    scope = "https://mail.google.com/"

    def __init__(
        self,
        user: str,
        token: str,
        messages: List[Tuple[str, bytes]],
        downloaded: Optional[List[Tuple[str, bytes]]] = None,
    ) -> None:
        super().__init__(user, token, messages)
        #: Mail an earlier session downloaded: listed again only in recent mode.
        self.downloaded = downloaded or []

    def after_login_capabilities(self) -> List[bytes]:
        return [c for c in self.capabilities if not c.startswith(b"SASL")]

    def mailbox_for(self, user: str) -> Optional[List[Tuple[str, bytes]]]:
        if user == "recent:" + self.user:
            return self.downloaded + self.messages
        return super().mailbox_for(user)

    def error_report(self) -> bytes:
        report = {"status": "400", "schemes": "Bearer", "scope": self.scope}
        return base64.b64encode(json.dumps(report, separators=(",", ":")).encode())

    def refuse_token(self, s: Session, mechanism: str, exchange: List[bytes]) -> None:
        s.send(b"+ " + self.error_report() + b"\r\n")
        ack = s.line()
        if ack is None:
            raise Hangup()
        exchange.append(ack)
        s.send(self.bad_login)


def messages(profile: str, count: int = 3, first: int = 1) -> List[Tuple[str, bytes]]:
    """Sample mail for a profile, numbered from ``first``: headers,
    dot-leading lines, a long line, the last one several hundred KiB, and
    the profile's kind of unique id."""
    out = []
    last = first + count - 1
    for n in range(first, last + 1):
        uid = exchange_uid(n) if profile == "microsoft" else "GmailId18c2f0a1b2c3d4%02x" % n
        body = (
            b"From: Sender %d <sender%d@example.org>\r\n"
            b"To: alice@example.com\r\n"
            b"Subject: message %d\r\n"
            b"Message-ID: <%d.provider-test@example.org>\r\n"
            b"\r\n"
            b"first line\r\n"
            b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"x" % (n, n, n, n)
        ) + b"y" * 5000 + b"\r\n"
        if n == last:
            body += b"".join(b"line %06d of a large message\r\n" % i for i in range(12000))
        body += b"\r\nlast line\r\n"
        out.append((uid, body))
    return out


__all__: List[str] = [
    "Gmail",
    "Microsoft365",
    "Profile",
    "SaslMessage",
    "messages",
    "oauthbearer_message",
    "parse_message",
    "stuff",
    "xoauth2_message",
]
