//! Connection options: TLS trust, time limits, and what the core may do.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::{Config, Limits};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

/// Time limits for each step of a connection. `None` means wait forever.
///
/// | field | default | applies to |
/// |---|---|---|
/// | `connect` | 30 s | each TCP connection attempt ([`TcpStream::connect_timeout`](std::net::TcpStream::connect_timeout)) |
/// | `tls_handshake` | 30 s | each socket read and write during a TLS handshake |
/// | `read` | 60 s | each socket read (time without *any* byte from the server) |
/// | `write` | 60 s | each socket write |
///
/// The limits apply to single socket operations, not to whole commands: a
/// 100 MiB message that keeps arriving never times out, a server that stops
/// sending for `read` does. When a limit runs out the call returns
/// [`Error::Timeout`] naming the [`Phase`](crate::Phase), and the connection
/// is over (later calls return [`Error::Closed`]).
///
/// The connect helpers ([`connect_plain`](crate::connect_plain), ...) set the
/// limits on their `TcpStream`. [`Connection::new`](crate::Connection::new)
/// takes any stream and cannot: set time limits on your stream yourself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Opening the TCP connection (per address tried).
    pub connect: Option<Duration>,
    /// Each read or write of the TLS handshake.
    pub tls_handshake: Option<Duration>,
    /// Each read from the server.
    pub read: Option<Duration>,
    /// Each write to the server.
    pub write: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Some(Duration::from_secs(30)),
            tls_handshake: Some(Duration::from_secs(30)),
            read: Some(Duration::from_secs(60)),
            write: Some(Duration::from_secs(60)),
        }
    }
}

impl Timeouts {
    /// No limits at all: every step may wait forever.
    pub const fn none() -> Timeouts {
        Timeouts {
            connect: None,
            tls_handshake: None,
            read: None,
            write: None,
        }
    }

    /// The same limit for every step.
    pub const fn uniform(limit: Duration) -> Timeouts {
        Timeouts {
            connect: Some(limit),
            tls_handshake: Some(limit),
            read: Some(limit),
            write: Some(limit),
        }
    }
}

/// Which certificates to trust, and an optional client certificate.
///
/// By default the Mozilla roots of `webpki-roots` are trusted. Certificate
/// verification is always on and host names are always checked; there is no
/// option to turn that off. SNI is sent.
///
/// ```
/// use pop3_blocking::TlsOptions;
/// # let pem = test_pem();
/// // Trust a private CA in addition to the public roots.
/// let tls = TlsOptions::new().add_root_pem(pem.as_bytes())?;
/// # fn test_pem() -> String { test_support::pki::TestPki::shared().ca_pem.clone() }
/// # Ok::<(), pop3_blocking::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    no_default_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    client_cert: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    custom: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("webpki_roots", &!self.no_default_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_cert", &self.client_cert.is_some())
            .field("custom_config", &self.custom.is_some())
            .finish()
    }
}

fn invalid_data(what: &str, error: impl fmt::Display) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: {error}"),
    ))
}

