//! The error type shared by the transports.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ServerError, UsageError};
use rustls::CertificateError;

use crate::certificate::{format_unix_time, CertificateInfo, Sha256Fingerprint};
use crate::socks5::Socks5ConnectError;
use crate::trust::FingerprintMismatch;

/// A `Result` that fails with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The time limit that ran out: the I/O step that took too long, or the
/// session's overall deadline ([`Phase::Session`]); see
/// [`Timeouts`](crate::Timeouts). More steps may come (as the greeting and the proxy did), so a `match`
/// needs a catch-all arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake (implicit TLS or after `STLS`).
    TlsHandshake,
    /// Waiting for the server's greeting. A server that says nothing at all
    /// is often a POP3S (implicit TLS) port reached without TLS.
    Greeting,
    /// Waiting for bytes from the server.
    Read,
    /// Writing (and flushing) bytes to the server.
    Write,
    /// Connecting to the SOCKS5 proxy of [`Options::proxy`](crate::Options::proxy),
    /// or its handshake.
    Proxy,
    /// The whole session ran past [`Timeouts::session`](crate::Timeouts::session),
    /// its overall deadline, whatever step it was in: the server kept it
    /// busy (a byte now and then, a line or message without end) or it was
    /// simply longer than allowed. Every other phase is an idle limit.
    Session,
}

impl Phase {
    /// Whether this is the overall deadline ([`Phase::Session`]) rather than
    /// an I/O step's idle limit.
    pub fn is_overall_deadline(self) -> bool {
        self == Phase::Session
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Greeting => "waiting for the greeting",
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::Proxy => "connecting through the SOCKS5 proxy",
            Phase::Session => "the session's overall time limit",
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
/// | [`Error::Proxy`] | never connected |
///
/// [`Error::is_fatal`] tells the two apart.
///
/// # Display and `source`
///
/// The `Display` of an error is one line that already carries its cause
/// (`I/O error: Connection refused (os error 111)`), so `source()` returns
/// `None`: an error reporter such as `anyhow` or `eyre` prints each cause
/// once. The cause itself is in the variant, for `match`. For certificate
/// errors the line ends with what to do about it; [`Error::tls_diagnosis`]
/// gives the facts.
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
    /// The SOCKS5 proxy of [`Options::proxy`](crate::Options::proxy) could
    /// not be reached, failed its handshake (not a SOCKS5 proxy, credentials
    /// refused, a malformed reply), or could not reach the mail server. No
    /// byte went to the mail server.
    Proxy(Socks5ConnectError),
    /// A message was longer than the limit given to
    /// [`Connection::retr_vec`](crate::Connection::retr_vec). The core drops
    /// the rest of it; the connection stays usable.
    MessageTooLarge {
        /// The limit in octets.
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(e) => match tls_hint(e) {
                Some(hint) => write!(f, "TLS error: {e} ({hint})"),
                None => write!(f, "TLS error: {e}"),
            },
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::BadReply(e) => write!(f, "unusable reply: {e}"),
            Error::Sink(e) => write!(f, "writing the message failed: {e}"),
            Error::Usage(e) => write!(f, "usage error: {e}"),
            Error::Server(e) => e.fmt(f),
            Error::Timeout(Phase::Session) => {
                f.write_str("the session ran past its overall time limit")
            }
            Error::Timeout(phase) => write!(f, "{phase} timed out"),
            Error::Closed => f.write_str("the POP3 session has ended"),
            Error::StlsUnavailable => f.write_str("the server does not offer STLS"),
            Error::Proxy(e) => e.fmt(f),
            Error::MessageTooLarge { limit } => {
                write!(f, "the message is longer than the limit of {limit} octets")
            }
        }
    }
}

/// What to do about the commonest TLS failures, in a few words for the
/// one-line `Display` ([`Error::tls_diagnosis`] gives the facts).
fn tls_hint(error: &rustls::Error) -> Option<&'static str> {
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => Some(
                "to trust this server, trust its CA (or its own certificate), or pin the \
                 certificate's SHA-256 fingerprint",
            ),
            CertificateError::BadSignature => Some(
                "not signed by the trusted certificate of that name: most likely the server \
                 presents another certificate than the one trusted (renewed, or the wrong \
                 file trusted); compare their SHA-256 fingerprints",
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Some(
                    "connect with a name the certificate carries, or check it against one \
                     of those names",
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                Some("check this computer's clock; otherwise the certificate must be renewed")
            }
            CertificateError::Other(other) if other.0.is::<FingerprintMismatch>() => Some(
                "not the pinned certificate: check the new fingerprint with the server's \
                 administrator before pinning it",
            ),
            _ => None,
        },
        rustls::Error::InvalidMessage(_) => Some(
            "the server did not answer with TLS: a plain POP3 port (110) needs STLS, \
             implicit TLS is for port 995",
        ),
        _ => None,
    }
}

