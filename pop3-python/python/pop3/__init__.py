"""A safe POP3 client for Python, built on the ``pop3-proto`` Rust core.

Three layers share one protocol implementation:

* :class:`pop3.Client` -- sans-IO, in the style of h11: feed received bytes
  with ``receive_data``, read typed events with ``next_event``, submit commands
  (each returns an integer handle) and write ``data_to_send()`` to the socket.
  It does no I/O, so any event loop can drive it.
* :mod:`pop3.aio` -- an asyncio client (``await pop3.aio.connect(...)``).
* :mod:`pop3.poplib` -- a drop-in replacement for the standard ``poplib``
  module that verifies certificates and refuses hostile input.

Errors: every exception is a :class:`pop3.Error`. :class:`ProtocolError`
means the server broke the protocol (the connection is unusable);
:class:`UsageError` means the caller asked for something not allowed now
(nothing was sent); :class:`ServerError` is a ``-ERR`` reply, with its
response code in ``.code`` and its text in ``.text``.
"""

from typing import Optional

from ._core import (
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
    Languages,
    ListEntry,
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
    UidlEntry,
    UsageError,
)

__all__ = [
    "BodyChunk",
    "BodyEnd",
    "BodyStart",
    "Cancelled",
    "Capabilities",
    "Client",
    "Closed",
    "Err",
    "Error",
    "Failed",
    "Greeting",
    "Languages",
    "ListEntry",
    "Listing",
    "LoggedIn",
    "NeedData",
    "Ok",
    "ProtocolError",
    "ServerError",
    "Stat",
    "StartTls",
    "TlsEstablished",
    "Trace",
    "UidListing",
    "UidlEntry",
    "UsageError",
]


class ServerError(Error):
    """The server refused a command with ``-ERR``; the session goes on.

    ``code`` is the RFC 2449/3206 response code (``"AUTH"``, ``"IN-USE"``,
    ``"SYS/TEMP"``, ...) or None; ``text`` is the rest of the reply.
    """

    def __init__(self, text: str, code: Optional[str] = None) -> None:
        self.text = text
        self.code = code
        super().__init__(f"[{code}] {text}" if code else text)

    @classmethod
    def from_event(cls, event: Err) -> "ServerError":
        """The exception for an ``Err`` event."""
        return cls(event.text, event.code)