impl TlsOptions {
    /// The defaults: the `webpki-roots` trust anchors, no client certificate.
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Also trusts every certificate in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks). Fails with [`Error::Io`]
    /// (`InvalidData`) when there is none or one is malformed.
    pub fn add_root_pem(mut self, pem: impl AsRef<[u8]>) -> Result<TlsOptions> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_ref()) {
            let cert = cert.map_err(|e| invalid_data("root certificate PEM", e))?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(invalid_data(
                "root certificate PEM",
                "no CERTIFICATE block found",
            ));
        }
        Ok(self)
    }

    /// Also trusts every certificate in the PEM file at `path`.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsOptions> {
        let pem = std::fs::read(path).map_err(Error::Io)?;
        self.add_root_pem(pem)
    }

    /// Also trusts this DER-encoded certificate.
    pub fn add_root_der(mut self, cert: CertificateDer<'static>) -> TlsOptions {
        self.extra_roots.push(cert);
        self
    }

    /// Whether to trust the `webpki-roots` (Mozilla) roots (default `true`).
    /// Turn it off to trust only the roots you add.
    pub fn webpki_roots(mut self, trust: bool) -> TlsOptions {
        self.no_default_roots = !trust;
        self
    }

    /// Presents a client certificate: `cert_chain_pem` holds the certificate
    /// and its intermediates, `key_pem` its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn client_cert(
        mut self,
        cert_chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<TlsOptions> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_ref())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| invalid_data("client certificate PEM", e))?;
        if chain.is_empty() {
            return Err(invalid_data(
                "client certificate PEM",
                "no CERTIFICATE block found",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_ref())
            .map_err(|e| invalid_data("client key PEM", e))?;
        self.client_cert = Some(Arc::new((chain, key)));
        Ok(self)
    }

    /// Uses this rustls configuration as it is, instead of building one from
    /// the other settings (which are then ignored). For experts: the
    /// configuration decides what is verified.
    pub fn rustls_config(mut self, config: Arc<ClientConfig>) -> TlsOptions {
        self.custom = Some(config);
        self
    }

    /// Builds the rustls configuration: the ring provider, rustls' safe
    /// default protocol versions (TLS 1.2 and 1.3), the roots, and the client
    /// certificate if one was given.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.custom {
            return Ok(Arc::clone(config));
        }
        let mut roots = RootCertStore::empty();
        if !self.no_default_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for cert in &self.extra_roots {
            roots.add(cert.clone()).map_err(Error::Tls)?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(Error::Tls)?
                .with_root_certificates(roots);
        let config = match &self.client_cert {
            Some(pair) => builder
                .with_client_auth_cert(pair.0.clone(), pair.1.clone_key())
                .map_err(Error::Tls)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// How to connect and what the session may do. Build it with the methods:
///
/// ```
/// use std::time::Duration;
/// use pop3_blocking::{Options, Timeouts};
/// let options = Options::new()
///     .timeouts(Timeouts { read: Some(Duration::from_secs(10)), ..Timeouts::default() })
///     .server_name("pop.example.com");
/// assert!(!options.allow_plaintext_auth);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The name the server's certificate must be valid for, and the SNI sent.
    /// Defaults to the host given to the connect helper.
    pub server_name: Option<String>,
    /// Trust anchors and client certificate.
    pub tls: TlsOptions,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Allow passwords, digests and tokens over an unencrypted connection
    /// (default `false`: such commands fail with
    /// [`UsageError::PlaintextCredentials`](pop3_proto::UsageError::PlaintextCredentials)).
    pub allow_plaintext_auth: bool,
    /// Most commands in flight at once when the server offers `PIPELINING`
    /// (default 64).
    pub pipeline_window: usize,
    /// Size limits on replies.
    pub limits: Limits,
    /// Only for [`Connection::new`](crate::Connection::new): the stream you pass
    /// is already encrypted (an SSH channel, a TLS stream you set up yourself),
    /// so credentials may be sent over it. The connect helpers ignore it.
    pub encrypted: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_name: None,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            allow_plaintext_auth: false,
            pipeline_window: Config::default().pipeline_window,
            limits: Limits::default(),
            encrypted: false,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::server_name`].
    pub fn server_name(mut self, name: impl Into<String>) -> Options {
        self.server_name = Some(name.into());
        self
    }

    /// Sets [`Options::tls`].
    pub fn tls(mut self, tls: TlsOptions) -> Options {
        self.tls = tls;
        self
    }

    /// Sets [`Options::timeouts`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Sets [`Options::allow_plaintext_auth`].
    pub fn allow_plaintext_auth(mut self, allow: bool) -> Options {
        self.allow_plaintext_auth = allow;
        self
    }

    /// Sets [`Options::pipeline_window`] (at least 1).
    pub fn pipeline_window(mut self, window: usize) -> Options {
        self.pipeline_window = window.max(1);
        self
    }

    /// Sets [`Options::limits`].
    pub fn limits(mut self, limits: Limits) -> Options {
        self.limits = limits;
        self
    }

    /// Sets [`Options::encrypted`].
    pub fn encrypted(mut self, encrypted: bool) -> Options {
        self.encrypted = encrypted;
        self
    }

    /// The core's configuration for a connection that is (or is not) encrypted.
    pub(crate) fn config(&self, encrypted: bool) -> Config {
        let mut config = Config::default()
            .allow_plaintext_credentials(self.allow_plaintext_auth)
            .limits(self.limits)
            .pipeline_window(self.pipeline_window);
        config.encrypted = encrypted;
        config
    }

    /// The TLS server name: the override, else `host`.
    pub(crate) fn tls_server_name(&self, host: &str) -> Result<ServerName<'static>> {
        parse_server_name(self.server_name.as_deref().unwrap_or(host))
    }
}

/// A DNS name or IP address for certificate verification and SNI.
pub(crate) fn parse_server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid TLS server name {name:?}: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o = Options::new();
        assert_eq!(o.timeouts, Timeouts::default());
        assert_eq!(o.timeouts.read, Some(Duration::from_secs(60)));
        assert_eq!(o.timeouts.connect, Some(Duration::from_secs(30)));
        assert!(!o.allow_plaintext_auth);
        let c = o.config(false);
        assert!(!c.encrypted);
        assert!(!c.allow_plaintext_credentials);
        assert_eq!(c.pipeline_window, 64);
        assert!(
            o.allow_plaintext_auth(true)
                .config(true)
                .allow_plaintext_credentials
        );
    }

    #[test]
    fn root_pem_must_hold_a_certificate() {
        assert!(TlsOptions::new().add_root_pem(b"nothing here").is_err());
        let pem = &test_support::pki::TestPki::shared().ca_pem;
        let tls = TlsOptions::new()
            .webpki_roots(false)
            .add_root_pem(pem)
            .expect("valid PEM");
        assert!(tls.client_config().is_ok());
    }

    #[test]
    fn server_name_override_and_ip_addresses() {
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