/// What a TLS failure comes to, as facts for a program to word for its
/// users (with its own options: the `pop3` command names `--ca-file` and
/// `--tls-fingerprint`); see [`Error::tls_diagnosis`]. More cases may come,
/// so a `match` needs a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsDiagnosis {
    /// The certificate was issued by an authority that is not trusted (a
    /// self-signed certificate fails this way too). Trusting that authority
    /// ([`TlsOptions::add_root_pem_file`](crate::TlsOptions::add_root_pem_file))
    /// or pinning the certificate
    /// ([`TlsOptions::pin_sha256`](crate::TlsOptions::pin_sha256)) would
    /// accept it.
    UnknownIssuer {
        /// The certificate the server presented, if it was recorded: whether
        /// it is self-signed, its issuer, its fingerprint to pin.
        presented: Option<CertificateInfo>,
    },
    /// The certificate is a CA certificate (`basicConstraints CA:TRUE`, as
    /// `openssl req -x509` makes) used as a server's own, which is accepted
    /// only when that exact certificate is trusted.
    CaUsedAsEndEntity {
        /// The certificate the server presented, if it was recorded.
        presented: Option<CertificateInfo>,
    },
    /// The certificate has expired.
    Expired {
        /// When, if known.
        not_after: Option<UtcTime>,
        /// The time of the check, if known.
        now: Option<UtcTime>,
    },
    /// The certificate is not valid yet.
    NotValidYet {
        /// From when, if known.
        not_before: Option<UtcTime>,
        /// The time of the check, if known.
        now: Option<UtcTime>,
    },
    /// The certificate is not valid for the name connected to.
    NameMismatch {
        /// The name it was checked for, if known.
        expected: Option<String>,
        /// The names it carries (host names and IP addresses).
        presented: Vec<String>,
    },
    /// Not the pinned certificate.
    PinMismatch {
        /// The fingerprint of the certificate the server presented.
        presented: Sha256Fingerprint,
        /// The pinned fingerprints.
        pinned: Vec<Sha256Fingerprint>,
    },
    /// The certificate has a critical extension this client does not
    /// understand.
    UnsupportedCriticalExtension,
    /// The certificate names as its issuer a certificate that is trusted,
    /// but that one did not sign it (rustls' `BadSignature`). Most likely
    /// the server presents another certificate than the one trusted for it:
    /// a renewed certificate, the wrong file trusted, or an unrelated trusted
    /// certificate of the same name (Debian's `ssl-cert-snakeoil.pem` is
    /// `CN=localhost`). A forgery fails this way too.
    NotSignedByTrusted {
        /// The certificate the server presented, if it was recorded: its
        /// fingerprint tells it from the one trusted.
        presented: Option<CertificateInfo>,
    },
    /// The issuer revoked the certificate.
    Revoked,
    /// The certificate is not meant for TLS servers (no `serverAuth`).
    NotForServers,
    /// The certificate is malformed.
    Malformed,
    /// The certificate was refused for another reason (in rustls' words).
    OtherCertificate(String),
    /// The server sent no certificate.
    NoCertificate,
    /// The server did not answer with TLS (a plain POP3 port reached with
    /// implicit TLS); rustls' words.
    NotTls(String),
    /// The server ended the handshake with this alert.
    Alert(String),
    /// No TLS version or cipher suite in common; rustls' words.
    Incompatible(String),
    /// Any other TLS failure; rustls' words.
    Other(String),
}

/// A moment in seconds since the Unix epoch; shown as
/// `2001-01-01 00:00:00 UTC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(pub i64);

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_unix_time(self.0))
    }
}

impl Error {
    /// For [`Error::Tls`], what went wrong, as facts ([`TlsDiagnosis`]);
    /// `None` for every other error. `presented` is the certificate the
    /// server presented (from [`PeerCertificates`](crate::PeerCertificates)),
    /// if known: it tells a self-signed certificate from one of an unknown
    /// authority, gives the names it carries and the fingerprint to pin.
    ///
    /// ```
    /// use pop3_transport::{Error, TlsDiagnosis};
    /// use rustls::CertificateError;
    ///
    /// let error = Error::Tls(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
    /// let diagnosis = error.tls_diagnosis(None);
    /// assert_eq!(diagnosis, Some(TlsDiagnosis::UnknownIssuer { presented: None }));
    /// ```
    pub fn tls_diagnosis(&self, presented: Option<&CertificateInfo>) -> Option<TlsDiagnosis> {
        match self {
            Error::Tls(error) => Some(diagnose_tls(error, presented)),
            _ => None,
        }
    }
}

