//! Deciding whether to trust a server's certificate.
//!
//! Every connection goes through one [`ServerCertVerifier`] built from the
//! [`TlsOptions`](crate::TlsOptions):
//!
//! - **pinned** ([`TlsOptions::pin_sha256`](crate::TlsOptions::pin_sha256)):
//!   the server's certificate is trusted when its SHA-256 fingerprint is one of
//!   the pinned ones, and refused otherwise; roots, host names and dates play
//!   no part (see the method's documentation for why).
//! - **roots**: rustls' WebPKI verifier over the chosen [`TrustRoots`] plus
//!   those certificates added with `add_root_*` that are CAs (see
//!   `may_issue`: CA:TRUE, allowed to sign certificates, and not a
//!   self-signed certificate naming a host, by a subject alternative name
//!   or, without a key usage extension, by a common name that reads as a
//!   host name). When it refuses a certificate
//!   that is byte for byte one of the added certificates (CA or not), that
//!   certificate is checked on its own instead: validity period, extended key
//!   usage and host name still apply, only the chain rules (a CA certificate
//!   may not serve as a server's own certificate, and the like) are waived,
//!   because the caller named this exact certificate. An added certificate
//!   that is no CA therefore vouches for itself only, never for a
//!   certificate it signed.
//!
//! Signatures in the handshake are always verified with the crypto provider's
//! algorithms, whatever the mode.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::certificate::{common_names, Sha256Fingerprint};
use crate::{Error, Result};

/// Which root certificates a connection trusts, besides the certificates
/// added with the `add_root_*` methods of
/// [`TlsOptions`](crate::TlsOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TrustRoots {
    /// The operating system's trust store (the default). On Linux that is
    /// the distribution's bundle (`/etc/ssl/certs` and the like), or the files
    /// named by the `SSL_CERT_FILE` and `SSL_CERT_DIR` environment variables
    /// when either is set. When the store yields no certificate at all, the
    /// Mozilla roots are used instead, so a bare container still reaches
    /// public servers; but a `SSL_CERT_FILE` that is missing, unreadable or
    /// without a usable certificate is an error ([`CertFileError`]), never a
    /// reason to fall back.
    #[default]
    System,
    /// The Mozilla roots compiled into the program (`webpki-roots`), whatever
    /// the system trusts.
    Mozilla,
    /// No roots at all: only the certificates added with `add_root_*`.
    OnlyGiven,
}

impl TrustRoots {
    /// The root store these roots make, as a connection builds it: for
    /// [`TrustRoots::System`], the operating system's store (with
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`, and the Mozilla roots when the
    /// store is empty). For another TLS client of the same program (an
    /// OAuth token endpoint) that must trust what the POP3 connections
    /// trust, such as a company's own root.
    ///
    /// Fails when `SSL_CERT_FILE` names a file without a usable
    /// certificate ([`CertFileError`] inside [`Error::Io`]).
    pub fn root_store(self) -> Result<RootCertStore> {
        root_store(self, system_roots)
    }
}

/// A place where a connection records the certificate chain the server
/// presented, before it is verified, so it can be shown even after a failed
/// handshake (as `pop3 serverinfo` does).
///
/// Clones share one slot: keep one, pass another to
/// [`TlsOptions::capture_peer_certificates`](crate::TlsOptions::capture_peer_certificates).
/// Each handshake replaces what the previous one recorded.
///
/// ```
/// use pop3_transport::{PeerCertificates, TlsOptions};
///
/// let presented = PeerCertificates::new();
/// let tls = TlsOptions::new().capture_peer_certificates(&presented);
/// // ... connect with `tls`; whether it fails or not:
/// if let Some(chain) = presented.get() {
///     println!("the server sent {} certificate(s)", chain.len());
/// }
/// ```
#[derive(Clone, Default)]
pub struct PeerCertificates {
    slot: Arc<Mutex<Option<Vec<CertificateDer<'static>>>>>,
}

impl PeerCertificates {
    /// An empty slot.
    pub fn new() -> PeerCertificates {
        PeerCertificates::default()
    }

