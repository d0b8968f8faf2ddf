//! Connection options: TLS trust, time limits and what the core may do.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::{Config, Limits};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::certificate::Sha256Fingerprint;
use crate::socks5::Socks5Proxy;
use crate::trust::{self, PeerCertificates, TrustRoots};
use crate::{Error, IoContext, IoSubject, Result};

/// Time limits: one for each I/O step, and one for the whole session;
/// `None` waits forever.
///
/// | field | default | applies to |
/// |---|---|---|
/// | `connect` | 30 s | opening the TCP connection (see below for what it covers) |
/// | `tls_handshake` | 30 s | the TLS handshake |
/// | `read` | 60 s | each read from the server (time without *any* byte) |
/// | `write` | 60 s | each write (and flush) to the server |
/// | `session` | 1 hour | the whole session, from the start of connecting to the last reply |
///
/// The greeting is waited for as a read, with one exception: on a
/// connection without TLS (`connect_plain`, `connect_starttls`) to port
/// 995, at most 10 s. A port 995 server speaks implicit TLS and waits in
/// silence for the client's TLS hello, so after 10 s the connect function
/// fails with [`Phase::GreetingOnImplicitTlsPort`](crate::Phase::GreetingOnImplicitTlsPort)
/// (kind `Tls`), whose text says that the port may expect TLS, instead of
/// after the whole read limit. Elsewhere a slow greeting (a server that
/// looks up the client's name first) is waited for, and silence is
/// [`Phase::Greeting`](crate::Phase::Greeting) (kind `Timeout`) at the read
/// limit, with no guess about TLS.
///
/// `read` and `write` are idle limits: they apply to single reads and
/// writes, not to whole commands. A 100 MiB message that keeps arriving never
/// runs into them, a server that stops sending for `read` does. A server that
/// trickles a byte now and then, or sends a line or a message without end,
/// never stops sending: only `session` ends that. It is an overall deadline,
/// counted from the moment a connect function starts (or
/// [`Connection::new`](crate::Connection::new) is called for a stream of
/// your own) and never re-armed; every later step waits at most what remains
/// of it (the TCP connect and the SOCKS5 handshake excepted: they keep their
/// own `connect` limit, and the session is checked right after them). Set it to what the longest session you expect may take (a large
/// mailbox over a slow link), or `None` for a connection that is meant to
/// stay open for good.
///
/// When a limit runs out the call returns [`Error::Timeout`] naming the
/// [`Phase`](crate::Phase) — [`Phase::Session`](crate::Phase::Session) when
/// it was the overall deadline, the I/O step otherwise — and the connection
/// is over (later calls return [`Error::Closed`]). To bound a single
/// operation, wrap the call in your runtime's timeout (which, when it fires,
/// poisons the connection: see `Connection`'s cancellation rules).
///
/// # What each runtime really bounds
///
/// The blocking runtime has no timer: its limits are socket options, so they
/// only work on the sockets it can set them on.
///
/// | | blocking (`pop3-blocking`) | async (`pop3-tokio`, `pop3-smol`) |
/// |---|---|---|
/// | DNS lookup | **not bounded** (the system resolver decides) | inside `connect` |
/// | `connect` | each address tried, on its own (`TcpStream::connect_timeout`): a name with three dead addresses can take three times the limit | the whole of resolving the name and trying its addresses in turn, once, by the runtime's timer |
/// | `tls_handshake` | each socket read and write during the handshake (socket options) | the whole handshake, by the runtime's timer |
/// | `read`, `write` | socket options (`set_read_timeout` / `set_write_timeout`) | the runtime's timer, re-armed at each byte of progress |
/// | `session` | checked before every read and write, and the socket options shrink to what remains of it once that is shorter than `read` or `write` | the runtime's timer, armed for what remains whenever a step waits, and checked before every read and write |
/// | a stream you pass to `Connection::new` | only if it is a `std::net::TcpStream` (inside the `MaybeTls`); for any other stream set its limits yourself — a `WouldBlock` or `TimedOut` error from it counts as a time-out | the runtime's timer, whatever the stream |
///
/// On tokio the timers need a runtime with time enabled; on smol they are
/// `async-io` timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Opening the TCP connection (default 30 s).
    pub connect: Option<Duration>,
    /// The TLS handshake (default 30 s).
    pub tls_handshake: Option<Duration>,
    /// Each read from the server (default 60 s).
    pub read: Option<Duration>,
    /// Each write to the server (default 60 s).
    pub write: Option<Duration>,
    /// The whole session, however busy the server keeps it (default one
    /// hour; see the table above).
    pub session: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Some(Duration::from_secs(30)),
            tls_handshake: Some(Duration::from_secs(30)),
            read: Some(Duration::from_secs(60)),
            write: Some(Duration::from_secs(60)),
            session: Some(Timeouts::DEFAULT_SESSION),
        }
    }
}

