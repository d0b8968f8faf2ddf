//! The error type shared by the transports.

use std::fmt;
use std::io;
use std::path::PathBuf;

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
    /// Waiting for the server's greeting on a connection without TLS (yet),
    /// for the whole read limit, on a port other than 995: the server may
    /// be slow or hung, and a later try may well get through.
    Greeting,
    /// Waiting for the greeting without TLS on port 995, the implicit-TLS
    /// port, where the wait is cut to ten seconds (see
    /// `pop3_transport::connect`). A server there that says nothing is
    /// waiting for the client's TLS hello: the connection is misconfigured
    /// (use implicit TLS), so the kind is [`ErrorKind::Tls`], not a timeout
    /// to retry.
    GreetingOnImplicitTlsPort,
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
    /// Waiting for the server's greeting over TLS: after the implicit TLS
    /// handshake, or on a stream given as encrypted
    /// ([`Options::encrypted`](crate::Options::encrypted)).
    GreetingOverTls,
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
            Phase::Greeting | Phase::GreetingOverTls | Phase::GreetingOnImplicitTlsPort => {
                "waiting for the greeting"
            }
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
/// [`Error::is_fatal`] tells the two apart, and [`Error::kind`] says what
/// kind of failure it is (the credentials refused, the network, TLS, ...),
/// so that a program need not match variants and response codes itself:
///
/// ```
/// use pop3_transport::{Error, ErrorKind};
///
/// /// What a mail fetcher run from a timer does about a failed session.
/// fn next_step(error: &Error) -> &'static str {
///     match error.kind() {
///         ErrorKind::AuthenticationRefused => "ask the user for the password again",
///         kind if kind.is_transient() => "try again at the next run",
///         ErrorKind::Tls => "show the certificate problem to the user",
///         ErrorKind::Usage => "a bug in this program: report it",
///         _ => "report the error and stop",
///     }
/// }
/// # use pop3_proto::{ResponseCode, ServerError, Text};
/// # let mut refused = ServerError::new(None, Text::sanitize(b"Logon failure"));
/// # refused.during_login = true;
/// # assert_eq!(next_step(&Error::Server(refused)), "ask the user for the password again");
/// # let busy = ServerError::new(Some(ResponseCode::InUse), Text::sanitize(b"locked"));
/// # assert_eq!(next_step(&Error::Server(busy)), "try again at the next run");
/// ```
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
    /// resolved, or a PEM file could not be read or parsed). A failure to
    /// connect names the `host:port`, a PEM file's its path
    /// ([`Error::io_context`]).
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

/// What kind of failure an [`Error`] is ([`Error::kind`]), with what a
/// caller usually does about it. More kinds may come, so a `match` needs a
/// catch-all arm. [`ErrorKind::is_transient`] groups the kinds worth trying
/// again later, unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server refused the credentials: a login step (`USER`, `PASS`,
    /// `APOP`, `AUTH`) refused with `[AUTH]` or without a response code
    /// (Microsoft's servers send none), a SCRAM exchange the server ended
    /// with an error, or the SOCKS5 proxy refusing its own credentials.
    /// Do not retry with the same credentials (servers lock accounts after
    /// a few failures): ask for new ones.
    AuthenticationRefused,
    /// The server refused for now: `[IN-USE]` (another session holds the
    /// mailbox), `[LOGIN-DELAY]` (logged in too recently) or `[SYS/TEMP]`,
    /// in reply to a command or in its greeting (RFC 2449, RFC 3206). Retry
    /// later, unchanged.
    TemporarilyUnavailable,
    /// The server refused with `-ERR` for another reason: no such message,
    /// `[SYS/PERM]`, a greeting with `-ERR`, a refused `STLS`. Retrying the
    /// same command will not help; the connection is usable unless the
    /// greeting was refused.
    ServerRefused,
    /// TLS failed or cannot be had: the certificate is not trusted or not
    /// valid for the name, the handshake failed, the server answered
    /// with TLS where plain POP3 was expected (or the reverse), it does not
    /// offer `STLS`, or the roots `SSL_CERT_FILE` names cannot be used. A
    /// retry fails the same way until the trust settings, the TLS mode or
    /// the server changes.
    Tls,
    /// The server could not be reached or the connection was lost: the
    /// name does not resolve, the connection was refused or reset, no
    /// route, the server closed it in the middle of a reply, or the SOCKS5
    /// proxy could not be reached or could not reach the server. Often
    /// passes by itself: retry later.
    Network,
    /// A time limit of [`Timeouts`](crate::Timeouts) ran out
    /// ([`Error::Timeout`] says which). Retry later; after
    /// [`Phase::Session`], raise the limit or go on from what was done.
    Timeout,
    /// The server (or the SOCKS5 proxy) broke the protocol: a malformed or
    /// unexpected reply, a hostile one, a SCRAM server that cannot prove it
    /// knows the password. A retry reaches the same server: report it.
    Protocol,
    /// The call was a mistake of the caller's, and nothing was sent: a
    /// command that does not fit the session's state, an argument with CR,
    /// LF or NUL, credentials over a connection without TLS when
    /// [`Options::allow_plaintext_credentials`](crate::Options::allow_plaintext_credentials)
    /// is not set, an invalid server name; also a command dropped unsent
    /// because a login or `STLS` before it failed. Fix the program; the
    /// connection stays usable.
    Usage,
    /// Something on this side failed: a writer or
    /// [`MessageSink`](crate::runtime::MessageSink) of the caller's, a
    /// certificate or key file that cannot be read or holds none, a message
    /// over the caller's size limit. Fix it locally.
    Local,
    /// The session had already ended (`QUIT` was answered, the server closed
    /// it, or an earlier fatal error or cancelled operation broke it). Open
    /// a new connection.
    Closed,
}

