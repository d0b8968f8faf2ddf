//! A SOCKS5 proxy client (RFC 1928), with user name and password
//! authentication (RFC 1929), as Tor and SSH's dynamic forwarding provide. It
//! knows nothing of the protocol spoken through the tunnel; `pop3-transport`
//! uses it to reach mail servers through a proxy.
//!
//! The destination's host name is sent to the proxy, which resolves it
//! (address type 3, "domain name"): nothing about the destination is looked up
//! locally, which is what Tor needs. IP literals are sent as addresses.
//!
//! Two parts:
//!
//! - [`Socks5Handshake`]: the client side of the handshake as a sans-IO state
//!   machine. It never reads more than the proxy's reply holds, so the
//!   server's first bytes that may follow in the same packet stay on the
//!   stream for the next layer (TLS, or the protocol itself). A pump around
//!   it writes what [`Socks5Handshake::next`] says to send and reads at most
//!   what it asks for; `pop3-transport` has one for every Rust runtime.
//! - [`Socks5Proxy`]: the proxy as a URL, `socks5://[user[:password]@]host[:port]`,
//!   and [`percent_decode`] for URLs' user names and passwords.
//!
//! Time limits are the pump's: a proxy that says nothing must not hang the
//! connection.
//!
//! The password is held as a [`pop3_proto::Secret`] (its `Debug` always
//! redacts), the one type that crate's users already know.
//!
//! ```
//! use socks5_client::{Next, Socks5Handshake};
//!
//! let mut handshake = Socks5Handshake::new("pop.example.org", 995, None)?;
//! // Offer "no authentication".
//! assert_eq!(handshake.next(), Next::Send(&[5, 1, 0][..]));
//! handshake.sent(3);
//! assert_eq!(handshake.next(), Next::Receive { max: 2 });
//! handshake.receive(&[5, 0])?;
//! // CONNECT to the host name, resolved by the proxy.
//! let Next::Send(request) = handshake.next() else { unreachable!() };
//! assert_eq!(&request[..5], &[5, 1, 0, 3, 15]);
//! let len = request.len();
//! handshake.sent(len);
//! // The proxy's reply, followed by the first bytes of the server's greeting:
//! // only the reply is consumed.
//! let consumed = handshake.receive(&[5, 0, 0, 1, 10, 0, 0, 1, 0x9c, 0x40, b'+', b'O', b'K'])?;
//! assert_eq!(consumed, 10);
//! assert!(matches!(handshake.next(), Next::Connected(_)));
//! # Ok::<(), socks5_client::Socks5Error>(())
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use pop3_proto::Secret;

/// The port SOCKS proxies listen on unless told otherwise (IANA).
pub const DEFAULT_PORT: u16 = 1080;

const VERSION: u8 = 5;
const AUTH_VERSION: u8 = 1;
const METHOD_NONE: u8 = 0x00;
const METHOD_USER_PASSWORD: u8 = 0x02;
const METHOD_NO_ACCEPTABLE: u8 = 0xFF;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// The handshake step a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Choosing the authentication method (the proxy's first reply).
    MethodSelection,
    /// User name and password authentication (RFC 1929).
    Authentication,
    /// The CONNECT request and its reply.
    Connect,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::MethodSelection => "method selection",
            Stage::Authentication => "authentication",
            Stage::Connect => "CONNECT",
        })
    }
}

/// Why the proxy could not open the connection: the `REP` field of its reply
/// (RFC 1928 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    /// `01`: general SOCKS server failure.
    GeneralFailure,
    /// `02`: the proxy's rules do not allow this connection.
    NotAllowed,
    /// `03`: network unreachable.
    NetworkUnreachable,
    /// `04`: host unreachable (also what proxies say when the name does not
    /// resolve).
    HostUnreachable,
    /// `05`: the destination refused the connection.
    ConnectionRefused,
    /// `06`: TTL expired.
    TtlExpired,
    /// `07`: the proxy does not support CONNECT.
    CommandNotSupported,
    /// `08`: the proxy does not support this address type (for example host
    /// names).
    AddressTypeNotSupported,
    /// A code RFC 1928 does not assign.
    Unassigned(u8),
}

impl ReplyCode {
    fn from_byte(code: u8) -> Self {
        match code {
            1 => ReplyCode::GeneralFailure,
            2 => ReplyCode::NotAllowed,
            3 => ReplyCode::NetworkUnreachable,
            4 => ReplyCode::HostUnreachable,
            5 => ReplyCode::ConnectionRefused,
            6 => ReplyCode::TtlExpired,
            7 => ReplyCode::CommandNotSupported,
            8 => ReplyCode::AddressTypeNotSupported,
            other => ReplyCode::Unassigned(other),
        }
    }

    /// The code as sent on the wire.
    pub fn as_byte(self) -> u8 {
        match self {
            ReplyCode::GeneralFailure => 1,
            ReplyCode::NotAllowed => 2,
            ReplyCode::NetworkUnreachable => 3,
            ReplyCode::HostUnreachable => 4,
            ReplyCode::ConnectionRefused => 5,
            ReplyCode::TtlExpired => 6,
            ReplyCode::CommandNotSupported => 7,
            ReplyCode::AddressTypeNotSupported => 8,
            ReplyCode::Unassigned(other) => other,
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyCode::GeneralFailure => f.write_str("general proxy server failure"),
            ReplyCode::NotAllowed => f.write_str("connection not allowed by the proxy's rules"),
            ReplyCode::NetworkUnreachable => f.write_str("network unreachable"),
            ReplyCode::HostUnreachable => f.write_str("host unreachable"),
            ReplyCode::ConnectionRefused => f.write_str("connection refused by the server"),
            ReplyCode::TtlExpired => f.write_str("TTL expired"),
            ReplyCode::CommandNotSupported => f.write_str("the proxy does not support CONNECT"),
            ReplyCode::AddressTypeNotSupported => {
                f.write_str("the proxy does not support this address type")
            }
            ReplyCode::Unassigned(code) => write!(f, "unknown reply code {code}"),
        }
    }
}