    /// The chain recorded by the latest handshake, server certificate first;
    /// `None` before any server sent a certificate.
    pub fn get(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Like [`PeerCertificates::get`], and empties the slot.
    pub fn take(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The server's own certificate from the latest handshake.
    pub fn end_entity(&self) -> Option<CertificateDer<'static>> {
        self.get().and_then(|chain| chain.into_iter().next())
    }

    fn record(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|cert| cert.clone().into_owned())
            .collect();
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(chain);
    }
}

impl fmt::Debug for PeerCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Vec::len);
        f.debug_struct("PeerCertificates")
            .field("recorded", &count)
            .finish()
    }
}

/// `SSL_CERT_FILE` names a file that cannot be read or holds no usable
/// certificate (with [`TrustRoots::System`]). It reaches the caller as
/// `Error::Io(e)` of kind `InvalidData`, where
/// `e.get_ref().and_then(|e| e.downcast_ref::<CertFileError>())` finds it.
/// The `connect_*` functions (STARTTLS included) build the TLS
/// configuration before connecting, so from them it comes with nothing
/// connected; [`Connection::start_tls`](crate::Connection::start_tls) on an
/// open plaintext connection returns it before sending `STLS`. There is
/// no fallback to other roots: the variable says which roots to trust, and
/// a mistake in it must not widen them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFileError {
    /// The file `SSL_CERT_FILE` named.
    pub path: std::path::PathBuf,
    /// Why it cannot be used.
    pub reason: String,
}

impl fmt::Display for CertFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SSL_CERT_FILE={}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CertFileError {}

/// The certificate error of a pinned connection whose server presented
/// another certificate. It reaches the caller as
/// `Error::Tls(rustls::Error::InvalidCertificate(CertificateError::Other(e)))`,
/// where `e.0.downcast_ref::<FingerprintMismatch>()` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintMismatch {
    /// The fingerprint of the certificate the server presented.
    pub presented: Sha256Fingerprint,
    /// The fingerprints that were pinned.
    pub pinned: Vec<Sha256Fingerprint>,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's certificate has SHA-256 fingerprint {}, which is not pinned",
            self.presented
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// The rustls verifier for these settings; see the [module docs](self).
pub(crate) fn verifier(
    roots: TrustRoots,
    given: &[CertificateDer<'static>],
    pins: &[Sha256Fingerprint],
    capture: Option<&PeerCertificates>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let mode = if pins.is_empty() {
        Mode::Roots {
            chain: chain_verifier(roots, given, provider)?,
            given: given.to_vec(),
        }
    } else {
        Mode::Pinned(pins.to_vec())
    };
    Ok(Arc::new(ServerTrust {
        mode,
        algorithms: provider.signature_verification_algorithms,
        capture: capture.cloned(),
    }))
}

/// rustls' WebPKI verifier over the chosen roots and the given certificates;
/// `None` when that makes no root at all.
fn chain_verifier(
    roots: TrustRoots,
    given: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<WebPkiServerVerifier>>> {
    let mut store = root_store(roots, system_roots)?;
    for cert in given.iter().filter(|cert| may_issue(cert)) {
        store.add(cert.clone())?;
    }
    if store.is_empty() {
        return Ok(None);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(provider))
        .build()
        .map(Some)
        .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))
}