impl ErrorKind {
    /// Whether trying again later, unchanged, may well work:
    /// [`ErrorKind::Network`], [`ErrorKind::Timeout`] and
    /// [`ErrorKind::TemporarilyUnavailable`].
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Network | ErrorKind::Timeout | ErrorKind::TemporarilyUnavailable
        )
    }
}

/// What an [`Error::Io`] was about, when the library knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoSubject {
    /// Connecting to this server, or to the SOCKS5 proxy, as given to the
    /// connect function.
    Server {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
    /// Reading this file (a PEM file of certificates).
    File(PathBuf),
}

impl fmt::Display for IoSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoSubject::Server { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            IoSubject::Server { host, port } => write!(f, "{host}:{port}"),
            IoSubject::File(path) => path.display().fmt(f),
        }
    }
}

/// An I/O error with what failed: the `io::Error` inside [`Error::Io`]
/// holds one when the library knows ([`Error::io_context`] finds it), and
/// its text starts with the subject: `localhost:995: Connection refused
/// (os error 111)`. The `io::Error`'s kind is `error`'s.
#[derive(Debug)]
#[non_exhaustive]
pub struct IoContext {
    /// What failed.
    pub subject: IoSubject,
    /// How.
    pub error: io::Error,
}

impl IoContext {
    /// `error` about `subject`; `io::Error::new(error.kind(), context)`
    /// makes it the `io::Error` of an [`Error::Io`].
    pub fn new(subject: IoSubject, error: io::Error) -> IoContext {
        IoContext { subject, error }
    }

    /// `error` about `subject`, as the `io::Error` for [`Error::Io`]; an
    /// error that already has a context keeps it.
    pub(crate) fn wrap(subject: IoSubject, error: io::Error) -> io::Error {
        if io_context(&error).is_some() {
            return error;
        }
        io::Error::new(error.kind(), IoContext { subject, error })
    }
}

impl fmt::Display for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.error)
    }
}

/// `source()` is `None`, as for [`Error`]: the `Display` line already
/// includes the cause.
impl std::error::Error for IoContext {}

