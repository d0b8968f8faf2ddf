//! How this crate classifies errors from its stream and from the core; the
//! [`Error`] type itself lives in `pop3-transport`.

use std::io;

use pop3_proto::UsageError;

use crate::{Error, Phase};

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

/// A usage error from the core (see `From<UsageError> for Error`).
pub(crate) fn from_usage(error: UsageError) -> Error {
    Error::from(error)
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
}
