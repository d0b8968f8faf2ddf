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
response code in ``.code`` and its text in ``.text`` (and, for an OAuth
token the server refused with a JSON report, the report's parts in
``.token_status``, ``.token_scope`` and ``.token_schemes``);
:class:`AuthenticationRefused`, a :class:`ServerError`, is a refused login
(``[AUTH]``, or a ``-ERR`` to a login step without a code, as Microsoft's
servers send).
"""

from typing import Optional, Union

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
    safe_text,
)

#: Every event :meth:`Client.next_event` can return, as one type for
#: annotations; ``typing.get_args(pop3.Event)`` gives the classes, for
#: ``isinstance``.
Event = Union[
    NeedData,
    Closed,
    Greeting,
    Ok,
    LoggedIn,
    Err,
    Stat,
    Listing,
    UidListing,
    Capabilities,
    Languages,
    BodyStart,
    BodyChunk,
    BodyEnd,
    StartTls,
    TlsEstablished,
    Trace,
    Failed,
    Cancelled,
]

__all__ = [
    "AuthenticationRefused",
    "BodyChunk",
    "BodyEnd",
    "BodyStart",
    "Cancelled",
    "Capabilities",
    "Client",
    "Closed",
    "Err",
    "Error",
    "Event",
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
    "safe_text",
]


class ServerError(Error):
    """The server refused a command with ``-ERR``; the session goes on.

    ``code`` is the RFC 2449/3206 response code (``"AUTH"``, ``"IN-USE"``,
    ``"SYS/TEMP"``, ...) or None; ``text`` is the rest of the reply.

    When an ``xoauth2`` or ``oauthbearer`` login is refused after a JSON
    error report (Gmail sends one for an expired token or a missing scope),
    ``token_refusal`` says so in words, which the message ends with, and
    ``token_status`` (``"400"``, ``"invalid_token"``, ...), ``token_scope``
    (the scope the token needs) and ``token_schemes`` hold the report's
    parts. All four are None otherwise.
    """

    def __init__(
        self,
        text: str,
        code: Optional[str] = None,
        *,
        token_refusal: Optional[str] = None,
        token_status: Optional[str] = None,
        token_scope: Optional[str] = None,
        token_schemes: Optional[str] = None,
    ) -> None:
        self.text = text
        self.code = code
        self.token_refusal = token_refusal
        self.token_status = token_status
        self.token_scope = token_scope
        self.token_schemes = token_schemes
        message = f"[{code}] {text}" if code else text
        if token_refusal:
            message = f"{message}: {token_refusal}"
        super().__init__(message)

    @classmethod
    def from_event(cls, event: Err) -> "ServerError":
        """The exception for an ``Err`` event: :class:`AuthenticationRefused`
        when it refused the credentials."""
        exception: "type[ServerError]" = cls
        if event.authentication_refused and cls is ServerError:
            exception = AuthenticationRefused
        return exception(
            event.text,
            event.code,
            token_refusal=event.token_refusal,
            token_status=event.token_status,
            token_scope=event.token_scope,
            token_schemes=event.token_schemes,
        )


class AuthenticationRefused(ServerError):
    """The server refused the credentials: a login step (``USER``, ``PASS``,
    ``APOP``, ``AUTH``) refused with ``[AUTH]``, without a response code (as
    Microsoft's servers refuse a bad password) or with one the core does not
    know. A temporary code (``IN-USE``, ``LOGIN-DELAY``, ``SYS/TEMP``) is a
    plain :class:`ServerError`: the credentials were not the problem. Do not
    retry with the same credentials."""