/// A failed SOCKS5 handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Socks5Error {
    /// The destination cannot be sent: an empty host name, one longer than
    /// 255 bytes or with control characters, or port 0. Nothing was sent.
    InvalidTarget(&'static str),
    /// The proxy credentials cannot be sent: an empty user name, or a user
    /// name or password longer than 255 bytes. Nothing was sent.
    InvalidCredentials(&'static str),
    /// The reply does not start with version 5: whatever answered is not a
    /// SOCKS5 proxy.
    NotSocks5 {
        /// The step whose reply was wrong.
        stage: Stage,
        /// The first byte received.
        version: u8,
    },
    /// The proxy accepts none of the offered authentication methods (it
    /// wants credentials, or other ones).
    NoAcceptableMethod,
    /// The proxy chose an authentication method the client did not offer.
    UnexpectedMethod(u8),
    /// The proxy refused the user name and password (RFC 1929 status).
    AuthRefused {
        /// The non-zero status byte.
        status: u8,
    },
    /// The proxy could not open the connection to the server.
    ConnectFailed(ReplyCode),
    /// A reply is not well formed (a reserved byte that is not zero, an
    /// unknown address type, an empty host name).
    MalformedReply {
        /// The step whose reply was wrong.
        stage: Stage,
        /// What is wrong.
        reason: &'static str,
    },
    /// The proxy sent bytes before the client's request it would answer.
    UnexpectedData(Stage),
    /// The proxy closed the connection before its reply was complete.
    Truncated(Stage),
}

impl fmt::Display for Socks5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Error::InvalidTarget(why) => write!(f, "SOCKS5: invalid destination: {why}"),
            Socks5Error::InvalidCredentials(why) => {
                write!(f, "SOCKS5: invalid proxy credentials: {why}")
            }
            Socks5Error::NotSocks5 { stage, version } => write!(
                f,
                "SOCKS5: the proxy's {stage} reply has version {version}, not 5; \
                 is this a SOCKS5 proxy?"
            ),
            Socks5Error::NoAcceptableMethod => f.write_str(
                "SOCKS5: the proxy accepts none of the offered authentication methods \
                 (does it need a user name and password?)",
            ),
            Socks5Error::UnexpectedMethod(m) => write!(
                f,
                "SOCKS5: the proxy chose authentication method {m}, which was not offered"
            ),
            Socks5Error::AuthRefused { status } => write!(
                f,
                "SOCKS5: the proxy refused the user name and password (status {status})"
            ),
            Socks5Error::ConnectFailed(code) => write!(f, "SOCKS5: {code}"),
            Socks5Error::MalformedReply { stage, reason } => {
                write!(f, "SOCKS5: malformed {stage} reply: {reason}")
            }
            Socks5Error::UnexpectedData(stage) => {
                write!(f, "SOCKS5: the proxy sent data out of turn during {stage}")
            }
            Socks5Error::Truncated(stage) => {
                write!(f, "SOCKS5: the proxy closed the connection during {stage}")
            }
        }
    }
}

impl std::error::Error for Socks5Error {}

impl From<Socks5Error> for io::Error {
    fn from(error: Socks5Error) -> Self {
        let kind = match &error {
            Socks5Error::InvalidTarget(_) | Socks5Error::InvalidCredentials(_) => {
                io::ErrorKind::InvalidInput
            }
            Socks5Error::ConnectFailed(ReplyCode::ConnectionRefused) => {
                io::ErrorKind::ConnectionRefused
            }
            Socks5Error::ConnectFailed(ReplyCode::HostUnreachable) => {
                io::ErrorKind::HostUnreachable
            }
            Socks5Error::ConnectFailed(ReplyCode::NetworkUnreachable) => {
                io::ErrorKind::NetworkUnreachable
            }
            Socks5Error::AuthRefused { .. } | Socks5Error::NoAcceptableMethod => {
                io::ErrorKind::PermissionDenied
            }
            Socks5Error::Truncated(_) => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// Why a pump around [`Socks5Handshake`] failed: the stream's error, or the
/// handshake's.
#[derive(Debug)]
#[non_exhaustive]
pub enum Socks5ConnectError {
    /// Reading from or writing to the proxy failed (including a timeout set
    /// on the stream).
    Io(io::Error),
    /// The handshake failed.
    Socks5(Socks5Error),
}

impl fmt::Display for Socks5ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5ConnectError::Io(e) => write!(f, "SOCKS5: talking to the proxy: {e}"),
            Socks5ConnectError::Socks5(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Socks5ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Socks5ConnectError::Io(e) => Some(e),
            Socks5ConnectError::Socks5(e) => Some(e),
        }
    }
}

impl From<io::Error> for Socks5ConnectError {
    fn from(e: io::Error) -> Self {
        Socks5ConnectError::Io(e)
    }
}

impl From<Socks5Error> for Socks5ConnectError {
    fn from(e: Socks5Error) -> Self {
        Socks5ConnectError::Socks5(e)
    }
}

impl From<Socks5ConnectError> for io::Error {
    fn from(e: Socks5ConnectError) -> Self {
        match e {
            Socks5ConnectError::Io(e) => e,
            Socks5ConnectError::Socks5(e) => e.into(),
        }
    }
}

/// The address the proxy connected from, as its CONNECT reply names it
/// (informational; proxies often send `0.0.0.0:0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BoundAddress {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A host name and port.
    Domain(String, u16),
}

