//! The error type shared by the transports.

use std::fmt;
use std::io;

use pop3_proto::{ProtocolError, ServerError, UsageError};
use rustls::CertificateError;

use crate::certificate::{format_unix_time, CertificateInfo};
use crate::socks5::Socks5ConnectError;
use crate::trust::FingerprintMismatch;

/// A `Result` that fails with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The I/O step that took too long; see [`Timeouts`](crate::Timeouts).
/// More steps may come (as the greeting and the proxy did), so a `match`
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
/// errors the line ends with what to do about it; [`Error::tls_advice`] says
/// more.
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
/// one-line `Display` ([`Error::tls_advice`] is the long form).
fn tls_hint(error: &rustls::Error) -> Option<&'static str> {
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => Some(
                "to trust this server, add its CA (or its own certificate) with \
                 TlsOptions::add_root_pem_file, or pin it with TlsOptions::pin_sha256",
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Some(
                    "connect with a name the certificate carries, or set \
                     Options::server_name",
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
            _ => Some("Error::tls_advice explains"),
        },
        rustls::Error::InvalidMessage(_) => Some(
            "the server did not answer with TLS: a plain POP3 port (110) needs STLS, \
             implicit TLS is for port 995",
        ),
        _ => None,
    }
}

impl Error {
    /// For [`Error::Tls`], what went wrong in plain words and what would fix
    /// it, naming the library calls and the `pop3` command's options; `None`
    /// for every other error. The error itself stays typed; this is text for
    /// people.
    ///
    /// ```
    /// use pop3_transport::Error;
    /// use rustls::CertificateError;
    ///
    /// let error = Error::Tls(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
    /// let advice = error.tls_advice().unwrap_or_default();
    /// assert!(advice.contains("--ca-file"));
    /// assert!(advice.contains("--tls-fingerprint"));
    /// ```
    pub fn tls_advice(&self) -> Option<String> {
        self.tls_advice_for(None)
    }

    /// Like [`Error::tls_advice`], knowing the certificate the server
    /// presented (from [`PeerCertificates`](crate::PeerCertificates)): the
    /// advice can then tell a self-signed certificate from one of an unknown
    /// authority, list the names the certificate carries, and give the exact
    /// fingerprint to pin.
    pub fn tls_advice_for(&self, presented: Option<&CertificateInfo>) -> Option<String> {
        match self {
            Error::Tls(error) => Some(describe_tls(error, presented)),
            _ => None,
        }
    }
}

/// The advice for trusting a certificate deliberately.
fn how_to_trust(presented: Option<&CertificateInfo>) -> String {
    let fingerprint = presented.map_or_else(|| "SHA256".to_owned(), |c| c.sha256.to_string());
    format!(
        "If you trust this server, add the certificate of the authority that issued it (or the \
         server's own certificate) with --ca-file FILE (TlsOptions::add_root_pem_file), or pin \
         the server's certificate with --tls-fingerprint {fingerprint} \
         (TlsOptions::pin_sha256) after checking that fingerprint with the server's \
         administrator."
    )
}

fn describe_tls(error: &rustls::Error, presented: Option<&CertificateInfo>) -> String {
    match error {
        rustls::Error::InvalidCertificate(problem) => describe_certificate(problem, presented),
        rustls::Error::NoCertificatesPresented => {
            "the server sent no certificate, so it cannot be verified.".to_owned()
        }
        rustls::Error::InvalidMessage(_) => format!(
            "the server did not answer with TLS ({error}). A port for plain POP3 (110) answers \
             this way: use STLS there, and implicit TLS on the POP3S port (995)."
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake with the alert {alert:?}; its log may say why."
        ),
        rustls::Error::PeerIncompatible(_) => format!(
            "the server offers no TLS version or cipher suite this client accepts (TLS 1.2 or \
             1.3 with current ciphers): {error}."
        ),
        other => format!("the TLS connection failed: {other}."),
    }
}