fn diagnose_tls(error: &rustls::Error, presented: Option<&CertificateInfo>) -> TlsDiagnosis {
    match error {
        rustls::Error::InvalidCertificate(problem) => diagnose_certificate(problem, presented),
        rustls::Error::NoCertificatesPresented => TlsDiagnosis::NoCertificate,
        rustls::Error::InvalidMessage(_) => TlsDiagnosis::NotTls(error.to_string()),
        rustls::Error::AlertReceived(alert) => TlsDiagnosis::Alert(format!("{alert:?}")),
        rustls::Error::PeerIncompatible(_) => TlsDiagnosis::Incompatible(error.to_string()),
        other => TlsDiagnosis::Other(other.to_string()),
    }
}

fn diagnose_certificate(
    problem: &CertificateError,
    presented: Option<&CertificateInfo>,
) -> TlsDiagnosis {
    let unix = |time: rustls::pki_types::UnixTime| {
        Some(UtcTime(i64::try_from(time.as_secs()).unwrap_or(i64::MAX)))
    };
    match problem {
        CertificateError::UnknownIssuer => TlsDiagnosis::UnknownIssuer {
            presented: presented.cloned(),
        },
        CertificateError::ExpiredContext { time, not_after } => TlsDiagnosis::Expired {
            not_after: unix(*not_after),
            now: unix(*time),
        },
        CertificateError::Expired => TlsDiagnosis::Expired {
            not_after: presented.map(|c| UtcTime(c.not_after)),
            now: None,
        },
        CertificateError::NotValidYetContext { time, not_before } => TlsDiagnosis::NotValidYet {
            not_before: unix(*not_before),
            now: unix(*time),
        },
        CertificateError::NotValidYet => TlsDiagnosis::NotValidYet {
            not_before: presented.map(|c| UtcTime(c.not_before)),
            now: None,
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let (expected, mut names) = match problem {
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => (
                    Some(expected.to_str().into_owned()),
                    presented.iter().map(|name| readable_name(name)).collect(),
                ),
                _ => (None, Vec::new()),
            };
            if let Some(cert) = presented {
                names = cert.names();
            }
            TlsDiagnosis::NameMismatch {
                expected,
                presented: names,
            }
        }
        CertificateError::Other(other) => {
            if let Some(mismatch) = other.0.downcast_ref::<FingerprintMismatch>() {
                return TlsDiagnosis::PinMismatch {
                    presented: mismatch.presented,
                    pinned: mismatch.pinned.clone(),
                };
            }
            match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => TlsDiagnosis::CaUsedAsEndEntity {
                    presented: presented.cloned(),
                },
                Some(webpki::Error::UnsupportedCriticalExtension) => {
                    TlsDiagnosis::UnsupportedCriticalExtension
                }
                _ => TlsDiagnosis::OtherCertificate(other.to_string()),
            }
        }
        CertificateError::UnhandledCriticalExtension => TlsDiagnosis::UnsupportedCriticalExtension,
        CertificateError::BadSignature => TlsDiagnosis::NotSignedByTrusted {
            presented: presented.cloned(),
        },
        CertificateError::Revoked => TlsDiagnosis::Revoked,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TlsDiagnosis::NotForServers
        }
        CertificateError::BadEncoding => TlsDiagnosis::Malformed,
        other => TlsDiagnosis::OtherCertificate(other.to_string()),
    }
}

/// webpki reports the names a certificate carries in a debug form such as
/// `DnsName("mail.example")`; keep just the name.
fn readable_name(name: &str) -> String {
    name.strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(name)
        .to_owned()
}