fn io_context(error: &io::Error) -> Option<&IoContext> {
    error.get_ref()?.downcast_ref()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The context already says what failed: `localhost:995: Connection refused`.
            Error::Io(e) if io_context(e).is_some() => e.fmt(f),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(e) => match tls_hint(e) {
                Some(hint) => write!(f, "TLS error: {e} ({hint})"),
                None => write!(f, "TLS error: {e}"),
            },
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::BadReply(e) => write!(f, "unusable reply: {e}"),
            Error::Sink(e) => write!(f, "writing the message failed: {e}"),
            Error::Usage(e @ UsageError::PlaintextCredentials) => write!(
                f,
                "usage error: {e}: connect with TLS (connect_tls, or connect_starttls), or \
                 allow it with Options::allow_plaintext_credentials(true)"
            ),
            Error::Usage(e) => write!(f, "usage error: {e}"),
            Error::Server(e) => e.fmt(f),
            Error::Timeout(Phase::Session) => {
                f.write_str("the session ran past its overall time limit")
            }
            Error::Timeout(Phase::Greeting) => f.write_str(
                "waiting for the greeting timed out: the server said nothing within the \
                 read limit",
            ),
            Error::Timeout(Phase::GreetingOnImplicitTlsPort) => f.write_str(
                "waiting for the greeting timed out: the server said nothing; this port \
                 may expect TLS (implicit TLS, 995)",
            ),
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

    /// What kind of failure this is, with what a caller usually does about
    /// it (see [`ErrorKind`]): whether the credentials were refused, the
    /// server is busy, the network or TLS failed, ... A refused login is
    /// told from other `-ERR` replies by the command it answered, not only
    /// by an `[AUTH]` code ([`ServerError::is_authentication_refusal`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io(e) => io_kind(e),
            Error::Tls(_) | Error::StlsUnavailable => ErrorKind::Tls,
            Error::Protocol(e) | Error::BadReply(e) => protocol_kind(e),
            Error::Sink(_) | Error::MessageTooLarge { .. } => ErrorKind::Local,
            Error::Usage(UsageError::Closed) | Error::Closed => ErrorKind::Closed,
            Error::Usage(UsageError::Failed(e)) => protocol_kind(e),
            Error::Usage(UsageError::StlsUnavailable) => ErrorKind::Tls,
            Error::Usage(_) => ErrorKind::Usage,
            Error::Server(e) => server_kind(e),
            // Silence on the implicit-TLS port is a misconfiguration that a
            // retry by cron would repeat for ever.
            Error::Timeout(Phase::GreetingOnImplicitTlsPort) => ErrorKind::Tls,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Proxy(e) => proxy_kind(e),
        }
    }

    /// For an [`Error::Io`] that the library knows the subject of (the
    /// server or proxy it connected to, the file it read), that subject
    /// and the bare error.
    pub fn io_context(&self) -> Option<&IoContext> {
        match self {
            Error::Io(e) | Error::Proxy(Socks5ConnectError::Io(e)) => io_context(e),
            _ => None,
        }
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

/// The operating system's random generator failed (a SCRAM nonce could
/// not be made). Carried inside [`Error::Io`] so that its kind is
/// [`ErrorKind::Local`]: this machine is broken, and retrying against the
/// network will not mend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomFailure {
    /// The generator's own words.
    pub reason: String,
}

impl fmt::Display for RandomFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the system's random generator failed: {}", self.reason)
    }
}

impl std::error::Error for RandomFailure {}

/// An I/O error's kind: a file's or a certificate's problem is local (or
/// the trust settings'), a bad name the caller's, the rest the network's
/// (the resolver's failures have no kind of their own).
fn io_kind(error: &io::Error) -> ErrorKind {
    if let Some(context) = io_context(error) {
        return match context.subject {
            IoSubject::Server { .. } => ErrorKind::Network,
            IoSubject::File(_) => ErrorKind::Local,
        };
    }
    let inner = error.get_ref();
    if inner.is_some_and(|e| e.is::<crate::CertFileError>()) {
        return ErrorKind::Tls;
    }
    if inner.is_some_and(|e| e.is::<RandomFailure>()) {
        return ErrorKind::Local;
    }
    match error.kind() {
        io::ErrorKind::InvalidInput => ErrorKind::Usage,
        io::ErrorKind::InvalidData | io::ErrorKind::NotFound => ErrorKind::Local,
        _ => ErrorKind::Network,
    }
}

fn protocol_kind(error: &ProtocolError) -> ErrorKind {
    use pop3_proto::sasl::SaslError;
    match error {
        ProtocolError::GreetingRejected(e) if e.is_temporary() => ErrorKind::TemporarilyUnavailable,
        ProtocolError::GreetingRejected(_) => ErrorKind::ServerRefused,
        ProtocolError::UnexpectedEof => ErrorKind::Network,
        ProtocolError::TlsInsteadOfGreeting | ProtocolError::TlsFailed => ErrorKind::Tls,
        // SCRAM's `e=invalid-proof` and its kin: the server's refusal.
        ProtocolError::Sasl(SaslError::ServerError(_)) => ErrorKind::AuthenticationRefused,
        _ => ErrorKind::Protocol,
    }
}

