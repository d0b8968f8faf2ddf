//! The error type of this crate.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ServerError, UsageError};

/// What a [`Result`] of this crate fails with.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The step of the connection that took too long; see [`Timeouts`](crate::Timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake (implicit TLS or after `STLS`).
    TlsHandshake,
    /// Waiting for bytes from the server.
    Read,
    /// Sending bytes to the server.
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
/// | [`Error::Usage`] | usable: nothing was sent |
/// | [`Error::Protocol`] from one unusable reply (`Event::Failed`) | usable |
/// | [`Error::Protocol`] from a broken stream, [`Error::Io`], [`Error::Tls`], [`Error::Timeout`], [`Error::Closed`] | ended: later calls return [`Error::Closed`] |
///
/// An [`Error::Io`] returned by [`Connection::retr_to`](crate::Connection::retr_to)
/// that came from *your* writer does not end the connection either.
/// [`Connection::is_poisoned`](crate::Connection::is_poisoned) tells.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the socket failed (or a name could not be resolved,
    /// or a PEM file could not be read).
    Io(io::Error),
    /// TLS failed: the certificate could not be verified, the handshake failed,
    /// or a TLS record was bad. Certificate errors are
    /// `rustls::Error::InvalidCertificate(..)`.
    Tls(rustls::Error),
    /// The server broke the protocol, or one of its replies was unusable.
    Protocol(ProtocolError),
    /// The call does not fit the session (wrong state, bad argument, credentials
    /// over an unencrypted connection, ...). Nothing was sent.
    Usage(UsageError),
    /// The server refused the command with `-ERR`; the response code, if any, is
    /// in [`ServerError::code`].
    Server(ServerError),
    /// A time limit from [`Timeouts`](crate::Timeouts) ran out.
    Timeout(Phase),
    /// The session has ended: `QUIT` was answered, the server closed the
    /// connection, or an earlier error broke it.
    Closed,
    /// [`connect_starttls`](crate::connect_starttls): the server does not list
    /// `STLS` in its capabilities. Nothing but `CAPA` was sent, and there is no
    /// fallback to plaintext.
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
            Error::Timeout(phase) => write!(f, "timed out ({phase})"),
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
            Error::Protocol(e) => Some(e),
            Error::Usage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// [`Error::Io`] gives back the original error; [`Error::Timeout`] becomes
    /// [`io::ErrorKind::TimedOut`], [`Error::Closed`]
    /// [`io::ErrorKind::NotConnected`], and everything else
    /// [`io::ErrorKind::Other`]; the [`Error`] can be recovered with
    /// [`io::Error::into_inner`] and `downcast`.
    fn from(error: Error) -> io::Error {
        match error {
            Error::Io(e) => e,
            Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, error),
            Error::Closed => io::Error::new(io::ErrorKind::NotConnected, error),
            other => io::Error::other(other),
        }
    }
}

impl From<io::Error> for Error {
    /// Unwraps a [`rustls::Error`] (as rustls streams report it) into
    /// [`Error::Tls`], and an [`Error`] that went through an `io::Error` (as a
    /// [`MessageReader`](crate::MessageReader) reports it) back into itself;
    /// anything else is [`Error::Io`].
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

/// Classifies an I/O error from the stream: time-outs become
/// [`Error::Timeout`], a rustls error carried inside becomes [`Error::Tls`].
pub(crate) fn from_io(error: io::Error, phase: Phase) -> Error {
    if matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) && !error.get_ref().is_some_and(|inner| inner.is::<Error>())
    {
        return Error::Timeout(phase);
    }
    Error::from(error)
}

/// A usage error from the core; an ended session is [`Error::Closed`].
pub(crate) fn from_usage(error: UsageError) -> Error {
    match error {
        UsageError::Closed => Error::Closed,
        other => Error::Usage(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_inside_io_errors_stay_typed() {
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert!(matches!(
            from_io(io, Phase::TlsHandshake),
            Error::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))
        ));
    }

    #[test]
    fn timeouts_are_classified() {
        let e = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(
            from_io(e, Phase::Read),
            Error::Timeout(Phase::Read)
        ));
        let e = io::Error::from(io::ErrorKind::TimedOut);
        assert!(matches!(
            from_io(e, Phase::Connect),
            Error::Timeout(Phase::Connect)
        ));
        let e = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(matches!(from_io(e, Phase::Write), Error::Io(_)));
    }

    #[test]
    fn into_io_error_keeps_the_kind() {
        let e: io::Error = Error::Timeout(Phase::Read).into();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let e: io::Error = Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)).into();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let e: io::Error = Error::StlsUnavailable.into();
        assert!(matches!(Error::from(e), Error::StlsUnavailable));
        let e: io::Error = Error::Timeout(Phase::Read).into();
        assert!(matches!(Error::from(e), Error::Timeout(Phase::Read)));
    }
}