fn describe_certificate(problem: &CertificateError, presented: Option<&CertificateInfo>) -> String {
    let issuer = presented.map_or_else(String::new, |c| format!(" (\"{}\")", c.issuer));
    match problem {
        CertificateError::UnknownIssuer => match presented {
            Some(cert) if cert.self_signed => format!(
                "the server's certificate is self-signed (\"{}\") and is not one this client \
                 was told to trust. {}",
                cert.subject,
                how_to_trust(presented)
            ),
            _ => format!(
                "the server's certificate was issued by an authority this client does not \
                 trust{issuer}; a self-signed certificate fails this way too. {}",
                how_to_trust(presented)
            ),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let when = match problem {
                CertificateError::ExpiredContext { time, not_after } => format!(
                    " on {} (it is now {})",
                    unix(not_after.as_secs()),
                    unix(time.as_secs())
                ),
                _ => presented.map_or_else(String::new, |c| {
                    format!(" on {}", format_unix_time(c.not_after))
                }),
            };
            format!(
                "the server's certificate expired{when}. Its administrator must renew it; if the \
                 date here is wrong, correct this computer's clock."
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let when = match problem {
                CertificateError::NotValidYetContext { time, not_before } => format!(
                    " before {} (it is now {})",
                    unix(not_before.as_secs()),
                    unix(time.as_secs())
                ),
                _ => presented.map_or_else(String::new, |c| {
                    format!(" before {}", format_unix_time(c.not_before))
                }),
            };
            format!("the server's certificate is not valid{when}. Check this computer's clock.")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let (expected, mut names) = match problem {
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => (
                    format!(" \"{}\"", expected.to_str()),
                    presented.iter().map(|name| readable_name(name)).collect(),
                ),
                _ => (String::new(), Vec::new()),
            };
            if let Some(cert) = presented {
                names = cert.names();
            }
            let carried = if names.is_empty() {
                "it carries no host name".to_owned()
            } else {
                format!("it is valid for {}", names.join(", "))
            };
            format!(
                "the server's certificate is not valid for the name{expected}: {carried}. \
                 Connect with one of the names it carries (or set Options::server_name), or ask \
                 the server's administrator for a certificate with the right name."
            )
        }
        CertificateError::Other(other) => {
            if let Some(mismatch) = other.0.downcast_ref::<FingerprintMismatch>() {
                let pinned: Vec<String> = mismatch.pinned.iter().map(ToString::to_string).collect();
                return format!(
                    "the server's certificate has SHA-256 fingerprint {}, not the pinned {}. If \
                     the server's certificate was replaced on purpose, check the new \
                     fingerprint with its administrator and pin that one; otherwise someone may \
                     be intercepting the connection.",
                    mismatch.presented,
                    pinned.join(" or ")
                );
            }
            match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => format!(
                    "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
                     `openssl req -x509` makes) used as a server's own certificate, which is \
                     accepted only when that exact certificate is trusted. {}",
                    how_to_trust(presented)
                ),
                Some(webpki::Error::UnsupportedCriticalExtension) => {
                    "the server's certificate has a critical extension this client does not \
                     understand, so it cannot be accepted."
                        .to_owned()
                }
                _ => format!("the server's certificate was refused: {other}."),
            }
        }
        CertificateError::UnhandledCriticalExtension => "the server's certificate has a \
            critical extension this client does not understand, so it cannot be accepted."
            .to_owned(),
        CertificateError::BadSignature => "a signature in the server's certificate chain does \
            not verify: the certificate is damaged or forged."
            .to_owned(),
        CertificateError::Revoked => "the server's certificate has been revoked by its issuer. \
            Its administrator must replace it."
            .to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for TLS servers (its extended key usage does \
             not include serverAuth)."
                .to_owned()
        }
        CertificateError::BadEncoding => "the server's certificate is malformed.".to_owned(),
        other => format!("the server's certificate was refused: {other}."),
    }
}

