//! Connection options: TLS trust, time limits and what the core may do.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pop3_proto::{Config, Limits};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{Error, Result};

/// Time limits for each I/O step; `None` waits for ever.
///
/// `read` and `write` apply to every single read or write (and flush), not to a
/// whole command: a long message keeps coming as long as each read makes
/// progress within the limit.
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
    /// No limits at all: every step may wait for ever.
    pub const fn none() -> Timeouts {
        Timeouts {
            connect: None,
            tls_handshake: None,
            read: None,
            write: None,
        }
    }
}

/// How to connect and what the protocol core may do. Built with chained setters:
///
/// ```
/// use std::time::Duration;
/// use pop3_smol::{Options, Timeouts};
///
/// let options = Options::new()
///     .server_name("mail.example.com")
///     .timeouts(Timeouts { read: Some(Duration::from_secs(10)), ..Timeouts::default() });
/// assert!(!options.allow_plaintext_auth);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The name to verify the server certificate against (and to send as SNI);
    /// defaults to the host passed to the connect function.
    pub server_name: Option<String>,
    /// Certificate trust and client certificate.
    pub tls: TlsOptions,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Allow sending credentials over an unencrypted connection (default
    /// `false`: such logins fail with [`pop3_proto::UsageError::PlaintextCredentials`]
    /// and nothing is sent).
    pub allow_plaintext_auth: bool,
    /// For [`Connection::new`](crate::Connection::new): the stream is already
    /// encrypted (for example a TLS stream set up by the caller, or an SSH
    /// channel). The connect functions set this themselves.
    pub encrypted: bool,
    /// Most commands in flight when the server offers `PIPELINING` (default 64).
    pub pipeline_window: usize,
    /// Size limits on what the server may send.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_name: None,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            allow_plaintext_auth: false,
            encrypted: false,
            pipeline_window: Config::default().pipeline_window,
            limits: Limits::default(),
        }
    }
}

impl Options {
    /// The defaults: verify against the web PKI roots, default time limits, no
    /// credentials in plaintext.
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

    /// Sets [`Options::allow_plaintext_auth`].
    #[must_use]
    pub fn allow_plaintext_auth(mut self, allow: bool) -> Options {
        self.allow_plaintext_auth = allow;
        self
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

    /// The core configuration for a connection that is (or is not) encrypted.
    pub(crate) fn config(&self, encrypted: bool) -> Config {
        let config = if encrypted {
            Config::encrypted()
        } else {
            Config::default()
        };
        config
            .allow_plaintext_credentials(self.allow_plaintext_auth)
            .pipeline_window(self.pipeline_window)
            .limits(self.limits)
    }

    /// The server name to verify: the override, or `host`.
    pub(crate) fn tls_server_name(&self, host: &str) -> Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        server_name(name)
    }
}

/// Parses a DNS name or IP address for certificate verification.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))
}

/// Which servers to trust, and an optional client certificate.
///
/// Certificate verification is always on; there is no way to turn it off.
/// By default the Mozilla roots of `webpki-roots` are trusted; more roots can be
/// added (for a private CA), or an expert can pass a complete rustls
/// [`ClientConfig`] with [`TlsOptions::rustls_config`].
#[derive(Clone)]
pub struct TlsOptions {
    webpki_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    client_auth: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    config: Option<Arc<ClientConfig>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            webpki_roots: true,
            extra_roots: Vec::new(),
            client_auth: None,
            config: None,
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("webpki_roots", &self.webpki_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_cert", &self.client_auth.is_some())
            .field("rustls_config", &self.config.is_some())
            .finish()
    }
}

fn invalid_pem(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidData, error))
}

impl TlsOptions {
    /// Trust the `webpki-roots` (Mozilla) roots only.
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Whether to trust the `webpki-roots` roots (default `true`). Turn them off
    /// to trust only the roots added with the `add_root_*` methods.
    #[must_use]
    pub fn webpki_roots(mut self, trust: bool) -> TlsOptions {
        self.webpki_roots = trust;
        self
    }

    /// Also trusts every certificate in a PEM file.
    ///
    /// Fails with [`Error::Io`] if the file cannot be read or holds no certificate.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsOptions> {
        let pem = std::fs::read(path).map_err(Error::Io)?;
        self.add_root_pem(&pem)
    }

    /// Also trusts every certificate in PEM text.
    ///
    /// Fails with [`Error::Io`] (kind `InvalidData`) if the text holds no
    /// certificate or a malformed one.
    pub fn add_root_pem(mut self, pem: impl AsRef<[u8]>) -> Result<TlsOptions> {
        let mut found = false;
        for cert in CertificateDer::pem_slice_iter(pem.as_ref()) {
            self.extra_roots.push(cert.map_err(invalid_pem)?);
            found = true;
        }
        if !found {
            return Err(invalid_pem("no certificate found in PEM"));
        }
        Ok(self)
    }

    /// Also trusts a DER-encoded certificate.
    #[must_use]
    pub fn add_root_der(mut self, cert: CertificateDer<'static>) -> TlsOptions {
        self.extra_roots.push(cert);
        self
    }

    /// Presents a client certificate: the chain (leaf first) and its private
    /// key (PKCS#8, PKCS#1 or SEC1), both PEM.
    pub fn client_cert(mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsOptions> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid_pem)?;
        if chain.is_empty() {
            return Err(invalid_pem(
                "no certificate found in client certificate PEM",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(invalid_pem)?;
        self.client_auth = Some(Arc::new((chain, key)));
        Ok(self)
    }

    /// Uses this rustls configuration as it is; the other settings are then
    /// ignored.
    #[must_use]
    pub fn rustls_config(mut self, config: Arc<ClientConfig>) -> TlsOptions {
        self.config = Some(config);
        self
    }

    /// Builds the rustls configuration: the `ring` provider, safe default
    /// protocol versions, the chosen roots, SNI on.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let mut roots = RootCertStore::empty();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for cert in &self.extra_roots {
            roots.add(cert.clone())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.client_auth {
            Some(auth) => builder.with_client_auth_cert(auth.0.clone(), auth.1.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let t = Timeouts::default();
        assert_eq!(t.connect, Some(Duration::from_secs(30)));
        assert_eq!(t.tls_handshake, Some(Duration::from_secs(30)));
        assert_eq!(t.read, Some(Duration::from_secs(60)));
        assert_eq!(t.write, Some(Duration::from_secs(60)));
        let o = Options::new();
        assert!(!o.allow_plaintext_auth && !o.encrypted);
        let c = o.config(false);
        assert!(!c.allow_plaintext_credentials && !c.encrypted);
        assert!(o.config(true).encrypted);
        assert_eq!(Options::new().pipeline_window(0).pipeline_window, 1);
    }

    #[test]
    fn builds_a_config_with_webpki_roots() {
        assert!(TlsOptions::new().client_config().is_ok());
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(matches!(
            TlsOptions::new().add_root_pem(b"hello"),
            Err(Error::Io(_))
        ));
        assert!(TlsOptions::new()
            .add_root_pem_file("/nonexistent/ca.pem")
            .is_err());
    }

    #[test]
    fn extra_roots_and_client_cert_are_used() {
        let pki = test_support::TestPki::shared();
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
    fn server_names() {
        assert!(server_name("mail.example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("not a name").is_err());
    }
}