/// Whether a certificate the caller gave may vouch for others (be a trust
/// anchor), rather than only for itself. A trust anchor's own extensions are
/// not checked by WebPKI, so without this a server's self-signed
/// certificate shared in a CA file would let that server's key holder sign
/// certificates for any other name. It may issue only when it says it is a
/// CA: `basicConstraints` with CA:TRUE and a key usage (if it has one) that
/// allows signing certificates. A self-signed certificate must also name no
/// host (see [`names_a_host`]): `openssl req -x509` sets CA:TRUE on every
/// certificate it makes, the server's own included, so CA:TRUE alone does
/// not make one an authority. A certificate that cannot be parsed is left
/// to the root store to refuse.
fn may_issue(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return true;
    };
    let is_ca = matches!(parsed.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let key_usage = parsed.key_usage();
    let signs_certificates = match &key_usage {
        Ok(Some(usage)) => usage.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    let self_issued = parsed.subject().as_raw() == parsed.issuer().as_raw();
    let has_key_usage = !matches!(key_usage, Ok(None));
    is_ca && signs_certificates && !(self_issued && names_a_host(&parsed, has_key_usage))
}

/// Whether a self-signed certificate is a server's own rather than an
/// authority's: it has a DNS name or IP address among its subject
/// alternative names (`openssl req -x509 -addext subjectAltName=...`), or,
/// without a key usage extension (which an authority made on purpose
/// carries, with keyCertSign), a common name that reads as a host name
/// (`openssl req -x509 -subj /CN=mail.example.org`) rather than as an
/// authority's name ("Example Root CA").
fn names_a_host(cert: &X509Certificate<'_>, has_key_usage: bool) -> bool {
    use x509_parser::extensions::GeneralName;
    let san_names_host = match cert.subject_alternative_name() {
        Ok(Some(names)) => names
            .value
            .general_names
            .iter()
            .any(|name| matches!(name, GeneralName::DNSName(_) | GeneralName::IPAddress(_))),
        Ok(None) => false,
        Err(_) => true,
    };
    san_names_host || (!has_key_usage && common_names(cert).iter().any(|cn| looks_like_host(cn)))
}

/// A name made of host-name characters only (letters, digits, `-`, `_`,
/// `*` of a wildcard, and dots) that has a dot or is `localhost`, or an IP
/// address.
fn looks_like_host(name: &str) -> bool {
    let host_characters = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'));
    let dotted_or_local = name.contains('.') || name.eq_ignore_ascii_case("localhost");
    (host_characters && dotted_or_local) || name.parse::<std::net::IpAddr>().is_ok()
}

/// The chosen roots; `system` gives the operating system's store. A store
/// without any usable certificate counts as no store, unless
/// `SSL_CERT_FILE` named it (then `system` fails instead).
fn root_store(
    roots: TrustRoots,
    system: impl FnOnce() -> Result<RootCertStore>,
) -> Result<RootCertStore> {
    let mozilla = || webpki_roots::TLS_SERVER_ROOTS.iter().cloned();
    Ok(match roots {
        TrustRoots::System => {
            let mut store = system()?;
            if store.is_empty() {
                store.extend(mozilla());
            }
            store
        }
        TrustRoots::Mozilla => {
            let mut store = RootCertStore::empty();
            store.extend(mozilla());
            store
        }
        TrustRoots::OnlyGiven => RootCertStore::empty(),
    })
}

/// The operating system's roots. Reading and parsing them costs milliseconds
/// (tens in a debug build), too much for every connection, so they are read
/// once per process, and again whenever `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// has changed. Unreadable or malformed entries are skipped, as other
/// programs using the store do; but a `SSL_CERT_FILE` that cannot be read
/// or holds no certificate is an error ([`cert_file_roots`]).
fn system_roots() -> Result<RootCertStore> {
    type Cached = (Option<OsString>, Option<OsString>, RootCertStore);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let file = std::env::var_os("SSL_CERT_FILE");
    let dir = std::env::var_os("SSL_CERT_DIR");
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((cached_file, cached_dir, store)) = cache.as_ref() {
        if *cached_file == file && *cached_dir == dir {
            return Ok(store.clone());
        }
    }
    if let Some(path) = file.as_deref().filter(|path| !path.is_empty()) {
        cert_file_roots(Path::new(path))?;
    }
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    *cache = Some((file, dir, store.clone()));
    Ok(store)
}

/// The certificates of the file `SSL_CERT_FILE` names. A file that is
/// missing, unreadable or without a usable certificate is an error: the
/// variable is how an administrator says "trust these and nothing else",
/// and falling back to the built-in roots would trust what they meant to
/// exclude.
fn cert_file_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let refuse = |reason: String| {
        let error = CertFileError {
            path: path.to_owned(),
            reason,
        };
        Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
    };
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(std::result::Result::ok)
        .collect();
    let mut store = RootCertStore::empty();
    let (usable, _) = store.add_parsable_certificates(certs.iter().cloned());
    if usable == 0 {
        return Err(refuse("no usable certificate in the file".to_owned()));
    }
    Ok(certs)
}

#[derive(Debug)]
enum Mode {
    Pinned(Vec<Sha256Fingerprint>),
    Roots {
        chain: Option<Arc<WebPkiServerVerifier>>,
        given: Vec<CertificateDer<'static>>,
    },
}

