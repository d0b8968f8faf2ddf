"""POP3 over asyncio, driven by the sans-IO :class:`pop3.Client`.

Example::

    async with await pop3.aio.connect("pop.example.org") as conn:
        await conn.login("alice", "secret")
        count, size = await conn.stat()
        async for chunk in conn.retr(1):
            ...

The core decides everything about the protocol (what to send, when to
pipeline, when TLS starts); this module only moves bytes, runs TLS through
Python's :mod:`ssl` module and keeps time.

TLS: ``tls="implicit"`` (port 995) wraps the connection from the start,
``tls="starttls"`` (port 110) upgrades it with STLS before anything else and
fails if the server does not offer STLS, ``tls="none"`` stays in plaintext
(credentials are then refused unless ``allow_plaintext_credentials=True``).
Without ``ssl_context``, :func:`ssl.create_default_context` is used:
certificates and host names are verified.

Timeouts: ``timeout`` bounds connecting, the TLS handshake and each wait for
the server. When it expires, :class:`asyncio.TimeoutError` is raised and the
connection is closed. It is an idle limit: a server that trickles a byte now
and then never trips it. ``session_timeout`` is the overall deadline: counted
from the start of :func:`connect`, it bounds every later wait too, and is
checked before each read, so such a server is stopped when it expires:
:class:`SessionTimeout` (an :class:`asyncio.TimeoutError`) is raised and the
connection is closed. The Rust transports default it to an hour; here it is
off unless given. (``asyncio.timeout(seconds)`` around your own code does the
same; close the connection when it fires.)

Cancellation: cancelling a task that is waiting for a reply leaves the
connection usable. The abandoned command's reply (or the rest of an abandoned
message) is read and dropped by the next operation. The one exception is a
cancelled TLS handshake: the connection is then closed, and every later call
raises :class:`pop3.Error` (as after a failed one, whose own exception, such
as :class:`ssl.SSLCertVerificationError`, is raised).

Concurrency: operations on one connection from several tasks run one after
the other; only one of them reads the socket at a time. Two shapes cannot
both go on and raise :class:`ConcurrentUseError` instead of hanging: an
operation started by the task iterating :meth:`Connection.retr_many` inside
its loop (that task holds the connection until the loop ends), and a
:class:`MessageReader` iterated after another operation started on its
connection (that operation dropped the rest of the message). (On Python
3.11 and older, ``asyncio.wait_for`` runs its operation in a task of its
own, which then waits for the loop like any other task.)
"""

import asyncio
import collections
import contextlib
import inspect
import ssl as _ssl
import warnings
from typing import (
    IO,
    Any,
    Awaitable,
    Callable,
    AsyncIterator,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
    overload,
)

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
    Languages,
    ListEntry,
    Listing,
    LoggedIn,
    NeedData,
    Ok,
    ProtocolError,
    ServerError,
    Stat,
    StartTls,
    TlsEstablished,
    Trace,
    UidListing,
    UidlEntry,
    UsageError,
)

__all__ = ["connect", "Connection", "ConcurrentUseError", "MessageReader", "SessionTimeout"]


class SessionTimeout(asyncio.TimeoutError):
    """The session ran past its overall time limit (``session_timeout``),
    however busy the server kept it. The connection is closed."""

class ConcurrentUseError(UsageError):
    """An operation met another one on the same connection where the two
    cannot both go on, raised at once instead of waiting for ever:

    * an operation started inside the loop of :meth:`Connection.retr_many`
      (or :meth:`Connection.retr_many_and_quit`) by the task iterating it,
      which holds the connection until the loop ends (nothing was sent for
      the new operation; collect the numbers and call
      :meth:`Connection.dele_many` after the loop);
    * a :class:`MessageReader` iterated after another operation started on
      its connection (in this task or another): the rest of its message
      was dropped when that operation began.
    """


POP3_PORT = 110
POP3_SSL_PORT = 995

# What asyncio's socket transports read at most at once; the client is told
# so (its ``read_size``), so that the input it bounds is one such read on top
# of a partial line.
_READ_SIZE = 256 * 1024

_TERMINAL = (
    Ok,
    LoggedIn,
    Err,
    Stat,
    Listing,
    UidListing,
    Capabilities,
    Languages,
    BodyEnd,
    Failed,
    Cancelled,
    TlsEstablished,
)