/// What the caller of a [`Socks5Handshake`] does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<'a> {
    /// Write these bytes to the proxy, then report them with
    /// [`Socks5Handshake::sent`].
    Send(&'a [u8]),
    /// Read from the proxy, at most `max` bytes (reading no more keeps the
    /// POP3 server's first bytes on the stream), and pass them to
    /// [`Socks5Handshake::receive`]; at end of stream call
    /// [`Socks5Handshake::receive_eof`].
    Receive {
        /// The most bytes the current reply still needs; never 0.
        max: usize,
    },
    /// The tunnel is open: the stream now leads to the server.
    Connected(&'a BoundAddress),
    /// The handshake failed; [`Socks5Handshake::receive`] repeats the error.
    Failed,
}

/// Where the handshake stands.
#[derive(Debug)]
enum State {
    /// The method offer is (being) sent, or the reply is awaited.
    Method,
    /// The user name and password are (being) sent, or the reply is awaited.
    Auth,
    /// The CONNECT request is (being) sent, or the reply is awaited.
    Connect,
    Connected(BoundAddress),
    Failed(Socks5Error),
}

/// The client side of a SOCKS5 handshake that opens a tunnel to one
/// destination, with no I/O of its own.
///
/// Drive it with [`Socks5Handshake::next`] until it says
/// [`Next::Connected`]: write what it says to send, read at most what it says
/// to read. A pump is that loop.
///
/// With credentials, both "no authentication" and "user name and password"
/// are offered, and the proxy chooses; without, only "no authentication".
pub struct Socks5Handshake {
    state: State,
    /// Bytes still to be written for the current step.
    output: Vec<u8>,
    /// The reply received so far for the current step.
    reply: Vec<u8>,
    /// The RFC 1929 request, kept until the proxy asks for it. It holds the
    /// password, so it is wiped when it is no longer needed.
    auth_request: Option<Secret<Vec<u8>>>,
    /// The CONNECT request.
    connect_request: Vec<u8>,
    /// Whether the output buffer holds the password.
    output_is_secret: bool,
}

impl fmt::Debug for Socks5Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Handshake")
            .field("state", &self.state)
            .field("pending_output", &self.output.len())
            .field("with_credentials", &self.auth_request.is_some())
            .finish_non_exhaustive()
    }
}

impl Socks5Handshake {
    /// Prepares a handshake that asks the proxy to connect to `host`:`port`,
    /// authenticating with `credentials` (user name, password) if the proxy
    /// wants them.
    ///
    /// `host` is a host name, resolved by the proxy, or an IP literal (IPv6
    /// with or without brackets). Fails with [`Socks5Error::InvalidTarget`] or
    /// [`Socks5Error::InvalidCredentials`] when they cannot be encoded: SOCKS5
    /// limits each to 255 bytes, and RFC 1929 needs a non-empty user name. An
    /// empty password is sent as such: RFC 1929 does not allow it, but proxies
    /// that isolate by user name (Tor) accept it.
    pub fn new(
        host: &str,
        port: u16,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, Socks5Error> {
        let connect_request = connect_request(host, port)?;
        let auth_request = credentials
            .map(|(user, password)| auth_request(user, password))
            .transpose()?;
        let output = if auth_request.is_some() {
            vec![VERSION, 2, METHOD_NONE, METHOD_USER_PASSWORD]
        } else {
            vec![VERSION, 1, METHOD_NONE]
        };
        Ok(Socks5Handshake {
            state: State::Method,
            output,
            reply: Vec::new(),
            auth_request,
            connect_request,
            output_is_secret: false,
        })
    }

    /// What to do next.
    pub fn next(&self) -> Next<'_> {
        match &self.state {
            State::Failed(_) => Next::Failed,
            State::Connected(bound) => Next::Connected(bound),
            _ if !self.output.is_empty() => Next::Send(&self.output),
            _ => Next::Receive {
                max: self.reply_wanted(),
            },
        }
    }

    /// Reports that the first `n` bytes of [`Next::Send`] were written.
    pub fn sent(&mut self, n: usize) {
        let n = n.min(self.output.len());
        if self.output_is_secret {
            // Best effort: do not leave the password in a freed buffer.
            self.output[..n].fill(0);
        }
        self.output.drain(..n);
        if self.output.is_empty() {
            self.output_is_secret = false;
        }
    }

    /// The bytes still to be written (empty when the proxy's turn).
    pub fn bytes_to_send(&self) -> &[u8] {
        match self.state {
            State::Failed(_) | State::Connected(_) => &[],
            _ => &self.output,
        }
    }

