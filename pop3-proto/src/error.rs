//! Errors: what the server did wrong, and what the caller did wrong.

use core::fmt;

use crate::sasl::SaslError;
use crate::types::ServerError;
use crate::Text;

/// The server broke the protocol.
///
/// Errors reported by [`Client::poll`](crate::Client::poll) are fatal and sticky:
/// every later call returns the same error, and the connection must be closed.
/// The same type also describes a single unusable reply in
/// [`Event::Failed`](crate::Event::Failed); that one is not fatal, because the
/// reply was framed to its end and the stream is still in step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first line from the server is not a `+OK` or `-ERR` greeting.
    InvalidGreeting(Text),
    /// The server greeted with `-ERR`: it will not serve this connection.
    GreetingRejected(ServerError),
    /// The server sent a TLS record where the greeting belongs: the port
    /// speaks implicit TLS (POP3S), not plain POP3.
    TlsInsteadOfGreeting,
    /// A reply line starts with neither `+OK` nor `-ERR` (nor `+` during AUTH).
    InvalidStatusLine(Text),
    /// A line is longer than the configured limit.
    LineTooLong {
        /// The limit in octets.
        limit: usize,
    },
    /// A message body line is longer than the configured body line limit.
    BodyLineTooLong {
        /// The limit in octets.
        limit: usize,
    },
    /// A multi-line reply has more lines than the configured limit.
    TooManyLines {
        /// The limit in lines.
        limit: usize,
    },
    /// A multi-line reply holds more octets than the configured limit
    /// (`Limits::max_listing_bytes`).
    ListingTooLarge {
        /// The limit in octets.
        limit: usize,
    },
    /// A reply line could not be read as what the command expects.
    Malformed(&'static str),
    /// The server closed the connection while a reply was expected.
    UnexpectedEof,
    /// The server sent bytes when no reply was expected.
    UnsolicitedData,
    /// Bytes arrived after the `+OK` to STLS and before TLS was established:
    /// a response-injection attempt (like CVE-2021-22947). They were not processed.
    DataAfterStls,
    /// The TLS handshake after STLS failed, as the caller reported with
    /// [`Client::tls_failed`](crate::Client::tls_failed).
    TlsFailed,
    /// The SASL exchange failed on our side: a bad challenge, or the server
    /// could not prove that it knows the password.
    Sasl(SaslError),
    /// The server answered `+OK` to a cancelled SASL exchange, or accepted an
    /// exchange that the mechanism had not completed.
    AuthenticationAccepted,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidGreeting(t) => write!(f, "invalid greeting: {t}"),
            ProtocolError::GreetingRejected(e) => write!(f, "greeting rejected: {e}"),
            ProtocolError::TlsInsteadOfGreeting => f.write_str(
                "the server answered with TLS instead of a greeting: this port expects \
                 implicit TLS (POP3S, usually port 995)",
            ),
            ProtocolError::InvalidStatusLine(t) => write!(f, "invalid status line: {t}"),
            ProtocolError::LineTooLong { limit } => {
                write!(f, "reply line longer than {limit} octets")
            }
            ProtocolError::BodyLineTooLong { limit } => {
                write!(f, "message line longer than {limit} octets")
            }
            ProtocolError::TooManyLines { limit } => {
                write!(f, "multi-line reply longer than {limit} lines")
            }
            ProtocolError::ListingTooLarge { limit } => {
                write!(f, "multi-line reply longer than {limit} octets")
            }
            ProtocolError::Malformed(what) => f.write_str(what),
            ProtocolError::UnexpectedEof => {
                f.write_str("server closed the connection in the middle of a reply")
            }
            ProtocolError::UnsolicitedData => f.write_str("server sent data nobody asked for"),
            ProtocolError::DataAfterStls => {
                f.write_str("server sent data after +OK to STLS before TLS (injection attempt)")
            }
            ProtocolError::TlsFailed => f.write_str("the TLS handshake after STLS failed"),
            ProtocolError::Sasl(e) => write!(f, "authentication failed: {e}"),
            ProtocolError::AuthenticationAccepted => {
                f.write_str("server accepted an authentication exchange that was not complete")
            }
        }
    }
}

/// The caller asked for something the protocol does not allow now.
/// Nothing was sent; the connection is unchanged and can still be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The command is not valid in the session's state (for example RETR before
    /// login, or STLS after login).
    WrongState {
        /// The command's verb.
        command: &'static str,
        /// Why it does not fit.
        reason: &'static str,
    },
    /// An argument is empty, too long, or contains CR, LF or NUL.
    InvalidArgument(&'static str),
    /// The command would send a password, digest or token over a connection
    /// that is not encrypted, and the configuration does not allow that.
    PlaintextCredentials,
    /// APOP needs a timestamp in the greeting, and this server's greeting has none.
    NoApopTimestamp,
    /// The SASL mechanism failed before anything was sent.
    Sasl(SaslError),
    /// The session has ended (QUIT was sent, or the connection closed).
    Closed,
    /// The session has ended because the server broke the protocol earlier;
    /// this is the fatal error [`Client::poll`](crate::Client::poll) reported.
    Failed(ProtocolError),
    /// A command queued behind a failed STLS or authentication was dropped
    /// without being sent.
    Cancelled,
    /// STLS was asked for, but the server's capabilities do not list it.
    /// Nothing but `CAPA` was sent; there is never a fallback to plaintext.
    StlsUnavailable,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::WrongState { command, reason } => write!(f, "{command}: {reason}"),
            UsageError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            UsageError::PlaintextCredentials => {
                f.write_str("refusing to send credentials over an unencrypted connection")
            }
            UsageError::NoApopTimestamp => {
                f.write_str("the server's greeting has no APOP timestamp")
            }
            UsageError::Sasl(e) => write!(f, "SASL: {e}"),
            UsageError::Closed => f.write_str("the session has ended"),
            UsageError::Failed(e) => write!(f, "the session has ended: {e}"),
            UsageError::Cancelled => {
                f.write_str("not sent: a STLS or login command before it failed")
            }
            UsageError::StlsUnavailable => f.write_str("the server does not offer STLS"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}
#[cfg(feature = "std")]
impl std::error::Error for UsageError {}
#[cfg(feature = "std")]
impl std::error::Error for crate::ServerError {}