class _Protocol(asyncio.Protocol):
    """Buffers received chunks for the connection, with flow control both
    ways. The transport hands data over without being asked, so reading
    pauses once what waits here and in the client reaches the client's
    ``input_bound`` (the core's figure), and resumes when the client asks
    for more with room below it: memory stays bounded when the caller is
    slow."""

    def __init__(self, loop: asyncio.AbstractEventLoop, input_bound: int) -> None:
        self._loop = loop
        self._input_bound = input_bound
        #: What the client held when it last asked for input (read on the
        #: event loop's thread only, never while a worker computes).
        self._client_buffered = 0
        self.transport: Optional[asyncio.Transport] = None
        self.chunks: Deque[bytes] = collections.deque()
        self.size = 0
        self.eof = False
        self.exc: Optional[BaseException] = None
        self._waiter: Optional[asyncio.Future] = None
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: Optional[asyncio.Future] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        held = self.size + self._client_buffered
        if held >= self._input_bound and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.eof = True
        self.exc = exc
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def take_all(self) -> bytes:
        """Everything received and not yet taken (used before a TLS upgrade)."""
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data

    def client_wants_input(self, client_buffered: int) -> None:
        """The client needs input and holds ``client_buffered`` octets: the
        one moment to resume reading (every way of taking input comes
        through here first, so a paused transport is never forgotten). The
        client's partial line is below its bound, so with nothing waiting
        here reading always resumes."""
        self._client_buffered = client_buffered
        if self._read_paused and self.size + client_buffered < self._input_bound and self.transport:
            self._read_paused = False
            self.transport.resume_reading()

    def take(self) -> bytes:
        """The oldest chunk received (there must be one), for the client."""
        data = self.chunks.popleft()
        self.size -= len(data)
        self._client_buffered += len(data)
        return data

    async def read(self, timeout: Optional[float]) -> bytes:
        while not self.chunks:
            if self.eof:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
        return self.take()

    async def drain(self, timeout: Optional[float]) -> None:
        if self.exc is not None:
            raise ConnectionError(str(self.exc))
        if not self._write_paused:
            return
        self._drain_waiter = self._loop.create_future()
        try:
            await asyncio.wait_for(self._drain_waiter, timeout)
        finally:
            self._drain_waiter = None


def _raise_for(event: object, msg: Optional[int] = None) -> None:
    """Turns a failed completion into the matching exception; a
    :class:`ServerError` for message ``msg`` of a bulk operation says which
    (``.msg``)."""
    if isinstance(event, Err):
        error = ServerError.from_event(event)
        if msg is not None:
            error.msg = msg  # type: ignore[attr-defined]
        raise error
    if isinstance(event, Failed):
        raise ProtocolError(event.error)
    if isinstance(event, Cancelled):
        if event.session_ended:
            # The server hung up or broke the protocol under the command.
            raise ProtocolError(event.reason)
        raise UsageError(event.reason)
    raise ProtocolError(f"unexpected reply: {event!r}")


class _Bulk:
    """The bookkeeping of a bulk operation (``retr_many``, ``dele_many``): the
    commands still pending, in the order asked, with their message numbers;
    when the caller stops early or an exception ends the operation, the core
    reads and drops the rest of their replies. (Unlike the Rust drivers,
    which return one result per message, a failure other than ``-ERR``
    raises here.)"""

    def __init__(self, conn: "Connection", msgs: List[int], handles: List[int]) -> None:
        self._conn = conn
        self.pending: Deque[Tuple[int, int]] = collections.deque(zip(msgs, handles))

    def abandon_rest(self) -> None:
        for _, handle in self.pending:
            self._conn._abandon(handle)
        self.pending.clear()


