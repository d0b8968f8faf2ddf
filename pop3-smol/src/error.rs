//! The error type of this crate.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ServerError, UsageError};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The I/O step that took too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake (implicit TLS or after `STLS`).
    TlsHandshake,
    /// Waiting for bytes from the server.
    Read,
    /// Writing (and flushing) bytes to the server.
    Write,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Read => "read",
            Phase::Write => "write",
        })
    }
}

/// Everything that can go wrong on a POP3 connection.
///
/// Whether the connection can still be used afterwards depends on the variant:
/// [`Error::Server`], [`Error::Usage`] and a [`Error::Protocol`] reported for a
/// single reply ([`pop3_proto::Event::Failed`]) leave it usable; the others
/// leave it closed, and every later call returns [`Error::Closed`]
/// ([`Connection::is_poisoned`](crate::Connection::is_poisoned) tells).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing or connecting failed.
    Io(io::Error),
    /// TLS failed: certificate verification, handshake or a TLS alert. Kept
    /// typed even when rustls reported it through an [`io::Error`].
    Tls(rustls::Error),
    /// The server broke the protocol (fatal), or one reply could not be used
    /// (not fatal: the connection stays in step).
    Protocol(ProtocolError),
    /// The call does not fit the session's state or an argument is unsafe;
    /// nothing was sent. Also a command dropped unsent because a login step
    /// before it failed.
    Usage(UsageError),
    /// The server refused the command with `-ERR` (with its response code).
    Server(ServerError),
    /// An I/O step took longer than its [`Timeouts`](crate::Timeouts) entry.
    Timeout(Phase),
    /// The connection has ended: the server closed it, or an earlier fatal
    /// error or a cancelled operation poisoned it.
    Closed,
    /// `STLS` was required but the server does not list it in `CAPA`. Nothing
    /// else was sent; there is never a fallback to plaintext.
    StlsUnavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Usage(e) => write!(f, "usage error: {e}"),
            Error::Server(e) => e.fmt(f),
            Error::Timeout(phase) => write!(f, "{phase} timed out"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::StlsUnavailable => f.write_str("the server does not offer STLS"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Usage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// Unwraps a [`rustls::Error`] (as TLS streams report it) into
    /// [`Error::Tls`], and an [`Error`] that went through an `io::Error` (as a
    /// [`MessageReader`](crate::MessageReader) reports it) back into itself.
    fn from(error: io::Error) -> Error {
        let wraps_ours = error
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>() || inner.is::<Error>());
        if !wraps_ours {
            return Error::Io(error);
        }
        let kind = error.kind();
        let Some(inner) = error.into_inner() else {
            return Error::Io(io::Error::from(kind));
        };
        match inner.downcast::<rustls::Error>() {
            Ok(tls) => Error::Tls(*tls),
            Err(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(inner) => Error::Io(io::Error::new(kind, inner)),
            },
        }
    }
}

impl From<Error> for io::Error {
    /// [`Error::Io`] becomes the `io::Error` it holds; every other error is
    /// wrapped (kind `TimedOut`, `InvalidData`, `NotConnected` or `Other`) and
    /// comes back intact through `Error::from`.
    fn from(error: Error) -> io::Error {
        let kind = match error {
            Error::Io(e) => return e,
            Error::Timeout(_) => io::ErrorKind::TimedOut,
            Error::Tls(_) | Error::Protocol(_) => io::ErrorKind::InvalidData,
            Error::Closed => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

impl From<rustls::Error> for Error {
    fn from(error: rustls::Error) -> Error {
        Error::Tls(error)
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Error {
        Error::Protocol(error)
    }
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Error {
        Error::Usage(error)
    }
}

impl From<ServerError> for Error {
    fn from(error: ServerError) -> Error {
        Error::Server(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_stay_typed_through_io_error() {
        let io = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(matches!(
            Error::from(io),
            Error::Tls(rustls::Error::DecryptError)
        ));
    }

    #[test]
    fn own_errors_round_trip_through_io_error() {
        let io = io::Error::from(Error::Timeout(Phase::Read));
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(Error::from(io), Error::Timeout(Phase::Read)));
        let io = io::Error::from(Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        assert!(matches!(Error::from(io), Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn other_io_errors_are_kept() {
        let io = io::Error::other("boom");
        assert!(matches!(Error::from(io), Error::Io(e) if e.to_string() == "boom"));
    }
}
