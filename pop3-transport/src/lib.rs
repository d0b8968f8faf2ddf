//! What the POP3 transports share: the one [`Connection`] every Rust runtime
//! drives, its configuration, TLS setup and error type.
//!
//! `pop3-blocking`, `pop3-tokio` and `pop3-smol` each move bytes with their own
//! runtime, but run the same code above that:
//!
//! - [`Connection`] and [`MessageReader`]: every POP3 operation, written once
//!   over two small traits, [`runtime::IoStream`] (a byte stream) and
//!   [`runtime::Runtime`] (a timer, and how to write to the runtime's
//!   writers). Each runtime is one file in [`runtime`];
//! - [`Options`], [`TlsOptions`] and [`Timeouts`]: how to connect, which
//!   certificates to trust (the system's roots, [`TrustRoots`], certificates
//!   trusted by their exact bytes, [`Sha256Fingerprint`] pins; building the
//!   rustls [`ClientConfig`] with the [`crypto_provider`]), the time limits, and
//!   the [`pop3_proto::Config`] of the core;
//! - [`CertificateInfo`] and [`PeerCertificates`]: what a server's
//!   certificate says, recorded even when it is not trusted;
//! - [`Error`], [`Phase`] and [`Result`], with the conversions to and from
//!   [`std::io::Error`], [`Error::kind`] for what kind of failure it is
//!   ([`ErrorKind`]: credentials refused, temporarily unavailable, network,
//!   TLS, ...), and [`Error::tls_diagnosis`] for what a TLS failure comes to;
//! - the SOCKS5 tunnel of [`Options::proxy`] ([`socks5`]) and the implicit
//!   TLS handshake, which every transport's connect functions run after their
//!   TCP connection;
//! - small helpers such as [`scram_nonce`] and [`parse_server_name`].
//!
//! Every protocol decision is the core's ([`pop3_proto`]); a connection only
//! pumps it. The transports re-export these items, so users never need to
//! name this crate:
//!
//! ```
//! use pop3_transport::{Options, Timeouts};
//!
//! let options = Options::new().timeouts(Timeouts::none());
//! assert_eq!(options.timeouts.read, None);
//! ```
//!
//! # Errors by kind
//!
//! A program decides what to do about a failure from [`Error::kind`], not
//! from variants and response codes: a refused login is
//! [`ErrorKind::AuthenticationRefused`] whether or not the server sent
//! `[AUTH]` (the core knows which replies answered a login step), a busy
//! mailbox [`ErrorKind::TemporarilyUnavailable`].
//!
//! ```
//! use pop3_transport::{Error, ErrorKind};
//!
//! fn explain(error: &Error) -> String {
//!     match error.kind() {
//!         ErrorKind::AuthenticationRefused => format!("wrong user name or password ({error})"),
//!         ErrorKind::Tls => format!("the connection could not be secured: {error}"),
//!         kind if kind.is_transient() => format!("not now, trying again later: {error}"),
//!         _ => error.to_string(),
//!     }
//! }
//!
//! # let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//! let offline = Error::Io(refused);
//! assert_eq!(offline.kind(), ErrorKind::Network);
//! assert!(explain(&offline).starts_with("not now"));
//! ```
//!
//! [`ClientConfig`]: rustls::ClientConfig

#![forbid(unsafe_code)]

mod certificate;
#[doc(hidden)]
pub mod connect;
mod connection;
#[cfg(test)]
mod connection_tests;
mod error;
mod maybe_tls;
mod options;
mod reader;
pub mod runtime;
pub mod socks5;
#[cfg(test)]
mod test_certificates;
mod trust;

use std::io;

pub use certificate::{channel_binding, CertificateInfo, FingerprintError, Sha256Fingerprint};
pub use connection::{BulkDeletion, BulkRetrieval, Connection};
pub use error::{
    Error, ErrorKind, IoContext, IoSubject, Phase, RandomFailure, Result, TlsDiagnosis, UtcTime,
};
pub use maybe_tls::{MaybeTls, TlsStream};
pub use options::{crypto_provider, parse_server_name, Options, Timeouts, TlsOptions};
pub use reader::MessageReader;
pub use trust::{CertFileError, FingerprintMismatch, PeerCertificates, TrustRoots};

/// A fresh SCRAM client nonce: 24 bytes from the operating system's secure
/// random generator, base64-encoded (the core's
/// [`Credentials::random_scram_nonce`](pop3_proto::Credentials::random_scram_nonce),
/// which every driver uses).
///
/// Fails with [`Error::Io`] holding a [`RandomFailure`] (kind
/// [`ErrorKind::Local`], not a network error to retry) if the random
/// generator fails.
pub fn scram_nonce() -> Result<String> {
    pop3_proto::Credentials::random_scram_nonce().map_err(|error| {
        Error::Io(io::Error::other(RandomFailure {
            reason: error.to_string(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    #[test]
    fn scram_nonces_are_fresh_base64() {
        let (a, b) = (scram_nonce(), scram_nonce());
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("the random generator failed");
        };
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(BASE64.decode(&a).is_ok_and(|bytes| bytes.len() == 24));
    }
}

/// This crate's README's examples, compiled (and run where they need no
/// server) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