    /// Takes bytes read from the proxy; returns how many belong to the
    /// handshake.
    ///
    /// The count is smaller than `input.len()` only once the tunnel is open:
    /// the rest is the server's, and must be handed to the POP3 or TLS layer.
    /// Bytes that arrive when it is the client's turn to send are an error.
    /// After an error, every call returns the same error.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, Socks5Error> {
        let mut consumed = 0;
        while consumed < input.len() {
            match &self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Connected(_) => return Ok(consumed),
                _ if !self.output.is_empty() => {
                    let stage = self.stage();
                    return Err(self.fail(Socks5Error::UnexpectedData(stage)));
                }
                _ => {}
            }
            let take = self.reply_wanted().min(input.len() - consumed);
            self.reply
                .extend_from_slice(&input[consumed..consumed + take]);
            consumed += take;
            if let Err(error) = self.advance() {
                return Err(self.fail(error));
            }
        }
        match &self.state {
            State::Failed(error) => Err(error.clone()),
            _ => Ok(consumed),
        }
    }

    /// Reports that the proxy closed the connection; returns the error to
    /// report ([`Socks5Error::Truncated`] unless the handshake had already
    /// failed). Once connected, end of stream is the server's business, and
    /// this returns `None`.
    pub fn receive_eof(&mut self) -> Option<Socks5Error> {
        match &self.state {
            State::Connected(_) => None,
            State::Failed(error) => Some(error.clone()),
            _ => {
                let stage = self.stage();
                Some(self.fail(Socks5Error::Truncated(stage)))
            }
        }
    }

    /// The error the handshake failed with, if it did.
    pub fn error(&self) -> Option<&Socks5Error> {
        match &self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Whether the tunnel is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    fn stage(&self) -> Stage {
        match self.state {
            State::Method => Stage::MethodSelection,
            State::Auth => Stage::Authentication,
            State::Connect | State::Connected(_) | State::Failed(_) => Stage::Connect,
        }
    }

    fn fail(&mut self, error: Socks5Error) -> Socks5Error {
        self.wipe_secrets();
        self.state = State::Failed(error.clone());
        error
    }

    fn wipe_secrets(&mut self) {
        if self.output_is_secret {
            self.output.fill(0);
            self.output.clear();
            self.output_is_secret = false;
        }
        if let Some(request) = self.auth_request.take() {
            request.into_inner().fill(0);
        }
    }

    /// How many more bytes the reply of the current step needs, as far as
    /// the bytes so far tell.
    fn reply_wanted(&self) -> usize {
        let have = self.reply.len();
        let total = match self.state {
            State::Method | State::Auth => 2,
            State::Connect => match self.reply.get(3) {
                // VER REP RSV ATYP and the first address byte (for a domain,
                // its length) come first; the rest depends on them.
                None => 5,
                Some(&ATYP_IPV4) => 4 + 4 + 2,
                Some(&ATYP_IPV6) => 4 + 16 + 2,
                Some(_) => match self.reply.get(4) {
                    Some(&len) => 4 + 1 + usize::from(len) + 2,
                    None => 5,
                },
            },
            State::Connected(_) | State::Failed(_) => have,
        };
        total.saturating_sub(have)
    }

    /// Checks the reply so far and moves on when it is complete.
    fn advance(&mut self) -> Result<(), Socks5Error> {
        let stage = self.stage();
        // Check the version as soon as it arrives, so that whatever is not a
        // SOCKS5 proxy is recognised at its first byte.
        if let Some(&version) = self.reply.first() {
            let expected = match self.state {
                // Some proxies answer the RFC 1929 exchange with the SOCKS
                // version instead of the sub-negotiation version; the status
                // byte means the same either way.
                State::Auth => version == AUTH_VERSION || version == VERSION,
                _ => version == VERSION,
            };
            if !expected {
                return Err(Socks5Error::NotSocks5 { stage, version });
            }
        }
        if matches!(self.state, State::Connect) {
            self.check_connect_header()?;
        }
        if self.reply_wanted() > 0 {
            return Ok(());
        }
        let reply = std::mem::take(&mut self.reply);
        match self.state {
            State::Method => match reply[1] {
                METHOD_NONE => self.start_connect(),
                METHOD_USER_PASSWORD => match self.auth_request.take() {
                    Some(request) => {
                        self.output = request.into_inner();
                        self.output_is_secret = true;
                        self.state = State::Auth;
                    }
                    None => return Err(Socks5Error::UnexpectedMethod(METHOD_USER_PASSWORD)),
                },
                METHOD_NO_ACCEPTABLE => return Err(Socks5Error::NoAcceptableMethod),
                other => return Err(Socks5Error::UnexpectedMethod(other)),
            },
            State::Auth => match reply[1] {
                0 => self.start_connect(),
                status => return Err(Socks5Error::AuthRefused { status }),
            },
            State::Connect => {
                let bound = parse_bound_address(&reply)?;
                self.state = State::Connected(bound);
            }
            State::Connected(_) | State::Failed(_) => {}
        }
        Ok(())
    }

    /// The CONNECT reply's fixed part: fail as early as it tells.
    fn check_connect_header(&self) -> Result<(), Socks5Error> {
        let malformed = |reason| Socks5Error::MalformedReply {
            stage: Stage::Connect,
            reason,
        };
        if let Some(&rep) = self.reply.get(1) {
            if rep != 0 {
                return Err(Socks5Error::ConnectFailed(ReplyCode::from_byte(rep)));
            }
        }
        if let Some(&rsv) = self.reply.get(2) {
            if rsv != 0 {
                return Err(malformed("reserved byte is not zero"));
            }
        }
        if let Some(&atyp) = self.reply.get(3) {
            if ![ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6].contains(&atyp) {
                return Err(malformed("unknown address type"));
            }
            if atyp == ATYP_DOMAIN && self.reply.get(4) == Some(&0) {
                return Err(malformed("empty host name"));
            }
        }
        Ok(())
    }

    fn start_connect(&mut self) {
        self.wipe_secrets();
        self.output = std::mem::take(&mut self.connect_request);
        self.state = State::Connect;
    }
}

/// `VER CMD RSV ATYP DST.ADDR DST.PORT`.
fn connect_request(host: &str, port: u16) -> Result<Vec<u8>, Socks5Error> {
    if port == 0 {
        return Err(Socks5Error::InvalidTarget("port 0"));
    }
    let mut request = vec![VERSION, CMD_CONNECT, 0];
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match unbracketed.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(ATYP_IPV4);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(ATYP_IPV6);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            if host.is_empty() {
                return Err(Socks5Error::InvalidTarget("empty host name"));
            }
            let Ok(len) = u8::try_from(host.len()) else {
                return Err(Socks5Error::InvalidTarget(
                    "host name longer than 255 bytes",
                ));
            };
            if host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(Socks5Error::InvalidTarget(
                    "host name contains spaces or control characters",
                ));
            }
            request.push(ATYP_DOMAIN);
            request.push(len);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// `VER ULEN UNAME PLEN PASSWD` (RFC 1929).
fn auth_request(user: &str, password: &str) -> Result<Secret<Vec<u8>>, Socks5Error> {
    if user.is_empty() {
        return Err(Socks5Error::InvalidCredentials("empty user name"));
    }
    let Ok(user_len) = u8::try_from(user.len()) else {
        return Err(Socks5Error::InvalidCredentials(
            "user name longer than 255 bytes",
        ));
    };
    let Ok(password_len) = u8::try_from(password.len()) else {
        return Err(Socks5Error::InvalidCredentials(
            "password longer than 255 bytes",
        ));
    };
    let mut request = Vec::with_capacity(3 + user.len() + password.len());
    request.push(AUTH_VERSION);
    request.push(user_len);
    request.extend_from_slice(user.as_bytes());
    request.push(password_len);
    request.extend_from_slice(password.as_bytes());
    Ok(Secret::new(request))
}