impl Timeouts {
    /// [`Timeouts::session`]'s default: an hour moves about 3.5 GB at 1 MB/s.
    /// A session that needs more (a first download of a very large mailbox
    /// over a slow link) raises it; one that is stopped keeps what it
    /// received, so a program that fetches incrementally finishes on a later
    /// run.
    pub const DEFAULT_SESSION: Duration = Duration::from_secs(60 * 60);

    /// No limits at all: every step may wait forever.
    pub const fn none() -> Timeouts {
        Timeouts {
            connect: None,
            tls_handshake: None,
            read: None,
            write: None,
            session: None,
        }
    }

    /// The same limit for every I/O step; the session keeps its default
    /// overall limit ([`Timeouts::DEFAULT_SESSION`]).
    pub const fn uniform(limit: Duration) -> Timeouts {
        Timeouts {
            connect: Some(limit),
            tls_handshake: Some(limit),
            read: Some(limit),
            write: Some(limit),
            session: Some(Timeouts::DEFAULT_SESSION),
        }
    }
}

/// How to connect and what the protocol core may do.
///
/// The struct is `#[non_exhaustive]` (fields may be added), so it cannot be
/// written as a struct literal outside this crate: start from
/// [`Options::new`] and chain the setters, one per field. Every transport
/// re-exports it (`pop3_blocking::Options`, ...).
///
/// ```
/// use std::time::Duration;
/// use pop3_transport::{Options, Timeouts, TlsOptions, TrustRoots};
///
/// # let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).expect("rcgen").cert.pem();
/// let options = Options::new()
///     .server_name("mail.example.com") // the name the certificate must carry
///     .tls(TlsOptions::new().trust_roots(TrustRoots::Mozilla).add_root_pem(&ca)?)
///     .timeouts(Timeouts { read: Some(Duration::from_secs(10)), ..Timeouts::default() })
///     .pipeline_window(64);
/// assert!(!options.allow_plaintext_credentials); // the safe default
/// # Ok::<(), pop3_transport::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The name the server's certificate must be valid for, and the SNI sent.
    /// Defaults to the host given to the connect function.
    pub server_name: Option<String>,
    /// Trust anchors and client certificate.
    pub tls: TlsOptions,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Allow passwords, digests and tokens over an unencrypted connection
    /// (default `false`: such commands fail with
    /// [`UsageError::PlaintextCredentials`](pop3_proto::UsageError::PlaintextCredentials)
    /// and nothing is sent).
    pub allow_plaintext_credentials: bool,
    /// Only for a transport's `Connection::new`: the stream passed there is
    /// already encrypted (a TLS stream set up by the caller, an SSH channel),
    /// so credentials may be sent over it. The connect functions ignore it and
    /// decide themselves.
    pub encrypted: bool,
    /// Most commands in flight at once when the server offers `PIPELINING`
    /// (default 1024, and never more than 8 KiB of unanswered commands; see
    /// `pop3_proto::Config::pipeline_window`).
    pub pipeline_window: usize,
    /// Size limits on what the server may send.
    pub limits: Limits,
    /// Connect through this SOCKS5 proxy (default none: connect directly).
    /// The mail server's host name is resolved by the proxy, and TLS still
    /// verifies the mail server's name; see [`Options::proxy`].
    pub proxy: Option<Socks5Proxy>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_name: None,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            allow_plaintext_credentials: false,
            encrypted: false,
            pipeline_window: Config::default().pipeline_window,
            limits: Limits::default(),
            proxy: None,
        }
    }
}

impl Options {
    /// The defaults: verify against the system's roots, default time limits,
    /// no credentials in plaintext.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::server_name`].
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Options {
        self.server_name = Some(name.into());
        self
    }

    /// Sets [`Options::tls`].
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Options {
        self.tls = tls;
        self
    }

