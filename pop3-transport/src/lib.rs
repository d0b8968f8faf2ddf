//! What the POP3 transports share: configuration, TLS setup, the error type,
//! and the async connection logic; no runtime of its own.
//!
//! `pop3-blocking`, `pop3-tokio` and `pop3-smol` each move bytes with their own
//! runtime, but configure a connection the same way and fail the same way.
//! This crate holds that common part once:
//!
//! - [`Options`], [`TlsOptions`] and [`Timeouts`]: how to connect, which
//!   certificates to trust (building the rustls [`ClientConfig`] with the
//!   `ring` provider), the time limits, and the [`pop3_proto::Config`] of the
//!   core;
//! - [`Error`], [`Phase`] and [`Result`], with the conversions to and from
//!   [`std::io::Error`];
//! - small helpers such as [`scram_nonce`] and [`parse_server_name`];
//! - [`nonblocking`]: the async connection logic, written once for every
//!   runtime.
//!
//! The transports re-export these items, so users never need to name this
//! crate:
//!
//! ```
//! use pop3_transport::{Options, Timeouts};
//!
//! let options = Options::new().timeouts(Timeouts::none());
//! assert_eq!(options.timeouts.read, None);
//! ```
//!
//! [`ClientConfig`]: rustls::ClientConfig

#![forbid(unsafe_code)]

mod error;
pub mod nonblocking;
mod options;
pub mod socks5;

use std::io;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

pub use error::{Error, Phase, Result};
pub use options::{parse_server_name, Options, Timeouts, TlsOptions};

/// What the `async_api!` macro names; not a public interface.
#[doc(hidden)]
pub mod __private {
    pub use pop3_proto::sasl::Mechanism;
    pub use pop3_proto::{
        Capabilities, Client, Greeting, Language, ListEntry, MsgNum, Secret, Stat, UidlEntry,
    };
    pub use rustls::ClientConnection;
}

/// A fresh SCRAM client nonce: 24 bytes from the operating system's secure
/// random generator, base64-encoded.
///
/// Fails with [`Error::Io`] if the random generator fails.
pub fn scram_nonce() -> Result<String> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Io(io::Error::other("the system random generator failed")))?;
    Ok(BASE64.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