/// `VER REP RSV ATYP BND.ADDR BND.PORT`, already checked and complete.
fn parse_bound_address(reply: &[u8]) -> Result<BoundAddress, Socks5Error> {
    let malformed = Socks5Error::MalformedReply {
        stage: Stage::Connect,
        reason: "address does not match its type",
    };
    let address = reply.get(4..reply.len().saturating_sub(2)).unwrap_or(&[]);
    let port = match reply.get(reply.len().saturating_sub(2)..) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => return Err(malformed),
    };
    match (reply.get(3), address.len()) {
        (Some(&ATYP_IPV4), 4) => {
            let octets: [u8; 4] = address.try_into().map_err(|_| malformed.clone())?;
            Ok(BoundAddress::Ip(SocketAddr::new(
                Ipv4Addr::from(octets).into(),
                port,
            )))
        }
        (Some(&ATYP_IPV6), 16) => {
            let octets: [u8; 16] = address.try_into().map_err(|_| malformed.clone())?;
            Ok(BoundAddress::Ip(SocketAddr::new(
                Ipv6Addr::from(octets).into(),
                port,
            )))
        }
        (Some(&ATYP_DOMAIN), n) if n >= 1 => Ok(BoundAddress::Domain(
            String::from_utf8_lossy(&address[1..]).into_owned(),
            port,
        )),
        _ => Err(malformed),
    }
}

/// Why a proxy URL was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// The scheme is not `socks5` or `socks5h` (the scheme given).
    UnsupportedScheme(String),
    /// The URL does not start with a scheme and `://`.
    MissingScheme,
    /// There is no host.
    MissingHost,
    /// The port is not a number from 1 to 65535.
    InvalidPort,
    /// An IPv6 address lacks its closing `]`.
    UnclosedBracket,
    /// A `%` escape is not two hex digits, or decodes to invalid UTF-8.
    InvalidEscape,
    /// The URL has a path, query or fragment, which a proxy URL cannot use.
    UnexpectedPath,
    /// The credentials cannot be sent (see
    /// [`Socks5Error::InvalidCredentials`]).
    InvalidCredentials(&'static str),
}

impl fmt::Display for ProxyUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("proxy URL: ")?;
        match self {
            ProxyUrlError::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme {s:?} (use socks5://)")
            }
            ProxyUrlError::MissingScheme => {
                f.write_str("expected socks5://[user[:password]@]host[:port]")
            }
            ProxyUrlError::MissingHost => f.write_str("no host"),
            ProxyUrlError::InvalidPort => f.write_str("the port is not a number from 1 to 65535"),
            ProxyUrlError::UnclosedBracket => f.write_str("IPv6 address without closing ']'"),
            ProxyUrlError::InvalidEscape => f.write_str("invalid %-escape"),
            ProxyUrlError::UnexpectedPath => {
                f.write_str("a path, query or fragment is not allowed")
            }
            ProxyUrlError::InvalidCredentials(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ProxyUrlError {}

/// A SOCKS5 proxy given as a URL: `socks5://[user[:password]@]host[:port]`.
///
/// `socks5h://` (curl's spelling for "the proxy resolves names") is accepted
/// as the same thing: names are always resolved by the proxy. The port
/// defaults to 1080. User name and password may be %-encoded (`%40` for `@`,
/// `%3A` for `:`). The password may be left out of the URL, to be asked for
/// or read from elsewhere: [`Socks5Proxy::password`] is then `None`.
///
/// `Debug` and `Display` never show the password.
///
/// ```
/// use socks5_client::Socks5Proxy;
///
/// let proxy: Socks5Proxy = "socks5://alice:p%40ss@127.0.0.1:9050".parse()?;
/// assert_eq!((proxy.host.as_str(), proxy.port), ("127.0.0.1", 9050));
/// assert_eq!(proxy.credentials(), Some(("alice", "p@ss")));
/// assert_eq!(proxy.to_string(), "socks5://alice@127.0.0.1:9050");
/// # Ok::<(), socks5_client::ProxyUrlError>(())
/// ```
#[derive(Clone)]
pub struct Socks5Proxy {
    /// The proxy's host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// The user name for RFC 1929 authentication.
    pub username: Option<String>,
    /// The password, if the URL carried one.
    pub password: Option<Secret<String>>,
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl fmt::Display for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("socks5://")?;
        if let Some(user) = &self.username {
            write!(f, "{}@", percent_encode(user))?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Socks5Proxy {
    /// Parses `socks5://[user[:password]@]host[:port]`.
    pub fn parse(url: &str) -> Result<Self, ProxyUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(ProxyUrlError::MissingScheme)?;
        if !scheme.eq_ignore_ascii_case("socks5") && !scheme.eq_ignore_ascii_case("socks5h") {
            return Err(ProxyUrlError::UnsupportedScheme(scheme.to_owned()));
        }
        // A single trailing slash is harmless; anything after it is not.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(ProxyUrlError::UnexpectedPath);
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let user = percent_decode_text(user)?;
                let password = password.map(percent_decode_text).transpose()?;
                // Check now what the handshake would refuse later.
                auth_request(&user, password.as_deref().unwrap_or("")).map_err(|e| match e {
                    Socks5Error::InvalidCredentials(why) => ProxyUrlError::InvalidCredentials(why),
                    _ => ProxyUrlError::InvalidCredentials("invalid credentials"),
                })?;
                (Some(user), password.map(Secret::new))
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(ProxyUrlError::UnclosedBracket)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(ProxyUrlError::InvalidPort)?),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(ProxyUrlError::MissingHost);
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(ProxyUrlError::InvalidPort),
                    Ok(port) => port,
                }
            }
            Some(_) => return Err(ProxyUrlError::InvalidPort),
        };
        Ok(Socks5Proxy {
            host: host.to_owned(),
            port,
            username,
            password,
        })
    }

    /// The user name and password to authenticate with, when both are known.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => Some((user, password.expose())),
            _ => None,
        }
    }
}

impl FromStr for Socks5Proxy {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Socks5Proxy::parse(s)
    }
}