    /// Sets [`Options::timeouts`].
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Sets [`Options::allow_plaintext_credentials`] (the name the core's
    /// `Config`, the C ABI and Python use too).
    #[must_use]
    pub fn allow_plaintext_credentials(mut self, allow: bool) -> Options {
        self.allow_plaintext_credentials = allow;
        self
    }

    /// The former name of [`Options::allow_plaintext_credentials`].
    #[deprecated(note = "renamed to `allow_plaintext_credentials`, the name every surface uses")]
    #[must_use]
    pub fn allow_plaintext_auth(self, allow: bool) -> Options {
        self.allow_plaintext_credentials(allow)
    }

    /// Sets [`Options::encrypted`].
    #[must_use]
    pub fn encrypted(mut self, encrypted: bool) -> Options {
        self.encrypted = encrypted;
        self
    }

    /// Sets [`Options::pipeline_window`] (at least 1).
    #[must_use]
    pub fn pipeline_window(mut self, window: usize) -> Options {
        self.pipeline_window = window.max(1);
        self
    }

    /// Sets [`Options::limits`].
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Options {
        self.limits = limits;
        self
    }

    /// The protocol core's configuration for a connection that is (or is not)
    /// encrypted: these options' plaintext policy, pipeline window and limits.
    pub fn core_config(&self, encrypted: bool) -> Config {
        let config = if encrypted {
            Config::encrypted()
        } else {
            Config::default()
        };
        config
            .allow_plaintext_credentials(self.allow_plaintext_credentials)
            .pipeline_window(self.pipeline_window)
            .limits(self.limits)
    }

    /// The name to verify the server certificate against: the
    /// [`Options::server_name`] override, else `host`.
    ///
    /// Fails with [`Error::Io`] (kind `InvalidInput`) if it is neither a DNS
    /// name nor an IP address.
    pub fn tls_server_name(&self, host: &str) -> Result<ServerName<'static>> {
        parse_server_name(self.server_name.as_deref().unwrap_or(host))
    }

    /// Sets [`Options::proxy`]: every connect function then opens its TCP
    /// connection to the proxy (within [`Timeouts::connect`]), asks it with
    /// SOCKS5 (RFC 1928) to connect to the mail server by *name*, so that
    /// the proxy resolves it (as Tor needs), authenticating with the proxy's
    /// user name and password (RFC 1929; a missing password is sent empty)
    /// if it wants them, and only then runs TLS for the mail server's name
    /// and reads the greeting. The handshake is bounded by
    /// [`Timeouts::connect`] (else [`Timeouts::read`]). A proxy that fails
    /// gives [`Error::Proxy`], or [`Error::Timeout`] with
    /// [`Phase::Proxy`](crate::Phase::Proxy).
    ///
    /// ```
    /// use pop3_transport::Options;
    ///
    /// let options = Options::new().proxy("socks5://127.0.0.1:9050".parse()?);
    /// # Ok::<(), pop3_transport::socks5::ProxyUrlError>(())
    /// ```
    #[must_use]
    pub fn proxy(mut self, proxy: Socks5Proxy) -> Options {
        self.proxy = Some(proxy);
        self
    }
}

/// Parses a DNS name or IP address for certificate verification and SNI.
///
/// Fails with [`Error::Io`] (kind `InvalidInput`) naming the bad name.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid TLS server name {name:?}: {e}"),
        ))
    })
}

