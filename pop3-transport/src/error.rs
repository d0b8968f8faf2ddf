//! The error type shared by the transports.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ServerError, UsageError};

/// A `Result` that fails with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The I/O step that took too long; see [`Timeouts`](crate::Timeouts).
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

/// Everything that can go wrong with a POP3 connection.
///
/// Some errors end the connection and some do not:
///
/// | variant | the connection afterwards |
/// |---|---|
/// | [`Error::Server`] | usable: the server refused one command |
/// | [`Error::Usage`], [`Error::StlsUnavailable`] | usable: nothing was sent |
/// | [`Error::BadReply`]: one unusable reply ([`pop3_proto::Event::Failed`]) | usable |
/// | [`Error::Sink`]: a writer or sink of yours failed | usable |
/// | [`Error::Protocol`], [`Error::Io`], [`Error::Tls`], [`Error::Timeout`], [`Error::Closed`] | ended: later calls return [`Error::Closed`] |
///
/// [`Error::is_fatal`] tells the two apart.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing or connecting failed (or a name could not be
    /// resolved, or a PEM file could not be read or parsed).
    Io(io::Error),
    /// TLS failed: the certificate could not be verified, the handshake failed,
    /// or a TLS record was bad. Certificate errors are
    /// `rustls::Error::InvalidCertificate(..)`. Kept typed even when rustls
    /// reported it through an [`io::Error`].
    Tls(rustls::Error),
    /// The server broke the protocol; the session is over.
    Protocol(ProtocolError),
    /// One reply could not be used (malformed, too long), but it was read to
    /// its end: the connection stays in step and usable.
    BadReply(ProtocolError),
    /// A writer or [`MessageSink`](crate::runtime::MessageSink) of the
    /// caller's failed while a message was copied out. The rest of the message
    /// is dropped by the core; the connection stays usable.
    Sink(io::Error),
    /// The call does not fit the session (wrong state, bad argument, credentials
    /// over an unencrypted connection, ...). Nothing was sent. Also a command
    /// dropped unsent because a login step before it failed.
    Usage(UsageError),
    /// The server refused the command with `-ERR`; the response code, if any, is
    /// in [`ServerError::code`].
    Server(ServerError),
    /// A time limit from [`Timeouts`](crate::Timeouts) ran out.
    Timeout(Phase),
    /// The session has ended: `QUIT` was answered, the server closed the
    /// connection, or an earlier fatal error or a cancelled operation broke it.
    Closed,
    /// `STLS` was required but the server does not list it in its
    /// capabilities. Nothing but `CAPA` was sent, and there is never a fallback
    /// to plaintext.
    StlsUnavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::BadReply(e) => write!(f, "unusable reply: {e}"),
            Error::Sink(e) => write!(f, "writing the message failed: {e}"),
            Error::Usage(e) => write!(f, "usage error: {e}"),
            Error::Server(e) => e.fmt(f),
            Error::Timeout(phase) => write!(f, "{phase} timed out"),
            Error::Closed => f.write_str("the POP3 session has ended"),
            Error::StlsUnavailable => f.write_str("the server does not offer STLS"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::Protocol(e) | Error::BadReply(e) => Some(e),
            Error::Sink(e) => Some(e),
            Error::Usage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// Unwraps a [`rustls::Error`] (as rustls streams report it) into
    /// [`Error::Tls`], and an [`Error`] that went through an `io::Error` (as a
    /// `MessageReader` reports it) back into itself; anything else is
    /// [`Error::Io`].
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
    /// [`Error::Io`] gives back the `io::Error` it holds; every other error is
    /// wrapped, with kind [`TimedOut`](io::ErrorKind::TimedOut) for
    /// [`Error::Timeout`], [`InvalidData`](io::ErrorKind::InvalidData) for
    /// [`Error::Tls`] and [`Error::Protocol`],
    /// [`NotConnected`](io::ErrorKind::NotConnected) for [`Error::Closed`] and
    /// [`Other`](io::ErrorKind::Other) for the rest, and comes back intact
    /// through `Error::from` (or [`io::Error::into_inner`] and `downcast`).
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
        match error {
            // The session ended because the server broke the protocol: report that.
            UsageError::Failed(protocol) => Error::Protocol(protocol),
            UsageError::Closed => Error::Closed,
            UsageError::StlsUnavailable => Error::StlsUnavailable,
            other => Error::Usage(other),
        }
    }
}

impl Error {
    /// Classifies an I/O error of the stream during `phase`: a socket
    /// time-out (blocking sockets report them as `WouldBlock` or `TimedOut`)
    /// becomes [`Error::Timeout`]; a TLS error inside stays typed
    /// ([`Error::Tls`]); anything else is [`Error::Io`].
    pub fn from_io(error: io::Error, phase: Phase) -> Error {
        let ours = error.get_ref().is_some_and(|inner| inner.is::<Error>());
        if !ours
            && matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        {
            return Error::Timeout(phase);
        }
        Error::from(error)
    }

    /// Whether the session is over after this error (see the table on
    /// [`Error`]): `false` for a refused command, a caller's mistake, one
    /// unusable reply or a failed writer of the caller's.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Error::Server(_)
                | Error::Usage(_)
                | Error::BadReply(_)
                | Error::Sink(_)
                | Error::StlsUnavailable
        )
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
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert!(matches!(
            Error::from(io),
            Error::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))
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
        let io = io::Error::from(Error::Tls(rustls::Error::DecryptError));
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        let io = io::Error::from(Error::Closed);
        assert_eq!(io.kind(), io::ErrorKind::NotConnected);
        let io: io::Error = Error::StlsUnavailable.into();
        assert_eq!(io.kind(), io::ErrorKind::Other);
        assert!(matches!(Error::from(io), Error::StlsUnavailable));
    }

    #[test]
    fn other_io_errors_are_kept() {
        let io = io::Error::other("boom");
        assert!(matches!(Error::from(io), Error::Io(e) if e.to_string() == "boom"));
    }

    #[test]
    fn display() {
        assert_eq!(
            Error::Timeout(Phase::TlsHandshake).to_string(),
            "TLS handshake timed out"
        );
        assert_eq!(
            Error::StlsUnavailable.to_string(),
            "the server does not offer STLS"
        );
    }
}
