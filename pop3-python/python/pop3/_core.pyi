"""Type stubs for the native part of the pop3 package (PyO3)."""

from typing import Dict, List, Optional, Sequence, Tuple, Union, final

class Error(Exception):
    """Base class of every error raised by the pop3 package."""

class ProtocolError(Error):
    """The server broke the POP3 protocol."""

class UsageError(Error):
    """The caller asked for something the session does not allow now; nothing was sent."""

def safe_text(text: Union[bytes, str]) -> str:
    """Server text made safe to print, by the core's one rule."""

@final
class NeedData:
    """Read from the server and call ``receive_data``."""

@final
class Closed:
    """The session is over: close the connection."""

@final
class Greeting:
    text: str
    apop_timestamp: Optional[str]

@final
class Ok:
    handle: Optional[int]
    text: str

@final
class LoggedIn:
    handle: Optional[int]
    text: str

@final
class Err:
    handle: Optional[int]
    code: Optional[str]
    text: str
    token_refusal: Optional[str]
    token_status: Optional[str]
    token_scope: Optional[str]
    token_schemes: Optional[str]
    authentication_refused: bool

@final
class Stat:
    handle: Optional[int]
    count: int
    size: int

@final
class ListEntry:
    msg: int
    size: int

@final
class UidlEntry:
    msg: int
    uid: str

@final
class Listing:
    handle: Optional[int]
    entries: List[ListEntry]

@final
class UidListing:
    handle: Optional[int]
    entries: List[UidlEntry]

@final
class Capabilities:
    handle: Optional[int]
    capabilities: Dict[str, List[str]]

@final
class Languages:
    handle: Optional[int]
    languages: List[Tuple[str, str]]

@final
class BodyStart:
    handle: Optional[int]

@final
class BodyChunk:
    handle: Optional[int]
    data: bytes

@final
class BodyEnd:
    handle: Optional[int]

@final
class StartTls:
    handle: Optional[int]

@final
class TlsEstablished:
    handle: Optional[int]

@final
class Trace:
    direction: str
    line: str

@final
class Failed:
    handle: Optional[int]
    error: str

@final
class Cancelled:
    handle: Optional[int]
    reason: str
    session_ended: bool

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

@final
class Client:
    """The sans-IO POP3 client."""

    def __init__(
        self,
        *,
        encrypted: bool = False,
        allow_plaintext_credentials: bool = False,
        pipeline_window: Optional[int] = None,
        max_line_len: Optional[int] = None,
        max_listing_lines: Optional[int] = None,
        max_listing_bytes: Optional[int] = None,
        max_body_line_len: Optional[int] = None,
        read_size: Optional[int] = None,
        trace: bool = False,
        state_checks: bool = True,
    ) -> None: ...
    def receive_data(self, data: bytes) -> None: ...
    def next_event(self) -> Event: ...
    def next_event_off_loop(self) -> Event: ...
    def data_to_send(self) -> bytes: ...
    def tls_established(self) -> None: ...
    def tls_failed(self) -> None: ...
    def bind_pending_logins(self, tls_certificate: bytes) -> int: ...
    @property
    def buffered_input(self) -> int: ...
    @property
    def input_bound(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def status_line(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def capabilities(self) -> Optional[Dict[str, List[str]]]: ...
    @property
    def apop_timestamp(self) -> Optional[str]: ...
    @property
    def is_encrypted(self) -> bool: ...
    @property
    def is_utf8(self) -> bool: ...
    @property
    def is_pipelining(self) -> bool: ...
    @property
    def is_idle(self) -> bool: ...
    @property
    def login_mechanism(self) -> Optional[str]: ...
    def user(self, name: str) -> int: ...
    def pass_(self, password: str) -> int: ...
    def apop(self, user: str, password: str) -> int: ...
    def capa(self) -> int: ...
    def stls(self) -> int: ...
    def stat(self) -> int: ...
    def list(self, msg: Optional[int] = None) -> int: ...
    def uidl(self, msg: Optional[int] = None) -> int: ...
    def retr(self, msg: int) -> int: ...
    def top(self, msg: int, lines: int) -> int: ...
    def dele(self, msg: int) -> int: ...
    def noop(self) -> int: ...
    def rset(self) -> int: ...
    def quit(self) -> int: ...
    def utf8(self) -> int: ...
    def lang(self, tag: Optional[str] = None) -> int: ...
    def raw(self, verb: str, args: Sequence[str] = ..., multiline: bool = False) -> int: ...
    def login(
        self,
        user: str,
        password: str,
        method: str = "auto",
        scram_nonce: Optional[str] = None,
        tls_certificate: Optional[bytes] = None,
    ) -> int: ...
    def start_tls(self) -> int: ...
    def retr_many(self, msgs: Sequence[int]) -> List[int]: ...
    def dele_many(self, msgs: Sequence[int]) -> List[int]: ...
    def discard(self, handle: int) -> None: ...