fn unix(seconds: u64) -> String {
    format_unix_time(i64::try_from(seconds).unwrap_or(i64::MAX))
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

    fn advice(error: &Error, presented: Option<&CertificateInfo>) -> String {
        error.tls_advice_for(presented).unwrap_or_default()
    }

    #[test]
    fn only_tls_errors_get_advice() {
        assert!(Error::Closed.tls_advice().is_none());
        assert!(Error::Timeout(Phase::TlsHandshake).tls_advice().is_none());
        assert!(Error::Tls(rustls::Error::DecryptError)
            .tls_advice()
            .is_some_and(|a| a.contains("TLS connection failed")));
    }

    #[test]
    fn unknown_issuer_and_self_signed_say_how_to_trust() {
        let pki = test_support::TestPki::shared();
        let error = tls(CertificateError::UnknownIssuer);
        let plain = advice(&error, None);
        assert!(
            plain.contains("authority this client does not trust"),
            "{plain}"
        );
        assert!(plain.contains("--ca-file FILE (TlsOptions::add_root_pem_file)"));
        assert!(plain.contains("--tls-fingerprint SHA256 (TlsOptions::pin_sha256)"));

        let own = CertificateInfo::from_der(&pki.self_signed.cert_der).ok();
        let text = advice(&error, own.as_ref());
        assert!(text.contains("is self-signed"), "{text}");
        let fingerprint = crate::Sha256Fingerprint::of(&pki.self_signed.cert_der);
        assert!(
            text.contains(&format!("--tls-fingerprint {fingerprint}")),
            "{text}"
        );

        let issued = CertificateInfo::from_der(&pki.unknown_ca.cert_der).ok();
        let text = advice(&error, issued.as_ref());
        assert!(text.contains("UNTRUSTED CA"), "{text}");
        assert!(!text.contains("is self-signed"), "{text}");
    }

    #[test]
    fn dates_are_spelled_out() {
        let at =
            |s| rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        let expired = tls(CertificateError::ExpiredContext {
            time: at(1_764_547_200),
            not_after: at(978_307_200),
        });
        let text = advice(&expired, None);
        assert!(
            text.contains("expired on 2001-01-01 00:00:00 UTC (it is now 2025-12-01 00:00:00 UTC)"),
            "{text}"
        );
        let early = tls(CertificateError::NotValidYetContext {
            time: at(0),
            not_before: at(86_400),
        });
        let text = advice(&early, None);
        assert!(
            text.contains("not valid before 1970-01-02 00:00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("clock"));
        let pki = test_support::TestPki::shared();
        let info = CertificateInfo::from_der(&pki.expired.cert_der).ok();
        let text = advice(&tls(CertificateError::Expired), info.as_ref());
        assert!(text.contains("expired on 2001-01-01"), "{text}");
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
        let text = advice(&error, None);
        assert!(
            text.contains(
                "not valid for the name \"localhost\": it is valid for wrong.example, odd"
            ),
            "{text}"
        );
        let pki = test_support::TestPki::shared();
        let info = CertificateInfo::from_der(&pki.server.cert_der).ok();
        let text = advice(&tls(CertificateError::NotValidForName), info.as_ref());
        assert!(
            text.contains("valid for localhost, 127.0.0.1, ::1"),
            "{text}"
        );
    }

    #[test]
    fn pins_and_ca_certificates_are_explained() {
        let presented = crate::Sha256Fingerprint::from_bytes([0xAB; 32]);
        let pinned = crate::Sha256Fingerprint::from_bytes([0x01; 32]);
        let mismatch = FingerprintMismatch {
            presented,
            pinned: vec![pinned],
        };
        let error = tls(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(mismatch),
        )));
        let text = advice(&error, None);
        assert!(text.contains(&format!("fingerprint {presented}, not the pinned {pinned}")));
        assert!(text.contains("intercepting"));

        let error = tls(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        let text = advice(&error, None);
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("--ca-file"), "{text}");
    }
}