/// Decodes the `%XX` escapes of a URL part (a user name, a password):
/// `None` if an escape is not `%` and two hexadecimal digits. The bytes may
/// be any; whether they must be UTF-8 is the caller's choice.
///
/// ```
/// assert_eq!(socks5_client::percent_decode("a%40b"), Some(b"a@b".to_vec()));
/// assert_eq!(socks5_client::percent_decode("100%"), None);
/// ```
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// [`percent_decode`] into text, for [`Socks5Proxy::parse`].
fn percent_decode_text(s: &str) -> Result<String, ProxyUrlError> {
    let bytes = percent_decode(s).ok_or(ProxyUrlError::InvalidEscape)?;
    String::from_utf8(bytes).map_err(|_| ProxyUrlError::InvalidEscape)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOST: &str = "pop.example.org";

    /// The CONNECT request for HOST:995.
    fn connect_to_host() -> Vec<u8> {
        let mut r = vec![5, 1, 0, 3, HOST.len() as u8];
        r.extend_from_slice(HOST.as_bytes());
        r.extend_from_slice(&995u16.to_be_bytes());
        r
    }

    const OK_V4: [u8; 10] = [5, 0, 0, 1, 10, 0, 0, 1, 0x9c, 0x40];

    /// Sends what is pending and checks it.
    fn expect_send(h: &mut Socks5Handshake, expected: &[u8]) {
        assert_eq!(h.next(), Next::Send(expected));
        assert_eq!(h.bytes_to_send(), expected);
        h.sent(expected.len());
    }

    /// A handshake without credentials that has reached the CONNECT reply.
    fn at_connect_reply() -> Socks5Handshake {
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        expect_send(&mut h, &[5, 1, 0]);
        assert_eq!(h.receive(&[5, 0]), Ok(2));
        expect_send(&mut h, &connect_to_host());
        h
    }

    fn at_auth_reply() -> Socks5Handshake {
        let mut h = Socks5Handshake::new(HOST, 995, Some(("alice", "s3cret"))).unwrap();
        expect_send(&mut h, &[5, 2, 0, 2]);
        assert_eq!(h.receive(&[5, 2]), Ok(2));
        expect_send(&mut h, b"\x01\x05alice\x06s3cret");
        h
    }

    #[test]
    fn without_authentication() {
        let mut h = at_connect_reply();
        assert_eq!(h.next(), Next::Receive { max: 5 });
        assert_eq!(h.receive(&OK_V4), Ok(10));
        assert!(h.is_connected());
        let bound = BoundAddress::Ip("10.0.0.1:40000".parse().unwrap());
        assert_eq!(h.next(), Next::Connected(&bound));
        assert_eq!(h.bytes_to_send(), b"");
        assert_eq!(h.receive_eof(), None);
    }

    #[test]
    fn with_authentication() {
        let mut h = at_auth_reply();
        assert_eq!(h.next(), Next::Receive { max: 2 });
        assert_eq!(h.receive(&[1, 0]), Ok(2));
        expect_send(&mut h, &connect_to_host());
        let mut reply = vec![5, 0, 0, 4];
        reply.extend_from_slice(&[0; 15]);
        reply.push(1);
        reply.extend_from_slice(&[0, 25]);
        assert_eq!(h.receive(&reply), Ok(22));
        let bound = BoundAddress::Ip("[::1]:25".parse().unwrap());
        assert_eq!(h.next(), Next::Connected(&bound));
    }

    #[test]
    fn auth_reply_with_socks_version_is_accepted() {
        let mut h = at_auth_reply();
        assert_eq!(h.receive(&[5, 0]), Ok(2));
        expect_send(&mut h, &connect_to_host());
    }

    #[test]
    fn proxy_may_skip_authentication_when_offered() {
        let mut h = Socks5Handshake::new(HOST, 995, Some(("alice", "pw"))).unwrap();
        expect_send(&mut h, &[5, 2, 0, 2]);
        assert_eq!(h.receive(&[5, 0]), Ok(2));
        expect_send(&mut h, &connect_to_host());
    }

    #[test]
    fn domain_bound_address() {
        let mut h = at_connect_reply();
        let reply = b"\x05\x00\x00\x03\x09proxy.lan\x04\x38";
        assert_eq!(h.receive(reply), Ok(reply.len()));
        assert_eq!(
            h.next(),
            Next::Connected(&BoundAddress::Domain("proxy.lan".into(), 1080))
        );
    }

    #[test]
    fn reads_are_bounded_by_the_reply() {
        let mut h = at_connect_reply();
        assert_eq!(h.next(), Next::Receive { max: 5 });
        h.receive(&[5, 0, 0]).unwrap();
        assert_eq!(h.next(), Next::Receive { max: 2 });
        h.receive(&[3, 4]).unwrap();
        // A four-byte name and the port.
        assert_eq!(h.next(), Next::Receive { max: 6 });
        h.receive(b"ab").unwrap();
        assert_eq!(h.next(), Next::Receive { max: 4 });
        // The server's greeting follows in the same read: not consumed.
        assert_eq!(h.receive(b"cd\x00\x01+OK POP3\r\n"), Ok(4));
        assert!(h.is_connected());
        assert_eq!(h.receive(b"+OK"), Ok(0));
    }

    #[test]
    fn byte_at_a_time() {
        let mut h = Socks5Handshake::new(HOST, 995, Some(("u", "p"))).unwrap();
        expect_send(&mut h, &[5, 2, 0, 2]);
        for b in [5, 2] {
            assert_eq!(h.receive(&[b]), Ok(1));
        }
        expect_send(&mut h, b"\x01\x01u\x01p");
        for b in [1, 0] {
            assert_eq!(h.receive(&[b]), Ok(1));
        }
        expect_send(&mut h, &connect_to_host());
        for b in OK_V4 {
            assert!(!h.is_connected());
            assert_eq!(h.receive(&[b]), Ok(1));
        }
        assert!(h.is_connected());
    }

    #[test]
    fn partial_writes() {
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(1);
        assert_eq!(h.next(), Next::Send(&[1, 0][..]));
        h.sent(5);
        assert_eq!(h.next(), Next::Receive { max: 2 });
    }

    #[test]
    fn no_acceptable_method() {
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(3);
        assert_eq!(h.receive(&[5, 0xFF]), Err(Socks5Error::NoAcceptableMethod));
        assert_eq!(h.next(), Next::Failed);
        // Sticky.
        assert_eq!(h.receive(&[5, 0]), Err(Socks5Error::NoAcceptableMethod));
        assert_eq!(h.receive_eof(), Some(Socks5Error::NoAcceptableMethod));
        assert_eq!(h.error(), Some(&Socks5Error::NoAcceptableMethod));
    }

    #[test]
    fn unexpected_method() {
        for (credentials, method) in [(None, 2), (None, 1), (Some(("u", "p")), 1), (None, 0x80)] {
            let mut h = Socks5Handshake::new(HOST, 995, credentials).unwrap();
            h.sent(h.bytes_to_send().len());
            assert_eq!(
                h.receive(&[5, method]),
                Err(Socks5Error::UnexpectedMethod(method))
            );
        }
    }

    #[test]
    fn auth_refused() {
        let mut h = at_auth_reply();
        assert_eq!(
            h.receive(&[1, 1]),
            Err(Socks5Error::AuthRefused { status: 1 })
        );
        assert!(h.bytes_to_send().is_empty());
    }

    #[test]
    fn every_reply_code() {
        let words = [
            (1, ReplyCode::GeneralFailure, "general proxy server failure"),
            (2, ReplyCode::NotAllowed, "not allowed"),
            (3, ReplyCode::NetworkUnreachable, "network unreachable"),
            (4, ReplyCode::HostUnreachable, "host unreachable"),
            (5, ReplyCode::ConnectionRefused, "connection refused"),
            (6, ReplyCode::TtlExpired, "TTL expired"),
            (
                7,
                ReplyCode::CommandNotSupported,
                "does not support CONNECT",
            ),
            (8, ReplyCode::AddressTypeNotSupported, "address type"),
            (9, ReplyCode::Unassigned(9), "unknown reply code 9"),
            (0xFF, ReplyCode::Unassigned(0xFF), "unknown reply code 255"),
        ];
        for (byte, code, text) in words {
            let mut h = at_connect_reply();
            // Reported as soon as REP arrives.
            let error = h.receive(&[5, byte]).unwrap_err();
            assert_eq!(error, Socks5Error::ConnectFailed(code));
            assert_eq!(code.as_byte(), byte);
            assert!(error.to_string().contains(text), "{error}");
        }
    }

    #[test]
    fn not_a_socks5_proxy() {
        // An HTTP proxy answering the greeting: refused at its first byte.
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(3);
        assert_eq!(
            h.receive(b"H"),
            Err(Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: b'H'
            })
        );
        let mut h = at_auth_reply();
        assert_eq!(
            h.receive(&[2, 0]),
            Err(Socks5Error::NotSocks5 {
                stage: Stage::Authentication,
                version: 2
            })
        );
        let mut h = at_connect_reply();
        assert_eq!(
            h.receive(&[4, 0x5a, 0, 0, 0, 0, 0, 0]),
            Err(Socks5Error::NotSocks5 {
                stage: Stage::Connect,
                version: 4
            })
        );
    }

    #[test]
    fn malformed_connect_replies() {
        for (reply, reason) in [
            (&[5, 0, 1][..], "reserved"),
            (&[5, 0, 0, 2], "address type"),
            (&[5, 0, 0, 0], "address type"),
            (&[5, 0, 0, 3, 0], "empty host"),
        ] {
            let mut h = at_connect_reply();
            let error = h.receive(reply).unwrap_err();
            assert!(
                matches!(error, Socks5Error::MalformedReply { stage: Stage::Connect, reason: r } if r.contains(reason)),
                "{reply:?}: {error:?}"
            );
        }
    }

    #[test]
    fn truncated_at_every_stage() {
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(3);
        assert_eq!(
            h.receive_eof(),
            Some(Socks5Error::Truncated(Stage::MethodSelection))
        );
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(3);
        h.receive(&[5]).unwrap();
        assert_eq!(
            h.receive_eof(),
            Some(Socks5Error::Truncated(Stage::MethodSelection))
        );
        let mut h = at_auth_reply();
        h.receive(&[1]).unwrap();
        assert_eq!(
            h.receive_eof(),
            Some(Socks5Error::Truncated(Stage::Authentication))
        );
        for cut in 0..OK_V4.len() {
            let mut h = at_connect_reply();
            h.receive(&OK_V4[..cut]).unwrap();
            assert_eq!(
                h.receive_eof(),
                Some(Socks5Error::Truncated(Stage::Connect))
            );
            assert_eq!(h.next(), Next::Failed);
        }
    }

    #[test]
    fn data_out_of_turn() {
        // Bytes after the method reply, before the client sent its request.
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        h.sent(3);
        assert_eq!(
            h.receive(&[5, 0, 5]),
            Err(Socks5Error::UnexpectedData(Stage::Connect))
        );
        // Bytes before the client's offer went out.
        let mut h = Socks5Handshake::new(HOST, 995, None).unwrap();
        assert_eq!(
            h.receive(&[5]),
            Err(Socks5Error::UnexpectedData(Stage::MethodSelection))
        );
        // With credentials the failure wipes the pending password.
        let mut h = Socks5Handshake::new(HOST, 995, Some(("u", "hunter2"))).unwrap();
        h.sent(4);
        assert!(h.receive(&[5, 2, 9]).is_err());
        assert!(h.bytes_to_send().is_empty());
    }

    #[test]
    fn targets() {
        let request = |host: &str| {
            let mut h = Socks5Handshake::new(host, 110, None).unwrap();
            h.sent(3);
            h.receive(&[5, 0]).unwrap();
            h.bytes_to_send().to_vec()
        };
        assert_eq!(request("192.0.2.7"), [5, 1, 0, 1, 192, 0, 2, 7, 0, 110]);
        let v6 = request("[2001:db8::1]");
        assert_eq!(v6[..4], [5, 1, 0, 4]);
        assert_eq!(
            v6[4..20],
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(request("2001:db8::1"), v6);
        let long = "a".repeat(255);
        let r = request(&long);
        assert_eq!(r[..5], [5, 1, 0, 3, 255]);
        assert_eq!(r.len(), 5 + 255 + 2);

        for (host, port) in [
            ("", 110),
            (&*"a".repeat(256), 110),
            ("bad host", 110),
            ("bad\nhost", 110),
            ("example.org", 0),
        ] {
            assert!(
                matches!(
                    Socks5Handshake::new(host, port, None),
                    Err(Socks5Error::InvalidTarget(_))
                ),
                "{host:?}:{port}"
            );
        }
    }

    #[test]
    fn credentials() {
        let long = "x".repeat(256);
        for (user, password) in [("", "p"), (&*long, "p"), ("u", &*long)] {
            assert!(matches!(
                Socks5Handshake::new(HOST, 995, Some((user, password))),
                Err(Socks5Error::InvalidCredentials(_))
            ));
        }
        let max = "y".repeat(255);
        assert!(Socks5Handshake::new(HOST, 995, Some((&max, &max))).is_ok());
        // An empty password is sent as PLEN 0.
        let mut h = Socks5Handshake::new(HOST, 995, Some(("tor-circuit-1", ""))).unwrap();
        h.sent(4);
        h.receive(&[5, 2]).unwrap();
        assert_eq!(h.bytes_to_send(), b"\x01\x0dtor-circuit-1\x00");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut h = Socks5Handshake::new(HOST, 995, Some(("alice", "hunter2"))).unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
        h.sent(4);
        h.receive(&[5, 2]).unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
    }

    #[test]
    fn errors_map_to_io_kinds() {
        let kind = |e: Socks5Error| io::Error::from(e).kind();
        assert_eq!(
            kind(Socks5Error::ConnectFailed(ReplyCode::ConnectionRefused)),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(
            kind(Socks5Error::AuthRefused { status: 1 }),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(Socks5Error::Truncated(Stage::Connect)),
            io::ErrorKind::UnexpectedEof
        );
        let e = io::Error::from(Socks5Error::NoAcceptableMethod);
        assert!(e.get_ref().unwrap().downcast_ref::<Socks5Error>().is_some());
    }

    #[test]
    fn proxy_urls() {
        let p = Socks5Proxy::parse("socks5://proxy.lan:1081").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 1081));
        assert_eq!((p.username.as_deref(), p.credentials()), (None, None));

        let p = Socks5Proxy::parse("socks5://proxy.lan").unwrap();
        assert_eq!(p.port, DEFAULT_PORT);
        let p = Socks5Proxy::parse("SOCKS5H://proxy.lan/").unwrap();
        assert_eq!(p.to_string(), "socks5://proxy.lan:1080");

        let p: Socks5Proxy = "socks5://alice@[::1]:9050".parse().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 9050));
        assert_eq!(p.username.as_deref(), Some("alice"));
        assert!(p.password.is_none());
        assert_eq!(p.credentials(), None);
        assert_eq!(p.to_string(), "socks5://alice@[::1]:9050");
        assert_eq!(Socks5Proxy::parse("socks5://[::1]").unwrap().port, 1080);

        let p = Socks5Proxy::parse("socks5://a%40b:p%3Aw@d@h:1").unwrap();
        assert_eq!(p.credentials(), Some(("a@b", "p:w@d")));
        assert_eq!(p.username.as_deref(), Some("a@b"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "p:w@d");
        assert_eq!(p.host, "h");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("p:w"), "{dbg}");
        assert!(!p.to_string().contains("p:w"));
        assert_eq!(p.to_string(), "socks5://a%40b@h:1");

        let p = Socks5Proxy::parse("socks5://user:@h:1").unwrap();
        assert_eq!(p.credentials(), Some(("user", "")));

        for (url, error) in [
            ("proxy.lan:1080", ProxyUrlError::MissingScheme),
            (
                "http://proxy.lan:8080",
                ProxyUrlError::UnsupportedScheme("http".into()),
            ),
            (
                "socks4://proxy.lan",
                ProxyUrlError::UnsupportedScheme("socks4".into()),
            ),
            ("socks5://", ProxyUrlError::MissingHost),
            ("socks5://:1080", ProxyUrlError::MissingHost),
            ("socks5://u:p@", ProxyUrlError::MissingHost),
            ("socks5://h:", ProxyUrlError::InvalidPort),
            ("socks5://h:0", ProxyUrlError::InvalidPort),
            ("socks5://h:65536", ProxyUrlError::InvalidPort),
            ("socks5://h:+1", ProxyUrlError::InvalidPort),
            ("socks5://h:x", ProxyUrlError::InvalidPort),
            ("socks5://[::1", ProxyUrlError::UnclosedBracket),
            ("socks5://[::1]x", ProxyUrlError::InvalidPort),
            ("socks5://h:1/path", ProxyUrlError::UnexpectedPath),
            ("socks5://h:1?q", ProxyUrlError::UnexpectedPath),
            ("socks5://u%4@h", ProxyUrlError::InvalidEscape),
            ("socks5://u%zz@h", ProxyUrlError::InvalidEscape),
            ("socks5://%ff@h", ProxyUrlError::InvalidEscape),
            (
                "socks5://:pw@h",
                ProxyUrlError::InvalidCredentials("empty user name"),
            ),
        ] {
            assert_eq!(Socks5Proxy::parse(url).unwrap_err(), error, "{url}");
            assert!(!error.to_string().is_empty());
        }
        let long = format!("socks5://{}@h", "u".repeat(256));
        assert!(matches!(
            Socks5Proxy::parse(&long),
            Err(ProxyUrlError::InvalidCredentials(_))
        ));
    }
}