#[derive(Debug)]
struct ServerTrust {
    mode: Mode,
    algorithms: WebPkiSupportedAlgorithms,
    capture: Option<PeerCertificates>,
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(capture) = &self.capture {
            capture.record(end_entity, intermediates);
        }
        match &self.mode {
            Mode::Pinned(pins) => {
                let presented = Sha256Fingerprint::of(end_entity);
                if pins.contains(&presented) {
                    return Ok(ServerCertVerified::assertion());
                }
                let mismatch = FingerprintMismatch {
                    presented,
                    pinned: pins.clone(),
                };
                Err(CertificateError::Other(OtherError(Arc::new(mismatch))).into())
            }
            Mode::Roots { chain, given } => {
                let verdict = match chain {
                    Some(chain) => chain.verify_server_cert(
                        end_entity,
                        intermediates,
                        server_name,
                        ocsp_response,
                        now,
                    ),
                    None => Err(CertificateError::UnknownIssuer.into()),
                };
                match verdict {
                    Err(_)
                        if given
                            .iter()
                            .any(|cert| cert.as_ref() == end_entity.as_ref()) =>
                    {
                        verify_given(end_entity, server_name, now)?;
                        Ok(ServerCertVerified::assertion())
                    }
                    verdict => verdict,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        match &self.mode {
            Mode::Roots {
                chain: Some(chain), ..
            } => chain.root_hint_subjects(),
            _ => None,
        }
    }
}

/// Checks a certificate the caller trusts by its exact bytes: everything a
/// server certificate must satisfy except how it chains to a root.
fn verify_given(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    // webpki's own parse refuses bad encodings and unknown critical
    // extensions, as it would for any server certificate.
    let parsed = ParsedCertificate::try_from(end_entity)?;
    let bad_encoding = || rustls::Error::from(CertificateError::BadEncoding);
    let (_, cert) = X509Certificate::from_der(end_entity).map_err(|_| bad_encoding())?;

    let now_seconds = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now_seconds < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix_time(not_before),
        }
        .into());
    }
    if now_seconds > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix_time(not_after),
        }
        .into());
    }

    // As webpki: an extended key usage, when present, must allow serving.
    match cert.extended_key_usage() {
        Ok(Some(usage)) if !usage.value.server_auth => {
            return Err(CertificateError::InvalidPurpose.into())
        }
        Ok(_) => {}
        Err(_) => return Err(bad_encoding()),
    }

    match cert.subject_alternative_name() {
        Ok(Some(_)) => verify_server_name(&parsed, server_name),
        Ok(None) => verify_common_name(&cert, server_name),
        Err(_) => Err(bad_encoding()),
    }
}

/// The host-name rule for a certificate without subject alternative names
/// (what `openssl req -x509 -subj /CN=host` makes): a DNS name must equal a
/// common name, ignoring ASCII case and a final dot, as OpenSSL and GnuTLS
/// check such certificates. No wildcards, and IP addresses never match a
/// common name.
fn verify_common_name(
    cert: &X509Certificate<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let names = common_names(cert);
    if let ServerName::DnsName(dns) = server_name {
        let wanted = dns.as_ref().trim_end_matches('.');
        if names
            .iter()
            .any(|cn| cn.trim_end_matches('.').eq_ignore_ascii_case(wanted))
        {
            return Ok(());
        }
    }
    Err(CertificateError::NotValidForNameContext {
        expected: server_name.to_owned(),
        presented: names,
    }
    .into())
}