/// Which servers to trust, and an optional client certificate.
///
/// Certificate verification is always on; there is no way to turn it off.
/// SNI is sent. What is trusted, by default and with each setting:
///
/// | setting | a server certificate is trusted when |
/// |---|---|
/// | default ([`TrustRoots::System`]) | it chains to a root of the operating system's store (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`; the Mozilla roots when the store is empty, but a `SSL_CERT_FILE` that is missing or holds no certificate is an error), and is valid now and for the host name |
/// | [`TlsOptions::trust_roots`] | the same, with the roots chosen there ([`TrustRoots::Mozilla`], [`TrustRoots::OnlyGiven`]) |
/// | [`TlsOptions::add_root_pem`] and the other `add_root_*` | it chains to one of the added certificates that is a CA, or *is* one of the added certificates (then it may even be a CA certificate, as `openssl req -x509` makes; it must still be valid now and for the host name). An added certificate is a CA, able to vouch for others, only if it has `basicConstraints` CA:TRUE, a key usage (if any) that allows signing certificates, and — when self-signed — names no host: no DNS name or IP address among its subject alternative names and, without a key usage extension, no common name that reads as a host name (`mail.example.org`, `localhost`, an IP address). A self-signed certificate that names a host is a server's own (`openssl req -x509 -subj /CN=mail.example.org` makes one, CA:TRUE included) and vouches for itself only; a CA named like "Example Root CA", or one with keyCertSign, still vouches for others. |
/// | [`TlsOptions::pin_sha256`] | its SHA-256 fingerprint is pinned; nothing else counts |
///
/// An expert can instead pass a complete rustls [`ClientConfig`] with
/// [`TlsOptions::rustls_config`].
///
/// ```
/// use pop3_transport::{TlsOptions, TrustRoots};
/// # let pem = test_pem();
/// // Trust a private CA (or one self-signed server certificate) and nothing else.
/// let tls = TlsOptions::new()
///     .trust_roots(TrustRoots::OnlyGiven)
///     .add_root_pem(pem.as_bytes())?;
/// # fn test_pem() -> String {
/// #     rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).expect("rcgen").cert.pem()
/// # }
/// # Ok::<(), pop3_transport::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    roots: TrustRoots,
    extra_roots: Vec<CertificateDer<'static>>,
    pins: Vec<Sha256Fingerprint>,
    capture: Option<PeerCertificates>,
    client_auth: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("pins", &self.pins)
            .field("capture", &self.capture.is_some())
            .field("client_cert", &self.client_auth.is_some())
            .field("rustls_config", &self.config.is_some())
            .finish()
    }
}

/// An [`Error::Io`] of kind `InvalidData` about `what`.
fn invalid_data(what: &str, error: impl fmt::Display) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: {error}"),
    ))
}

impl TlsOptions {
    /// The defaults: trust the operating system's roots ([`TrustRoots::System`]),
    /// no pin, no client certificate.
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Chooses the roots trusted besides the `add_root_*` certificates
    /// (default [`TrustRoots::System`]).
    #[must_use]
    pub fn trust_roots(mut self, roots: TrustRoots) -> TlsOptions {
        self.roots = roots;
        self
    }

    /// The roots chosen with [`TlsOptions::trust_roots`].
    pub fn roots(&self) -> TrustRoots {
        self.roots
    }

    /// The older switch for [`TlsOptions::trust_roots`]: `true` trusts the
    /// compiled-in Mozilla roots ([`TrustRoots::Mozilla`]), `false` only the
    /// roots added with the `add_root_*` methods ([`TrustRoots::OnlyGiven`]).
    #[must_use]
    pub fn webpki_roots(self, trust: bool) -> TlsOptions {
        self.trust_roots(if trust {
            TrustRoots::Mozilla
        } else {
            TrustRoots::OnlyGiven
        })
    }

    /// Trusts exactly the server certificate with this SHA-256 fingerprint,
    /// instead of any roots (call it again to allow several, for a change of
    /// certificate). Any other certificate fails the handshake with
    /// [`Error::Tls`] holding a [`FingerprintMismatch`](crate::FingerprintMismatch),
    /// before any POP3 command is sent.
    ///
    /// As with mpop's `tls_fingerprint`, neither the host name nor the
    /// validity dates are checked against a pinned certificate: the
    /// fingerprint identifies the one certificate the caller decided to
    /// trust, and those checks only serve to tie a certificate issued by an
    /// authority to a server. The handshake still proves that the server holds
    /// the certificate's private key.
    ///
    /// ```
    /// use pop3_transport::TlsOptions;
    ///
    /// // As printed by `openssl x509 -noout -fingerprint -sha256 -in server.pem`.
    /// let pin = "F2:3C:55:0B:A9:6E:47:D1:08:93:CE:71:2A:5F:B4:E0:\
    ///            19:8D:C6:73:0E:A2:5B:94:D7:31:68:FC:4B:E5:0A:86";
    /// let tls = TlsOptions::new().pin_sha256(pin.parse()?);
    /// # Ok::<(), pop3_transport::FingerprintError>(())
    /// ```
    #[must_use]
    pub fn pin_sha256(mut self, fingerprint: Sha256Fingerprint) -> TlsOptions {
        if !self.pins.contains(&fingerprint) {
            self.pins.push(fingerprint);
        }
        self
    }