/// `source()` is `None`: the `Display` line already includes the cause
/// (see [`Error`]).
impl std::error::Error for Error {}

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
    pub(crate) fn from_io(error: io::Error, phase: Phase) -> Error {
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
                | Error::MessageTooLarge { .. }
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
        assert_eq!(
            Error::Timeout(Phase::Proxy).to_string(),
            "connecting through the SOCKS5 proxy timed out"
        );
        let refused = crate::socks5::Socks5Error::AuthRefused { status: 1 };
        let error = Error::Proxy(crate::socks5::Socks5ConnectError::Socks5(refused));
        assert!(error.is_fatal());
        assert!(error.to_string().starts_with("SOCKS5: "), "{error}");
    }

    fn tls(problem: CertificateError) -> Error {
        Error::Tls(rustls::Error::InvalidCertificate(problem))
    }

    fn diagnosis(error: &Error, presented: Option<&CertificateInfo>) -> TlsDiagnosis {
        error
            .tls_diagnosis(presented)
            .unwrap_or(TlsDiagnosis::Other(String::new()))
    }

    #[test]
    fn only_tls_errors_are_diagnosed() {
        assert!(Error::Closed.tls_diagnosis(None).is_none());
        assert!(Error::Timeout(Phase::TlsHandshake)
            .tls_diagnosis(None)
            .is_none());
        assert!(matches!(
            diagnosis(&Error::Tls(rustls::Error::DecryptError), None),
            TlsDiagnosis::Other(text) if !text.is_empty()
        ));
    }

    #[test]
    fn unknown_issuer_carries_the_certificate_presented() {
        let pki = crate::test_certificates::shared();
        let error = tls(CertificateError::UnknownIssuer);
        assert_eq!(
            diagnosis(&error, None),
            TlsDiagnosis::UnknownIssuer { presented: None }
        );
        let own = CertificateInfo::from_der(&pki.self_signed.cert_der).ok();
        let TlsDiagnosis::UnknownIssuer {
            presented: Some(cert),
        } = diagnosis(&error, own.as_ref())
        else {
            panic!("not an unknown issuer");
        };
        assert!(cert.self_signed);
        assert_eq!(
            cert.sha256,
            crate::Sha256Fingerprint::of(&pki.self_signed.cert_der)
        );
    }

    #[test]
    fn dates_are_given() {
        let at =
            |s| rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        let expired = tls(CertificateError::ExpiredContext {
            time: at(1_764_547_200),
            not_after: at(978_307_200),
        });
        assert_eq!(
            diagnosis(&expired, None),
            TlsDiagnosis::Expired {
                not_after: Some(UtcTime(978_307_200)),
                now: Some(UtcTime(1_764_547_200)),
            }
        );
        assert_eq!(UtcTime(978_307_200).to_string(), "2001-01-01 00:00:00 UTC");
        let early = tls(CertificateError::NotValidYetContext {
            time: at(0),
            not_before: at(86_400),
        });
        assert_eq!(
            diagnosis(&early, None),
            TlsDiagnosis::NotValidYet {
                not_before: Some(UtcTime(86_400)),
                now: Some(UtcTime(0)),
            }
        );
        let pki = crate::test_certificates::shared();
        let info = CertificateInfo::from_der(&pki.expired.cert_der).ok();
        let TlsDiagnosis::Expired {
            not_after: Some(when),
            now: None,
        } = diagnosis(&tls(CertificateError::Expired), info.as_ref())
        else {
            panic!("no date");
        };
        assert!(when.to_string().starts_with("2001-01-01"), "{when}");
    }

    #[test]
    fn wrong_host_lists_the_names_carried() {
        let Ok(expected) = rustls::pki_types::ServerName::try_from("localhost") else {
            panic!("localhost is a valid name");
        };
        let error = tls(CertificateError::NotValidForNameContext {
            expected,
            presented: vec!["DnsName(\"wrong.example\")".to_owned(), "odd".to_owned()],
        });
        assert_eq!(
            diagnosis(&error, None),
            TlsDiagnosis::NameMismatch {
                expected: Some("localhost".to_owned()),
                presented: vec!["wrong.example".to_owned(), "odd".to_owned()],
            }
        );
        let pki = crate::test_certificates::shared();
        let info = CertificateInfo::from_der(&pki.server.cert_der).ok();
        assert_eq!(
            diagnosis(&tls(CertificateError::NotValidForName), info.as_ref()),
            TlsDiagnosis::NameMismatch {
                expected: None,
                presented: vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned()
                ],
            }
        );
    }

    #[test]
    fn pins_and_ca_certificates_are_told_apart() {
        let presented = crate::Sha256Fingerprint::from_bytes([0xAB; 32]);
        let pinned = crate::Sha256Fingerprint::from_bytes([0x01; 32]);
        let mismatch = FingerprintMismatch {
            presented,
            pinned: vec![pinned],
        };
        let error = tls(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(mismatch),
        )));
        assert_eq!(
            diagnosis(&error, None),
            TlsDiagnosis::PinMismatch {
                presented,
                pinned: vec![pinned],
            }
        );
        let error = tls(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        assert_eq!(
            diagnosis(&error, None),
            TlsDiagnosis::CaUsedAsEndEntity { presented: None }
        );
    }
}