fn server_kind(error: &ServerError) -> ErrorKind {
    if error.is_authentication_refusal() {
        ErrorKind::AuthenticationRefused
    } else if error.is_temporary() {
        ErrorKind::TemporarilyUnavailable
    } else {
        ErrorKind::ServerRefused
    }
}

fn proxy_kind(error: &Socks5ConnectError) -> ErrorKind {
    use crate::socks5::Socks5Error;
    match error {
        Socks5ConnectError::Io(_) => ErrorKind::Network,
        Socks5ConnectError::Socks5(e) => match e {
            Socks5Error::ConnectFailed(_) | Socks5Error::Truncated(_) => ErrorKind::Network,
            Socks5Error::AuthRefused { .. } | Socks5Error::NoAcceptableMethod => {
                ErrorKind::AuthenticationRefused
            }
            Socks5Error::InvalidTarget(_) | Socks5Error::InvalidCredentials(_) => ErrorKind::Usage,
            _ => ErrorKind::Protocol,
        },
        _ => ErrorKind::Network,
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
    use pop3_proto::ResponseCode;

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

    fn refusal(code: Option<ResponseCode>, during_login: bool) -> Error {
        let mut error = ServerError::new(code, pop3_proto::Text::sanitize(b"no"));
        error.during_login = during_login;
        Error::Server(error)
    }

    fn io(kind: io::ErrorKind) -> Error {
        Error::Io(io::Error::from(kind))
    }

    #[test]
    fn every_variant_has_a_kind() {
        use crate::socks5::{ReplyCode, Socks5Error, Stage};
        use pop3_proto::sasl::SaslError;
        use ErrorKind::*;
        let server = |host: &str| IoSubject::Server {
            host: host.to_owned(),
            port: 995,
        };
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let cert_file = crate::CertFileError {
            path: "/etc/ssl/none.pem".into(),
            reason: "no certificate".to_owned(),
        };
        let greeting = |code| {
            ProtocolError::GreetingRejected(ServerError::new(code, pop3_proto::Text::default()))
        };
        let proxy = |e| Error::Proxy(Socks5ConnectError::Socks5(e));
        let cases: Vec<(Error, ErrorKind)> = vec![
            (
                refusal(Some(ResponseCode::Auth), true),
                AuthenticationRefused,
            ),
            (refusal(None, true), AuthenticationRefused),
            (
                refusal(Some(ResponseCode::Other("X-BAD".into())), true),
                AuthenticationRefused,
            ),
            (
                refusal(Some(ResponseCode::Auth), false),
                AuthenticationRefused,
            ),
            (
                refusal(Some(ResponseCode::InUse), true),
                TemporarilyUnavailable,
            ),
            (
                refusal(Some(ResponseCode::LoginDelay), true),
                TemporarilyUnavailable,
            ),
            (
                refusal(Some(ResponseCode::SysTemp), false),
                TemporarilyUnavailable,
            ),
            (refusal(Some(ResponseCode::SysPerm), true), ServerRefused),
            (refusal(None, false), ServerRefused),
            (
                Error::Io(IoContext::wrap(server("localhost"), refused())),
                Network,
            ),
            (
                Error::Io(IoContext::wrap(
                    IoSubject::File("/x/ca.pem".into()),
                    refused(),
                )),
                Local,
            ),
            (
                Error::Io(io::Error::other(RandomFailure {
                    reason: "no entropy".into(),
                })),
                Local,
            ),
            (io(io::ErrorKind::ConnectionReset), Network),
            (io(io::ErrorKind::UnexpectedEof), Network),
            (io(io::ErrorKind::InvalidInput), Usage),
            (io(io::ErrorKind::InvalidData), Local),
            (
                Error::Io(io::Error::new(io::ErrorKind::InvalidData, cert_file)),
                Tls,
            ),
            (Error::Tls(rustls::Error::DecryptError), Tls),
            (tls(CertificateError::UnknownIssuer), Tls),
            (Error::StlsUnavailable, Tls),
            (Error::Protocol(ProtocolError::TlsInsteadOfGreeting), Tls),
            (Error::Protocol(ProtocolError::TlsFailed), Tls),
            (Error::Protocol(ProtocolError::UnexpectedEof), Network),
            (Error::Protocol(ProtocolError::UnsolicitedData), Protocol),
            (
                Error::Protocol(greeting(Some(ResponseCode::SysTemp))),
                TemporarilyUnavailable,
            ),
            (Error::Protocol(greeting(None)), ServerRefused),
            (
                Error::Protocol(ProtocolError::Sasl(SaslError::ServerError(
                    "invalid-proof".into(),
                ))),
                AuthenticationRefused,
            ),
            (
                Error::Protocol(ProtocolError::Sasl(SaslError::ServerSignatureMismatch)),
                Protocol,
            ),
            (Error::BadReply(ProtocolError::Malformed("bad")), Protocol),
            (
                Error::Sink(io::Error::from(io::ErrorKind::StorageFull)),
                Local,
            ),
            (Error::MessageTooLarge { limit: 10 }, Local),
            (Error::Usage(UsageError::PlaintextCredentials), Usage),
            (Error::Usage(UsageError::InvalidArgument("CR")), Usage),
            (Error::Usage(UsageError::Cancelled), Usage),
            (Error::Usage(UsageError::Closed), Closed),
            (Error::Usage(UsageError::StlsUnavailable), Tls),
            (
                Error::Usage(UsageError::Failed(ProtocolError::UnsolicitedData)),
                Protocol,
            ),
            (Error::Closed, Closed),
            (Error::Timeout(Phase::Greeting), Timeout),
            (Error::Timeout(Phase::GreetingOnImplicitTlsPort), Tls),
            (Error::Timeout(Phase::Session), Timeout),
            (Error::Proxy(Socks5ConnectError::Io(refused())), Network),
            (
                proxy(Socks5Error::ConnectFailed(ReplyCode::HostUnreachable)),
                Network,
            ),
            (
                proxy(Socks5Error::AuthRefused { status: 1 }),
                AuthenticationRefused,
            ),
            (proxy(Socks5Error::InvalidTarget("empty")), Usage),
            (
                proxy(Socks5Error::NotSocks5 {
                    stage: Stage::MethodSelection,
                    version: 4,
                }),
                Protocol,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error:?}");
            let transient = matches!(kind, Network | Timeout | TemporarilyUnavailable);
            assert_eq!(kind.is_transient(), transient, "{kind:?}");
        }
    }

    #[test]
    fn io_errors_name_what_failed_once() {
        let subject = IoSubject::Server {
            host: "localhost".to_owned(),
            port: 995,
        };
        let refused = io::Error::from_raw_os_error(111);
        let wrapped = IoContext::wrap(subject.clone(), refused);
        assert_eq!(wrapped.kind(), io::ErrorKind::ConnectionRefused);
        // Wrapping again keeps the first subject, said once.
        let error = Error::Io(IoContext::wrap(subject.clone(), wrapped));
        let shown = error.to_string();
        assert!(shown.starts_with("localhost:995: "), "{shown}");
        assert_eq!(shown.matches("localhost:995").count(), 1, "{shown}");
        let context = error.io_context().map(|c| (&c.subject, c.error.kind()));
        assert_eq!(context, Some((&subject, io::ErrorKind::ConnectionRefused)));
        let v6 = IoSubject::Server {
            host: "::1".to_owned(),
            port: 110,
        };
        assert_eq!(v6.to_string(), "[::1]:110");
        assert!(io(io::ErrorKind::BrokenPipe).io_context().is_none());
    }

    #[test]
    fn the_plaintext_refusal_says_how_to_allow_it_and_suggests_tls() {
        let shown = Error::Usage(UsageError::PlaintextCredentials).to_string();
        assert!(
            shown.contains("Options::allow_plaintext_credentials") && shown.contains("TLS"),
            "{shown}"
        );
    }

    #[test]
    fn a_silent_greeting_suggests_implicit_tls_only_without_tls() {
        let on_995 = Error::Timeout(Phase::GreetingOnImplicitTlsPort).to_string();
        assert!(
            on_995.contains("may expect TLS (implicit TLS, 995)"),
            "{on_995}"
        );
        // Elsewhere the whole read limit passed: no guess about TLS.
        let plain = Error::Timeout(Phase::Greeting).to_string();
        assert!(!plain.contains("TLS") && !plain.contains("995"), "{plain}");
        let over_tls = Error::Timeout(Phase::GreetingOverTls).to_string();
        assert_eq!(over_tls, "waiting for the greeting timed out");
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