    /// Records the certificate chain each server presents into `slot`, before
    /// verification, so it can be read after a failed handshake too. Ignored
    /// with [`TlsOptions::rustls_config`].
    #[must_use]
    pub fn capture_peer_certificates(mut self, slot: &PeerCertificates) -> TlsOptions {
        self.capture = Some(slot.clone());
        self
    }

    /// Also trusts every certificate in the PEM file at `path`: as a root, and
    /// as the server's own certificate when the server presents one of them.
    ///
    /// Fails with [`Error::Io`] naming the path if the file cannot be read or
    /// holds no certificate.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsOptions> {
        let path = path.as_ref();
        let named = |e| Error::Io(IoContext::wrap(IoSubject::File(path.to_owned()), e));
        let pem = std::fs::read(path).map_err(named)?;
        self.add_root_pem(pem).map_err(|error| match error {
            Error::Io(e) => named(e),
            other => other,
        })
    }

    /// Also trusts every certificate in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks).
    ///
    /// Fails with [`Error::Io`] (kind `InvalidData`) if the text holds no
    /// certificate or a malformed one.
    pub fn add_root_pem(mut self, pem: impl AsRef<[u8]>) -> Result<TlsOptions> {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem.as_ref()) {
            let cert = cert.map_err(|e| invalid_data("root certificate PEM", e))?;
            self.extra_roots.push(cert);
            found = true;
        }
        if !found {
            return Err(invalid_data(
                "root certificate PEM",
                "no CERTIFICATE block found",
            ));
        }
        Ok(self)
    }

    /// Also trusts a DER-encoded certificate.
    #[must_use]
    pub fn add_root_der(mut self, cert: CertificateDer<'static>) -> TlsOptions {
        self.extra_roots.push(cert);
        self
    }

    /// Presents a client certificate: `cert_chain_pem` holds the certificate
    /// and its intermediates (leaf first), `key_pem` its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// Fails with [`Error::Io`] (kind `InvalidData`) if either is missing or
    /// malformed.
    pub fn client_cert(
        mut self,
        cert_chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<TlsOptions> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid_data("client certificate PEM", e))?;
        if chain.is_empty() {
            return Err(invalid_data(
                "client certificate PEM",
                "no CERTIFICATE block found",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_ref())
            .map_err(|e| invalid_data("client key PEM", e))?;
        self.client_auth = Some(Arc::new((chain, key)));
        Ok(self)
    }

    /// Uses this rustls configuration as it is, instead of building one from
    /// the other settings (which are then ignored). For experts: the
    /// configuration decides what is verified.
    #[must_use]
    pub fn rustls_config(mut self, config: Arc<ClientConfig>) -> TlsOptions {
        self.config = Some(config);
        self
    }

    /// Builds the rustls configuration: the [`crypto_provider`], rustls' safe
    /// default protocol versions (TLS 1.2 and 1.3), the certificate
    /// verification described [above](TlsOptions), the client certificate if
    /// one was given, SNI on. [`TrustRoots::System`] reads the system's store
    /// on first use in a process, and again when `SSL_CERT_FILE` or
    /// `SSL_CERT_DIR` has changed.
    ///
    /// Fails with [`Error::Tls`] if rustls refuses a root or the client
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let provider = crypto_provider();
        let verifier = trust::verifier(
            self.roots,
            &self.extra_roots,
            &self.pins,
            self.capture.as_ref(),
            &provider,
        )?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_auth {
            Some(auth) => builder.with_client_auth_cert(auth.0.clone(), auth.1.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The cryptography every TLS connection of the transports uses: rustls'
/// `aws-lc-rs` provider, which offers (and prefers) the post-quantum key
/// exchange X25519MLKEM768 besides X25519 and the NIST curves, so that mail
/// recorded today cannot be decrypted by a quantum computer later.
///
/// It is passed explicitly to every configuration this crate builds, never
/// installed as the process default: a program that links another provider
/// as well keeps working. To use another provider (FIPS, `ring`), build your
/// own [`ClientConfig`] and give it to [`TlsOptions::rustls_config`].
///
/// ```
/// let provider = pop3_transport::crypto_provider();
/// let first = provider.kx_groups.first().map(|group| group.name());
/// assert_eq!(first, Some(rustls::NamedGroup::X25519MLKEM768));
/// ```
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_former_name_still_sets_the_plaintext_opt_in() {
        assert!(
            Options::new()
                .allow_plaintext_auth(true)
                .allow_plaintext_credentials
        );
    }

    #[test]
    fn defaults_match_the_spec() {
        let t = Timeouts::default();
        assert_eq!(t.connect, Some(Duration::from_secs(30)));
        assert_eq!(t.tls_handshake, Some(Duration::from_secs(30)));
        assert_eq!(t.read, Some(Duration::from_secs(60)));
        assert_eq!(t.write, Some(Duration::from_secs(60)));
        let o = Options::new();
        assert_eq!(o.timeouts, Timeouts::default());
        assert!(!o.allow_plaintext_credentials && !o.encrypted);
        let c = o.core_config(false);
        assert!(!c.allow_plaintext_credentials && !c.encrypted);
        assert_eq!(c.pipeline_window, 1024);
        assert!(o.core_config(true).encrypted);
        assert!(
            o.allow_plaintext_credentials(true)
                .core_config(true)
                .allow_plaintext_credentials
        );
        assert_eq!(Options::new().pipeline_window(0).pipeline_window, 1);
    }

    #[test]
    fn timeouts_none_and_uniform() {
        let t = Timeouts::none();
        assert!(t.connect.is_none() && t.tls_handshake.is_none());
        assert!(t.read.is_none() && t.write.is_none());
        let second = Duration::from_secs(1);
        let t = Timeouts::uniform(second);
        assert_eq!(t.connect, Some(second));
        assert_eq!(t.tls_handshake, Some(second));
        assert_eq!(t.read, Some(second));
        assert_eq!(t.write, Some(second));
    }

    #[test]
    fn builds_a_config_with_webpki_roots() {
        assert!(TlsOptions::new().client_config().is_ok());
    }

    #[test]
    fn webpki_roots_maps_onto_trust_roots_and_pins_build() {
        assert_eq!(TlsOptions::new().roots(), TrustRoots::System);
        let mozilla = TlsOptions::new().webpki_roots(true);
        assert_eq!(mozilla.roots(), TrustRoots::Mozilla);
        let only_given = TlsOptions::new().webpki_roots(false);
        assert_eq!(only_given.roots(), TrustRoots::OnlyGiven);
        // No root at all still builds: every certificate is then refused.
        assert!(only_given.client_config().is_ok());
        let pin = Sha256Fingerprint::from_bytes([7; 32]);
        let pinned = TlsOptions::new().pin_sha256(pin).pin_sha256(pin);
        assert_eq!(pinned.pins, [pin]);
        assert!(pinned.client_config().is_ok());
        let shown = format!("{pinned:?}");
        assert!(
            shown.contains("roots: System") && shown.contains("07:07:07"),
            "{shown}"
        );
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(matches!(
            TlsOptions::new().add_root_pem(b"hello"),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::InvalidData
        ));
        let missing = TlsOptions::new().add_root_pem_file("/nonexistent/ca.pem");
        assert!(matches!(
            &missing,
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
        let shown = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(shown.contains("/nonexistent/ca.pem"), "{shown}");
        assert!(TlsOptions::new().client_cert(b"hello", b"hello").is_err());
    }

    #[test]
    fn extra_roots_and_client_cert_are_used() {
        let pki = crate::test_certificates::shared();
        let tls = TlsOptions::new()
            .webpki_roots(false)
            .add_root_pem(pki.ca_pem.as_bytes())
            .and_then(|t| {
                t.client_cert(
                    pki.server.cert_pem.as_bytes(),
                    pki.server.key_pem.as_bytes(),
                )
            });
        let config = tls.and_then(|t| t.client_config());
        assert!(config.is_ok_and(|c| c.client_auth_cert_resolver.has_certs()));
    }

    #[test]
    fn server_name_override_and_ip_addresses() {
        assert!(parse_server_name("mail.example.com").is_ok());
        assert!(parse_server_name("127.0.0.1").is_ok());
        assert!(parse_server_name("not a name").is_err());
        let o = Options::new();
        assert!(o.tls_server_name("127.0.0.1").is_ok());
        assert!(o.tls_server_name("localhost").is_ok());
        assert!(o.tls_server_name("not a name!").is_err());
        let o = o.server_name("mail.example.org");
        assert_eq!(
            o.tls_server_name("127.0.0.1").ok(),
            ServerName::try_from("mail.example.org").ok()
        );
    }
}