class MessageReader:
    """The body of a ``RETR`` or ``TOP``, as an async iterator of ``bytes``
    chunks (dot-unstuffed, line endings as the server sent them).

    Breaking out of the loop early is allowed: the rest of the message is read
    and dropped by the connection's next operation.
    """

    def __init__(self, conn: "Connection", handle: int) -> None:
        self._conn = conn
        self._handle = handle
        self._done = False
        # Another operation began before the message was read to its end.
        self._taken = False

    def __aiter__(self) -> "MessageReader":
        return self

    async def __anext__(self) -> bytes:
        if self._taken:
            raise ConcurrentUseError(
                "another operation started on the connection before this message was read "
                "to its end; the rest of the message was dropped"
            )
        if self._done:
            raise StopAsyncIteration
        conn = self._conn
        # Each step holds the connection, so that an operation of another
        # task never reads the socket at the same time (one of the two would
        # take the other's replies); an operation that started in between
        # has taken the connection from this reader for good.
        async with conn._exclusive(begin=False):
            if conn._reader is not self:
                self._done = True
                raise ConcurrentUseError(
                    "another operation started on the connection before this message was read "
                    "to its end; the rest of the message was dropped"
                )
            try:
                while True:
                    event = await conn._wait(self._handle)
                    if isinstance(event, BodyChunk):
                        return event.data
                    if isinstance(event, BodyStart):
                        continue
                    self._finish()
                    if isinstance(event, BodyEnd):
                        raise StopAsyncIteration
                    _raise_for(event)
            except (Exception, asyncio.CancelledError) as exc:
                if not isinstance(exc, StopAsyncIteration):
                    self.abandon()
                raise

    def _finish(self) -> None:
        self._done = True
        if self._conn._reader is self:
            self._conn._reader = None

    def abandon(self) -> None:
        """Stops reading: the rest is read and dropped later."""
        if not self._done:
            self._conn._abandon(self._handle)
            self._finish()

    def _take_over(self) -> None:
        """Another operation begins: the rest is dropped, and reading on
        raises :class:`ConcurrentUseError` rather than end as if complete."""
        if not self._done:
            self._taken = True
        self.abandon()

    async def aclose(self) -> None:
        """Same as :meth:`abandon` (for ``contextlib.aclosing``)."""
        self.abandon()

    async def read(self) -> bytes:
        """The whole rest of the message, as one bytes object."""
        return b"".join([chunk async for chunk in self])