fn unix_time(seconds: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_owned()).unwrap_or(ServerName::IpAddress(
            rustls::pki_types::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
        ))
    }

    fn provider() -> Arc<CryptoProvider> {
        crate::crypto_provider()
    }

    fn check(
        verifier: &Arc<dyn ServerCertVerifier>,
        cert: &CertificateDer<'_>,
        host: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        verifier.verify_server_cert(cert, &[], &name(host), &[], now)
    }

    #[test]
    fn the_ca_signed_certificate_passes_and_others_fail() {
        let pki = crate::test_certificates::shared();
        let verifier = verifier(
            TrustRoots::OnlyGiven,
            std::slice::from_ref(&pki.ca_der),
            &[],
            None,
            &provider(),
        );
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        assert!(check(&verifier, &pki.server.cert_der, "localhost").is_ok());
        assert!(check(&verifier, &pki.server.cert_der, "127.0.0.1").is_ok());
        assert!(check(&verifier, &pki.self_signed.cert_der, "localhost").is_err());
        assert!(check(&verifier, &pki.unknown_ca.cert_der, "localhost").is_err());
        assert!(check(&verifier, &pki.wrong_host.cert_der, "localhost").is_err());
    }

    #[test]
    fn a_given_leaf_is_trusted_but_still_checked() {
        let pki = crate::test_certificates::shared();
        let given = [
            pki.self_signed.cert_der.clone(),
            pki.expired.cert_der.clone(),
        ];
        let verifier = verifier(TrustRoots::OnlyGiven, &given, &[], None, &provider());
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        assert!(check(&verifier, &pki.self_signed.cert_der, "localhost").is_ok());
        assert!(matches!(
            check(&verifier, &pki.self_signed.cert_der, "other.example"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            ))
        ));
        assert!(matches!(
            check(&verifier, &pki.expired.cert_der, "localhost"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ));
        // The given certificates are no authority for others.
        assert!(check(&verifier, &pki.server.cert_der, "localhost").is_err());
    }

    #[test]
    fn pins_decide_alone_and_the_chain_is_recorded() {
        let pki = crate::test_certificates::shared();
        let capture = PeerCertificates::new();
        let pin = Sha256Fingerprint::of(&pki.self_signed.cert_der);
        let verifier = verifier(
            TrustRoots::Mozilla,
            std::slice::from_ref(&pki.ca_der),
            &[pin],
            Some(&capture),
            &provider(),
        );
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        assert!(capture.get().is_none());
        assert!(check(&verifier, &pki.self_signed.cert_der, "any.example").is_ok());
        let refused = check(&verifier, &pki.server.cert_der, "localhost");
        let Err(rustls::Error::InvalidCertificate(CertificateError::Other(other))) = refused else {
            panic!("a CA-signed certificate must not pass a pin: {refused:?}");
        };
        let mismatch = other.0.downcast_ref::<FingerprintMismatch>();
        assert_eq!(
            mismatch.map(|m| m.presented),
            Some(Sha256Fingerprint::of(&pki.server.cert_der))
        );
        assert_eq!(capture.end_entity().as_ref(), Some(&pki.server.cert_der));
        assert!(capture.take().is_some() && capture.get().is_none());
    }

    #[test]
    fn nothing_to_trust_means_unknown_issuer() {
        let pki = crate::test_certificates::shared();
        let verifier = verifier(TrustRoots::OnlyGiven, &[], &[], None, &provider());
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        assert!(matches!(
            check(&verifier, &pki.server.cert_der, "localhost"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
    }

    #[test]
    fn the_system_store_is_used_and_mozilla_stands_in_for_an_empty_one() {
        let pki = crate::test_certificates::shared();
        let mozilla = webpki_roots::TLS_SERVER_ROOTS.len();
        let only_test_ca = || {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates([pki.ca_der.clone()]);
            store
        };
        let store = |roots, system: &dyn Fn() -> RootCertStore| {
            let store = root_store(roots, || Ok(system()));
            let Ok(store) = store else {
                panic!("root store: {store:?}");
            };
            store
        };
        assert_eq!(store(TrustRoots::System, &only_test_ca).len(), 1);
        assert_eq!(
            store(TrustRoots::System, &RootCertStore::empty).len(),
            mozilla
        );
        let garbage = store(TrustRoots::System, &|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates([CertificateDer::from(b"junk".to_vec())]);
            store
        });
        assert_eq!(garbage.len(), mozilla);
        assert_eq!(store(TrustRoots::Mozilla, &only_test_ca).len(), mozilla);
        assert!(store(TrustRoots::OnlyGiven, &only_test_ca).is_empty());
    }

    #[test]
    fn ssl_cert_file_must_name_a_file_with_certificates() {
        let dir = std::env::temp_dir().join(format!("pop3-ssl-cert-file-{}", std::process::id()));
        let made = std::fs::create_dir_all(&dir);
        assert!(made.is_ok(), "{made:?}");
        let refused = |path: &Path, why: &str| {
            let result = cert_file_roots(path);
            let Err(Error::Io(error)) = &result else {
                panic!("{why}: {result:?}");
            };
            let shown = error.to_string();
            assert!(shown.starts_with("SSL_CERT_FILE="), "{why}: {shown}");
        };
        refused(&dir.join("missing.pem"), "a missing file");
        let empty = dir.join("empty.pem");
        let written = std::fs::write(&empty, b"");
        assert!(written.is_ok(), "{written:?}");
        refused(&empty, "an empty file");
        let junk = dir.join("junk.pem");
        let written = std::fs::write(
            &junk,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(written.is_ok(), "{written:?}");
        refused(&junk, "a file without a usable certificate");
        refused(&dir, "a directory");
        let good = dir.join("ca.pem");
        let written = std::fs::write(&good, &crate::test_certificates::shared().ca_pem);
        assert!(written.is_ok(), "{written:?}");
        assert!(matches!(cert_file_roots(&good).as_deref(), Ok([_])));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_certificate_without_alternative_names_is_checked_by_common_name() {
        let cert = &crate::test_certificates::shared().common_name_only.cert_der;
        let verifier = verifier(
            TrustRoots::OnlyGiven,
            std::slice::from_ref(cert),
            &[],
            None,
            &provider(),
        );
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        let now = UnixTime::now();
        let at = |host: &str| verifier.verify_server_cert(cert, &[], &name(host), &[], now);
        assert!(at("localhost").is_ok());
        assert!(at("LocalHost").is_ok());
        assert!(at("localhost.").is_ok());
        for host in ["127.0.0.1", "mail.localhost", "localhost.example"] {
            let refused = at(host);
            assert!(
                matches!(
                    &refused,
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForNameContext { presented, .. }
                    )) if presented == &["localhost".to_owned()]
                ),
                "{host}: {refused:?}"
            );
        }
    }

    /// A key pair, and certificate parameters for `names` (a CN only when
    /// `names` is empty, as a CA has) with `is_ca`.
    fn params(names: &[&str], is_ca: rcgen::IsCa) -> (rcgen::KeyPair, rcgen::CertificateParams) {
        let key = rcgen::KeyPair::generate();
        let Ok(key) = key else {
            panic!("rcgen: {key:?}");
        };
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names);
        let Ok(mut params) = params else {
            panic!("rcgen: {params:?}");
        };
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test certificate");
        params.is_ca = is_ca;
        (key, params)
    }

    /// A self-signed certificate and its key.
    fn self_signed(
        names: &[&str],
        is_ca: rcgen::IsCa,
        usages: Vec<rcgen::KeyUsagePurpose>,
    ) -> (rcgen::KeyPair, rcgen::Certificate) {
        let (key, mut params) = params(names, is_ca);
        params.key_usages = usages;
        let Ok(cert) = params.self_signed(&key) else {
            panic!("rcgen could not sign");
        };
        (key, cert)
    }

    /// A server certificate for `name` signed by `issuer`.
    fn signed_by(
        name: &str,
        issuer: &(rcgen::KeyPair, rcgen::Certificate),
    ) -> CertificateDer<'static> {
        let (key, params) = params(&[name], rcgen::IsCa::NoCa);
        let Ok(cert) = params.signed_by(&key, &issuer.1, &issuer.0) else {
            panic!("rcgen could not sign");
        };
        cert.der().clone()
    }

    fn only_given(cert: &CertificateDer<'static>) -> Arc<dyn ServerCertVerifier> {
        let verifier = verifier(
            TrustRoots::OnlyGiven,
            std::slice::from_ref(cert),
            &[],
            None,
            &provider(),
        );
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        verifier
    }

    #[test]
    fn a_given_server_certificate_vouches_for_itself_only() {
        let now = UnixTime::now();
        let unconstrained = || rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // As `openssl req -x509 -addext subjectAltName=DNS:a.example` makes
        // it (CA:TRUE), without basicConstraints, and with CA:FALSE; and a
        // "CA" whose key usage does not allow signing certificates.
        let servers = [
            self_signed(&["a.example"], unconstrained(), Vec::new()),
            self_signed(&["a.example"], rcgen::IsCa::NoCa, Vec::new()),
            self_signed(&["a.example"], rcgen::IsCa::ExplicitNoCa, Vec::new()),
            self_signed(
                &[],
                unconstrained(),
                vec![rcgen::KeyUsagePurpose::DigitalSignature],
            ),
        ];
        for (i, server) in servers.iter().enumerate() {
            let own = server.1.der().clone();
            let verifier = only_given(&own);
            if i < 3 {
                let at = verifier.verify_server_cert(&own, &[], &name("a.example"), &[], now);
                assert!(at.is_ok(), "{i}: its own certificate: {at:?}");
            }
            // A certificate for another name signed with that key: refused.
            let forged = signed_by("b.example", server);
            let at = verifier.verify_server_cert(&forged, &[], &name("b.example"), &[], now);
            assert!(
                matches!(
                    at,
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer
                    ))
                ),
                "{i}: a certificate it signed must be refused: {at:?}"
            );
        }
    }

    /// A self-signed CA:TRUE certificate with the common name `cn`, no
    /// subject alternative name, and `usages`.
    fn self_signed_named(
        cn: &str,
        usages: Vec<rcgen::KeyUsagePurpose>,
    ) -> (rcgen::KeyPair, rcgen::Certificate) {
        let (key, mut params) =
            params(&[], rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = usages;
        let Ok(cert) = params.self_signed(&key) else {
            panic!("rcgen could not sign");
        };
        (key, cert)
    }

    #[test]
    fn a_given_certificate_naming_a_host_by_common_name_vouches_for_itself_only() {
        let now = UnixTime::now();
        // As `openssl req -x509 -subj /CN=mail.example.org` makes it:
        // CA:TRUE, no subject alternative name, no key usage.
        for host in ["mail.example.org", "localhost", "127.0.0.1"] {
            let server = self_signed_named(host, Vec::new());
            let own = server.1.der().clone();
            let verifier = only_given(&own);
            if host != "127.0.0.1" {
                let at = verifier.verify_server_cert(&own, &[], &name(host), &[], now);
                assert!(at.is_ok(), "{host}: its own certificate: {at:?}");
            }
            let forged = signed_by("b.example", &server);
            let at = verifier.verify_server_cert(&forged, &[], &name("b.example"), &[], now);
            assert!(
                matches!(
                    at,
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer
                    ))
                ),
                "{host}: a certificate it signed must be refused: {at:?}"
            );
        }
        // An authority's name, or a host-like name with keyCertSign: a CA.
        let authorities = [
            self_signed_named("Example Root CA", Vec::new()),
            self_signed_named("ca.example.org", vec![rcgen::KeyUsagePurpose::KeyCertSign]),
        ];
        for (i, authority) in authorities.iter().enumerate() {
            let verifier = only_given(authority.1.der());
            let leaf = signed_by("b.example", authority);
            let at = verifier.verify_server_cert(&leaf, &[], &name("b.example"), &[], now);
            assert!(at.is_ok(), "{i}: {at:?}");
        }
    }

    #[test]
    fn host_names_are_told_from_authority_names() {
        for host in [
            "mail.example.org",
            "LOCALHOST",
            "*.example.org",
            "::1",
            "10.0.0.1",
        ] {
            assert!(looks_like_host(host), "{host}");
        }
        for other in [
            "Example Root CA",
            "test certificate",
            "My-CA",
            "",
            "ca.example.org/x",
        ] {
            assert!(!looks_like_host(other), "{other}");
        }
    }

    #[test]
    fn a_given_ca_still_vouches_for_what_it_signs() {
        let now = UnixTime::now();
        let unconstrained = || rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // As `openssl req -x509 -subj "/CN=My CA"` makes it, and with the
        // key usages a CA carries.
        let authorities = [
            self_signed(&[], unconstrained(), Vec::new()),
            self_signed(
                &[],
                unconstrained(),
                vec![
                    rcgen::KeyUsagePurpose::KeyCertSign,
                    rcgen::KeyUsagePurpose::CrlSign,
                ],
            ),
        ];
        for (i, authority) in authorities.iter().enumerate() {
            let verifier = only_given(authority.1.der());
            let leaf = signed_by("b.example", authority);
            let at = verifier.verify_server_cert(&leaf, &[], &name("b.example"), &[], now);
            assert!(at.is_ok(), "{i}: {at:?}");
        }
    }

    #[test]
    fn a_given_certificate_must_still_be_meant_for_servers() {
        let key = rcgen::KeyPair::generate();
        let Ok(key) = key else {
            panic!("rcgen: {key:?}");
        };
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]);
        let Ok(mut params) = params else {
            panic!("rcgen: {params:?}");
        };
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let Ok(cert) = params.self_signed(&key) else {
            panic!("rcgen could not sign");
        };
        let der = cert.der().clone();
        let verifier = verifier(
            TrustRoots::OnlyGiven,
            std::slice::from_ref(&der),
            &[],
            None,
            &provider(),
        );
        let Ok(verifier) = verifier else {
            panic!("verifier: {verifier:?}");
        };
        assert!(matches!(
            check(&verifier, &der, "localhost"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose
            ))
        ));
    }
}