class Connection:
    """One POP3 session over asyncio. Create it with :func:`connect`."""

    def __init__(
        self,
        protocol: _Protocol,
        client: Client,
        host: str,
        ssl_context: Optional[_ssl.SSLContext],
        timeout: Optional[float],
        deadline: Optional[float] = None,
    ) -> None:
        self._protocol = protocol
        self._client = client
        self._host = host
        self._ssl_context = ssl_context
        self._timeout = timeout
        #: The event loop's time when the session's overall limit runs out.
        self._deadline = deadline
        self._reader: Optional[MessageReader] = None
        self._closed_reason: Optional[str] = None
        self._lock = asyncio.Lock()
        # A retr_many loop's body is running: its task holds the connection
        # and does not use it.
        self._parked = False
        #: The task holding the lock, to tell a deadlock from a queue.
        self._holder: Optional["asyncio.Task[Any]"] = None
        #: Events are computed off the event loop (during a login).
        self._off_loop = False
        #: The server's greeting text.
        self.greeting: str = ""
        #: Wire trace lines ``(direction, line)`` when ``trace=True``.
        self.trace: List[Tuple[str, str]] = []

    # ----- plumbing -----

    @property
    def client(self) -> Client:
        """The sans-IO client underneath (for its state and capabilities)."""
        return self._client

    @property
    def is_encrypted(self) -> bool:
        """Whether the connection is encrypted."""
        return self._client.is_encrypted

    @property
    def capabilities(self) -> Optional[Dict[str, List[str]]]:
        """The latest capabilities the server listed, or None."""
        return self._client.capabilities

    def _peer_certificate(self) -> Optional[bytes]:
        """The server's certificate as received (DER), for the
        ``tls-server-end-point`` channel binding of SCRAM ``-PLUS``."""
        transport = self._protocol.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        certificate: Optional[bytes] = ssl_object.getpeercert(binary_form=True)
        return certificate

    def _abandon(self, handle: int) -> None:
        """The core reads the rest of this command's reply and drops it."""
        self._client.discard(handle)

    def _check_open(self) -> None:
        if self._closed_reason is not None:
            raise Error(f"connection closed: {self._closed_reason}")

    def _close_transport(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        transport = self._protocol.transport
        if transport is not None:
            transport.abort() if reason != "quit" else transport.close()

    def _limit(self) -> Tuple[Optional[float], bool]:
        """How long the next wait may take: the idle limit, or what remains
        of the session when that is shorter (then ``True``). Raises
        :class:`SessionTimeout` once the deadline has passed."""
        if self._deadline is None:
            return self._timeout, False
        remaining = self._deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            self._close_transport("session timed out")
            raise SessionTimeout("the session ran past its overall time limit")
        if self._timeout is None or remaining < self._timeout:
            return remaining, True
        return self._timeout, False

    async def _bounded(self, wait: Callable[[Optional[float]], Awaitable[Any]]) -> Any:
        """Runs the wait made by ``wait(limit)`` within :meth:`_limit`;
        the session's deadline firing is :class:`SessionTimeout`."""
        limit, is_deadline = self._limit()
        try:
            return await wait(limit)
        except asyncio.TimeoutError:
            if is_deadline:
                self._close_transport("session timed out")
                raise SessionTimeout("the session ran past its overall time limit") from None
            raise

    async def _flush(self) -> None:
        data = self._client.data_to_send()
        if data:
            transport = self._protocol.transport
            if transport is None or transport.is_closing():
                raise ConnectionError("connection lost")
            transport.write(data)
            await self._bounded(self._protocol.drain)

    async def _start_tls(self) -> None:
        # Bytes that came with or after the +OK to STLS, before the handshake,
        # go to the core, which refuses them (a man in the middle may inject
        # commands' replies there).
        early = self._protocol.take_all()
        if early:
            self._client.receive_data(early)
            return
        loop = asyncio.get_running_loop()
        context = self._ssl_context or _ssl.create_default_context()
        protocol = self._protocol
        # Not one read between the check above and the handshake: on Python
        # 3.11 and older `wait_for` starts `start_tls` in a task of its own,
        # and plaintext read meanwhile would be taken as if it came over TLS.
        # `start_tls` resumes reading itself once TLS sits in between.
        if protocol.transport is not None and not protocol._read_paused:
            protocol.transport.pause_reading()
        protocol._read_paused = False
        try:
            transport = await self._bounded(
                lambda limit: asyncio.wait_for(
                    loop.start_tls(
                        protocol.transport,  # type: ignore[arg-type]
                        protocol,
                        context,
                        server_hostname=self._host,
                    ),
                    limit,
                )
            )
        except BaseException as exc:
            self._close_transport(f"TLS handshake failed: {exc!r}")
            # The core ends the session: the STLS operation fails, what
            # waited behind it is cancelled, and every later call raises
            # instead of asking for a handshake again. The handshake's own
            # exception (ssl.SSLCertVerificationError, ...) is raised.
            with contextlib.suppress(Error):
                self._client.tls_failed()
            raise
        protocol.transport = transport  # type: ignore[assignment]
        self._client.tls_established()
        # A login submitted before the handshake gets the channel binding
        # it could not have then (SCRAM -PLUS).
        certificate = self._peer_certificate()
        if certificate is not None:
            self._client.bind_pending_logins(certificate)

    async def _next(self) -> object:
        """The next event that is not an instruction to the driver."""
        self._check_open()
        client = self._client
        protocol = self._protocol
        while True:
            try:
                event = await self._next_event() if self._off_loop else client.next_event()
            except ProtocolError as exc:
                self._close_transport(f"protocol error: {exc}")
                raise
            if isinstance(event, NeedData):
                protocol.client_wants_input(client.buffered_input)
                await self._flush()
                if protocol.chunks:
                    # Checked here too: a server that never pauses never
                    # makes a read wait.
                    self._limit()
                    data = protocol.take()
                else:
                    try:
                        data = await self._bounded(protocol.read)
                    except asyncio.TimeoutError:
                        self._close_transport("timed out")
                        raise
                client.receive_data(data)
                continue
            if isinstance(event, StartTls):
                await self._flush()
                await self._start_tls()
                continue
            if isinstance(event, Trace):
                self.trace.append((event.direction, event.line))
                continue
            if isinstance(event, Closed):
                self._close_transport("closed")
                return event
            return event

    async def _next_event(self) -> object:
        """The client's next event, computed on a worker thread (with the GIL
        released) so that a login's SCRAM key derivation (a fifth of a
        second at the largest iteration count the core accepts) does not
        hold up the event loop."""
        call = asyncio.get_running_loop().run_in_executor(None, self._client.next_event_off_loop)
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # The worker still holds the client: nothing may touch it (the
            # cancellation discards the command) before it lets go.
            while not call.done():
                try:
                    await asyncio.wait([call])
                except asyncio.CancelledError:
                    pass
            raise

    async def _wait(self, handle: int) -> object:
        """The next event of ``handle``. Events of other commands are
        dropped: the core reports none for an abandoned (discarded) one."""
        try:
            await self._flush()
            while True:
                event = await self._next()
                if isinstance(event, Closed):
                    raise Error("the server closed the connection")
                h = getattr(event, "handle", None)
                if h == handle:
                    return event
        except asyncio.CancelledError:
            self._abandon(handle)
            raise

    async def _complete(self, handle: int) -> object:
        """Waits for the command's completion; raises for -ERR and failures."""
        while True:
            event = await self._wait(handle)
            if isinstance(event, (Err, Failed, Cancelled)):
                _raise_for(event)
            if isinstance(event, _TERMINAL):
                return event

    def _begin(self) -> None:
        self._check_open()
        if self._reader is not None:
            self._reader._take_over()

    # How many turns of the event loop an operation gives a bulk generator
    # of its own task to finish closing. A loop left with ``break`` is
    # closed by the event loop's finaliser a turn or two later; a loop still
    # running never lets go.
    _RELEASE_TURNS = 8

    @contextlib.asynccontextmanager
    async def _exclusive(self, begin: bool = True):
        """Holds the connection for one operation. Operations of other tasks
        wait their turn; the task that already holds it (from inside a
        ``retr_many`` loop) would wait for itself, so it gets
        :class:`ConcurrentUseError` instead. With ``begin``, an unfinished
        :class:`MessageReader` is abandoned first."""
        task = asyncio.current_task()
        turns = 0
        while self._lock.locked() and self._holder is task:
            if turns == self._RELEASE_TURNS:
                raise ConcurrentUseError(
                    "this task is inside a retr_many loop, which holds the connection until "
                    "the loop ends; nothing was sent (use dele_many after the loop)"
                )
            turns += 1
            await asyncio.sleep(0)
        if self._lock.locked():
            await self._wait_for_lock()
        else:
            await self._lock.acquire()  # free: taken without suspending
        try:
            self._holder = task
            try:
                if begin:
                    self._begin()
                else:
                    self._check_open()
                yield
            finally:
                self._holder = None
        finally:
            self._lock.release()

    async def _wait_for_lock(self) -> None:
        """Takes the connection from another task's operation once it ends.
        Waiting is unbounded while that operation works; a retr_many loop
        parked in its body for a whole idle limit may be waiting for this
        very task, which would then wait for ever: ConcurrentUseError.
        (Not `wait_for`, which on Python 3.11 can swallow a cancellation
        that meets the lock being taken.)"""
        acquiring = asyncio.ensure_future(self._lock.acquire())
        try:
            while True:
                limit, _ = self._limit()
                done, _ = await asyncio.wait({acquiring}, timeout=limit)
                if done:
                    return
                if self._parked:
                    raise ConcurrentUseError(
                        "another task's retr_many loop held the connection for the whole "
                        "time limit without using it (waiting for this task?); nothing was sent"
                    )
        except BaseException:
            if acquiring.done() and not acquiring.cancelled() and acquiring.exception() is None:
                self._lock.release()
            else:
                acquiring.cancel()
            raise

    async def _simple(self, submit, off_loop: bool = False) -> object:
        async with self._exclusive():
            self._off_loop = off_loop
            try:
                return await self._complete(submit(self._client))
            finally:
                self._off_loop = False

    # ----- session -----

    async def _read_greeting(self) -> None:
        while True:
            event = await self._next()
            if isinstance(event, Greeting):
                self.greeting = event.text
                return
            if isinstance(event, Closed):
                raise ProtocolError("the server closed the connection before its greeting")

    async def start_tls(self) -> None:
        """Upgrades the connection with STLS. Raises :class:`UsageError` if the
        server does not list STLS (nothing is sent but CAPA). The same name as
        :meth:`pop3.Client.start_tls`, the Rust ``Connection::start_tls`` and
        the C ``pop3_client_start_tls``."""
        await self._simple(lambda c: c.start_tls())

    async def starttls(self) -> None:
        """Deprecated: the former name of :meth:`start_tls`."""
        warnings.warn(
            "Connection.starttls() is renamed start_tls()", DeprecationWarning, stacklevel=2
        )
        await self.start_tls()

    async def capa(self) -> Dict[str, List[str]]:
        """``CAPA``: the capabilities as ``{name: [arguments]}``."""
        event = await self._simple(lambda c: c.capa())
        assert isinstance(event, Capabilities)
        return dict(event.capabilities)

    async def login(
        self,
        user: str,
        password: str,
        method: Optional[str] = None,
        *,
        mechanism: Optional[str] = None,
    ) -> str:
        """Logs in. ``method`` is "auto" (the default: the strongest the
        server offers), "user", "apop", "plain", "login", "cram-md5",
        "scram-sha-1", "scram-sha-256", "xoauth2" or "oauthbearer" (the
        password is then an OAuth 2.0 token): the same name as
        :meth:`pop3.Client.login`'s and the C ``pop3_client_login``'s
        argument. Over TLS the server's certificate gives SCRAM the
        ``tls-server-end-point`` channel binding, so "auto" prefers
        ``SCRAM-SHA-256-PLUS`` where the server offers it. Returns the
        server's text; raises :class:`ServerError` on refusal.
        ``mechanism=`` is the former name, deprecated."""
        if mechanism is not None:
            warnings.warn(
                "login(mechanism=...) is renamed login(method=...)", DeprecationWarning, stacklevel=2
            )
            if method is not None and method != mechanism:
                raise UsageError("login() got both method and mechanism")
            method = mechanism
        chosen = method if method is not None else "auto"
        certificate = self._peer_certificate()
        event = await self._simple(
            lambda c: c.login(user, password, chosen, tls_certificate=certificate), off_loop=True
        )
        return getattr(event, "text", "")

    async def stat(self) -> Tuple[int, int]:
        """``STAT``: ``(message count, maildrop size in octets)``."""
        event = await self._simple(lambda c: c.stat())
        assert isinstance(event, Stat)
        return event.count, event.size

    @overload
    async def list(self) -> List[ListEntry]: ...

    @overload
    async def list(self, msg: int) -> ListEntry: ...

    async def list(self, msg: Optional[int] = None) -> Union[List[ListEntry], ListEntry]:
        """``LIST``: every message's ``ListEntry(msg, size)``; with ``msg``, that
        message's entry alone."""
        event = await self._simple(lambda c: c.list(msg))
        assert isinstance(event, Listing)
        return event.entries[0] if msg is not None else list(event.entries)

    @overload
    async def uidl(self) -> List[UidlEntry]: ...

    @overload
    async def uidl(self, msg: int) -> UidlEntry: ...

    async def uidl(self, msg: Optional[int] = None) -> Union[List[UidlEntry], UidlEntry]:
        """``UIDL``: every message's ``UidlEntry(msg, uid)``; with ``msg``, one."""
        event = await self._simple(lambda c: c.uidl(msg))
        assert isinstance(event, UidListing)
        return event.entries[0] if msg is not None else list(event.entries)

    async def _open_body(self, submit) -> MessageReader:
        async with self._exclusive():
            reader = MessageReader(self, submit(self._client))
            self._reader = reader
            await self._flush()
            return reader

    def retr(self, msg: int) -> "_BodyIterator":
        """``RETR``: ``async for chunk in conn.retr(n)`` streams the message.
        ``await conn.retr(n).read()`` returns it whole."""
        return _BodyIterator(self, lambda c: c.retr(msg))

    def top(self, msg: int, lines: int) -> "_BodyIterator":
        """``TOP``: the headers and the first ``lines`` body lines, streamed
        like :meth:`retr`."""
        return _BodyIterator(self, lambda c: c.top(msg, lines))

    async def _collect(self, submit, sink) -> int:
        """Runs a RETR/TOP to its end under the lock, passing each chunk to
        ``sink``; returns the octet count."""
        written = 0
        async with self._exclusive():
            handle = submit(self._client)
            while True:
                event = await self._wait(handle)
                if isinstance(event, BodyChunk):
                    result = sink(event.data)
                    if inspect.isawaitable(result):
                        # An asynchronous file (aiofiles and the like):
                        # the chunk is written only once this is awaited.
                        await result
                    written += len(event.data)
                elif isinstance(event, BodyEnd):
                    return written
                elif not isinstance(event, BodyStart):
                    _raise_for(event)

    async def retr_to(self, msg: int, file: Union[IO[bytes], Any]) -> int:
        """Streams message ``msg`` into a binary file object; returns the number
        of octets written. An asynchronous file object (whose ``write``
        returns an awaitable, as aiofiles' does) has each write awaited
        before the next chunk is taken."""
        return await self._collect(lambda c: c.retr(msg), file.write)

    async def retr_many(self, msgs: Iterable[int]) -> AsyncIterator[Tuple[int, bytes]]:
        """Retrieves several messages, pipelined when the server allows it,
        yielding ``(msg, content)`` in order. A ``-ERR`` for one message raises
        :class:`ServerError` (with ``.msg`` set); the rest are abandoned.
        Other tasks' operations on the connection wait until the iteration
        ends; one started inside the loop by the iterating task raises
        :class:`ConcurrentUseError` (nothing sent);
        leaving the loop early abandons the rest when the generator is
        closed (at once with ``contextlib.aclosing``)."""
        async for item in self._retr_many(msgs, then_quit=False):
            yield item

    async def retr_many_and_quit(self, msgs: Iterable[int]) -> AsyncIterator[Tuple[int, bytes]]:
        """Like :meth:`retr_many`, with ``QUIT`` sent as soon as the last
        message is in (not before: a server may drop replies it has not yet
        sent when it reads ``QUIT``). For a session that deletes nothing. The connection is
        closed when the iteration ends, whichever way it ends; a ``-ERR`` to
        ``QUIT`` raises :class:`ServerError` after the last message."""
        async for item in self._retr_many(msgs, then_quit=True):
            yield item

    async def _retr_many(self, msgs: Iterable[int], then_quit: bool) -> AsyncIterator[Tuple[int, bytes]]:
        msgs = [int(m) for m in msgs]
        async with self._exclusive():
            bulk = _Bulk(self, msgs, self._client.retr_many(msgs))
            quit_handle = self._client.quit() if then_quit else None
            try:
                while bulk.pending:
                    msg, handle = bulk.pending[0]
                    parts: List[bytes] = []
                    while True:
                        event = await self._wait(handle)
                        if isinstance(event, BodyChunk):
                            parts.append(event.data)
                        elif isinstance(event, BodyEnd):
                            break
                        elif not isinstance(event, BodyStart):
                            bulk.pending.popleft()
                            _raise_for(event, msg)
                    bulk.pending.popleft()
                    # While the loop's body runs, this task holds the
                    # connection without using it (see `_exclusive`).
                    self._parked = True
                    try:
                        yield msg, b"".join(parts)
                    finally:
                        self._parked = False
                if quit_handle is not None:
                    await self._complete(quit_handle)
            finally:
                bulk.abandon_rest()
                if quit_handle is not None:
                    self._close_transport("quit")

    async def dele_many(self, msgs: Iterable[int]) -> List[Optional[ServerError]]:
        """``DELE`` for each message, pipelined when the server allows it
        (committed by :meth:`quit`). One entry per message, in order: ``None``
        when it is marked deleted, or the :class:`ServerError` of its
        ``-ERR`` (not raised: the others still count)."""
        return await self._dele_many(msgs, then_quit=False)

    async def dele_many_and_quit(self, msgs: Iterable[int]) -> List[Optional[ServerError]]:
        """Like :meth:`dele_many`, with the ``QUIT`` that commits the
        deletions sent as soon as the last ``DELE`` reply is in. Returns
        the same list; a ``-ERR`` to ``QUIT`` raises :class:`ServerError`
        (then nothing was committed). The connection is closed afterwards."""
        return await self._dele_many(msgs, then_quit=True)

    async def _dele_many(self, msgs: Iterable[int], then_quit: bool) -> List[Optional[ServerError]]:
        msgs = [int(m) for m in msgs]
        async with self._exclusive():
            bulk = _Bulk(self, msgs, self._client.dele_many(msgs))
            quit_handle = self._client.quit() if then_quit else None
            try:
                results: List[Optional[ServerError]] = []
                while bulk.pending:
                    msg, handle = bulk.pending.popleft()
                    event = await self._wait(handle)
                    if isinstance(event, Err):
                        results.append(ServerError.from_event(event))
                    elif isinstance(event, Ok):
                        results.append(None)
                    else:
                        _raise_for(event, msg)
                if quit_handle is not None:
                    await self._complete(quit_handle)
                return results
            finally:
                bulk.abandon_rest()
                if quit_handle is not None:
                    self._close_transport("quit")

    async def dele(self, msg: int) -> str:
        """``DELE``: marks the message deleted (committed by :meth:`quit`)."""
        event = await self._simple(lambda c: c.dele(msg))
        return getattr(event, "text", "")

    async def rset(self) -> str:
        """``RSET``: unmarks deleted messages."""
        event = await self._simple(lambda c: c.rset())
        return getattr(event, "text", "")

    async def noop(self) -> str:
        """``NOOP``."""
        event = await self._simple(lambda c: c.noop())
        return getattr(event, "text", "")

    async def utf8(self) -> str:
        """``UTF8`` (RFC 6856)."""
        event = await self._simple(lambda c: c.utf8())
        return getattr(event, "text", "")

    async def quit(self) -> str:
        """``QUIT``: commits deletions and closes the connection."""
        if self._closed_reason is not None:
            return ""
        try:
            event = await self._simple(lambda c: c.quit())
            return getattr(event, "text", "")
        finally:
            self._close_transport("quit")

    def close(self) -> None:
        """Closes the connection at once, without QUIT (deletions are not committed)."""
        self._close_transport("closed by the caller")

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            await self.quit()
        else:
            self.close()


class _BodyIterator:
    """Returned by :meth:`Connection.retr` and :meth:`Connection.top`: submits
    the command on first use."""

    def __init__(self, conn: Connection, submit) -> None:
        self._conn = conn
        self._submit = submit
        self._reader: Optional[MessageReader] = None

    async def _open(self) -> MessageReader:
        if self._reader is None:
            self._reader = await self._conn._open_body(self._submit)
        return self._reader

    def __aiter__(self) -> "_BodyIterator":
        return self

    async def __anext__(self) -> bytes:
        reader = await self._open()
        return await reader.__anext__()

    async def read(self) -> bytes:
        """The whole message as one bytes object. Unlike iteration, other
        operations on the connection wait until it is complete."""
        if self._reader is not None:
            return await self._reader.read()
        parts: List[bytes] = []
        await self._conn._collect(self._submit, parts.append)
        return b"".join(parts)

    async def aclose(self) -> None:
        """Abandons the rest of the message."""
        if self._reader is not None:
            await self._reader.aclose()

    def __await__(self):
        return self.read().__await__()


async def connect(
    host: str,
    port: Optional[int] = None,
    *,
    tls: str = "implicit",
    ssl_context: Optional[_ssl.SSLContext] = None,
    timeout: Optional[float] = 60.0,
    session_timeout: Optional[float] = None,
    allow_plaintext_credentials: bool = False,
    trace: bool = False,
    max_line_len: Optional[int] = None,
    max_listing_lines: Optional[int] = None,
    max_listing_bytes: Optional[int] = None,
) -> Connection:
    """Opens a POP3 session and reads the greeting (and runs STLS for
    ``tls="starttls"``). ``port`` defaults to 995 for implicit TLS, else 110.

    ``max_line_len`` (default 8 KiB), ``max_listing_lines`` (default
    100,000) and ``max_listing_bytes`` (default 8 MiB of lines in one
    listing) bound what the server can make the client hold; a longer reply
    raises :class:`pop3.ProtocolError` and the session goes on. ``trace=True``
    records the wire lines (secrets redacted) in :attr:`Connection.trace`.

    ``timeout`` bounds each wait for the server (an idle limit);
    ``session_timeout`` (default none) bounds the whole session from this
    call on, however busy the server keeps it, and raises
    :class:`SessionTimeout` when it runs out."""
    if tls not in ("implicit", "starttls", "none"):
        raise UsageError(f"tls must be 'implicit', 'starttls' or 'none', not {tls!r}")
    if port is None:
        port = POP3_SSL_PORT if tls == "implicit" else POP3_PORT
    loop = asyncio.get_running_loop()
    deadline = None if session_timeout is None else loop.time() + session_timeout
    client = Client(
        encrypted=tls == "implicit",
        allow_plaintext_credentials=allow_plaintext_credentials,
        trace=trace,
        max_line_len=max_line_len,
        max_listing_lines=max_listing_lines,
        max_listing_bytes=max_listing_bytes,
        read_size=_READ_SIZE,
    )
    protocol = _Protocol(loop, client.input_bound)
    context = None
    if tls != "none":
        context = ssl_context or _ssl.create_default_context()
    connect_limit = timeout
    deadline_first = session_timeout is not None and (timeout is None or session_timeout < timeout)
    if deadline_first:
        connect_limit = session_timeout
    try:
        await asyncio.wait_for(
            loop.create_connection(
                lambda: protocol,
                host,
                port,
                ssl=context if tls == "implicit" else None,
                server_hostname=host if tls == "implicit" else None,
            ),
            connect_limit,
        )
    except asyncio.TimeoutError:
        if deadline_first:
            raise SessionTimeout("the session ran past its overall time limit") from None
        raise
    conn = Connection(protocol, client, host, context, timeout, deadline)
    try:
        await conn._read_greeting()
        if tls == "starttls":
            await conn.start_tls()
    except BaseException:
        conn.close()
        raise
    return conn
