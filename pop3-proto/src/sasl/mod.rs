//! SASL mechanisms for the POP3 `AUTH` command (RFC 5034).
//!
//! SCRAM with channel binding (`SCRAM-SHA-256-PLUS`, `SCRAM-SHA-1-PLUS`) takes
//! the binding data from the transport; see [`channel_binding`].
//!
//! The client core drives a [`Mechanism`]: it sends `AUTH <name> [initial response]`,
//! base64-decodes each `+ <challenge>` line and hands it to [`Mechanism::respond`],
//! base64-encodes the answer, and on the final `+OK` asks [`Mechanism::finish`]
//! whether the mechanism is satisfied (SCRAM checks that it has verified the
//! server's signature). Callers can plug in their own mechanism by implementing
//! the trait.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::Secret;

pub mod channel_binding;
pub mod cram_md5;
pub mod login;
pub mod oauth;
pub mod plain;
pub mod scram;

pub use channel_binding::{
    certificate_signature_hash, tls_server_end_point_hash, ChannelBinding, ChannelBindingKind,
    HashKind, TLS_EXPORTER_LABEL, TLS_EXPORTER_LENGTH,
};
pub use cram_md5::CramMd5;
pub use login::Login;
pub use oauth::{OAuthBearer, TokenRefusal, XOauth2};
pub use plain::Plain;
pub use scram::Scram;

/// A client-side SASL mechanism.
pub trait Mechanism: Send {
    /// The registered mechanism name, such as `"SCRAM-SHA-256"`; upper case ASCII.
    fn name(&self) -> &str;

    /// Whether this mechanism reveals a reusable credential (password or bearer
    /// token) to anyone who can read the connection. Such mechanisms are refused on
    /// an unencrypted connection unless the caller allows plaintext credentials.
    fn exposes_credentials(&self) -> bool;

    /// The initial response (RFC 4422 section 4), or `None` when the mechanism
    /// is server-first or has nothing to send yet. `Some(empty)` is a real, empty
    /// initial response (sent as `=`).
    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError>;

    /// Answers one server challenge (already base64-decoded).
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError>;

    /// Called when the server accepts the exchange with `+OK`. A mechanism that
    /// authenticates the server (SCRAM) returns an error if it has not yet verified
    /// the server's proof.
    fn finish(&mut self) -> Result<(), SaslError> {
        Ok(())
    }
}

impl fmt::Debug for dyn Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mechanism")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Why a SASL exchange failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// The server's challenge is not what the mechanism expects.
    MalformedChallenge(&'static str),
    /// The server sent more challenges than the mechanism has steps.
    UnexpectedChallenge,
    /// SCRAM: the server's signature does not match; the server does not know the password.
    ServerSignatureMismatch,
    /// SCRAM: the server reported an error (`e=...`).
    ServerError(String),
    /// SCRAM: the server's nonce does not extend the client's nonce.
    NonceMismatch,
    /// SCRAM: the iteration count is zero or above the configured maximum.
    IterationCount(u32),
    /// SCRAM: the iteration count is below the configured minimum (4096 by
    /// default, as RFC 7677 asks): a server that hashes its stored keys so
    /// cheaply makes a password guessed from an observed exchange cheap too.
    IterationCountBelowMinimum {
        /// The count the server asked for.
        count: u32,
        /// The lowest count the client accepts.
        minimum: u32,
    },
    /// The server accepted the exchange before the mechanism could verify it.
    Incomplete,
    /// A name or password cannot be prepared (SASLprep, RFC 4013) or contains forbidden characters.
    InvalidCredential(&'static str),
    /// SCRAM-PLUS: the channel-binding data given by the caller is unusable
    /// (for example empty).
    InvalidChannelBinding(&'static str),
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::MalformedChallenge(why) => write!(f, "malformed SASL challenge: {why}"),
            SaslError::UnexpectedChallenge => f.write_str("unexpected SASL challenge"),
            SaslError::ServerSignatureMismatch => {
                f.write_str("SCRAM server signature does not match")
            }
            SaslError::ServerError(e) => write!(f, "SCRAM server error: {e}"),
            SaslError::NonceMismatch => f.write_str("SCRAM server nonce does not extend ours"),
            SaslError::IterationCount(n) => {
                write!(f, "SCRAM iteration count {n} is not acceptable")
            }
            SaslError::IterationCountBelowMinimum { count, minimum } => write!(
                f,
                "SCRAM iteration count {count} is below the minimum of {minimum}"
            ),
            SaslError::Incomplete => {
                f.write_str("server accepted authentication before the exchange was complete")
            }
            SaslError::InvalidCredential(why) => write!(f, "invalid credential: {why}"),
            SaslError::InvalidChannelBinding(why) => write!(f, "invalid channel binding: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SaslError {}

/// A boxed mechanism, as the client core stores it.
pub type BoxedMechanism = Box<dyn Mechanism>;

/// Escapes a name for use as a SASL `saslname` (RFC 5802 section 5.1, also used by
/// the GS2 header of RFC 7628): `,` becomes `=2C` and `=` becomes `=3D`.
pub(crate) fn escape_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Prepares a user name or password with SASLprep (RFC 4013).
///
/// Without the `std` feature there are no Unicode tables, so only printable ASCII
/// (which SASLprep leaves unchanged) is accepted.
pub(crate) fn saslprep(s: &str) -> Result<String, SaslError> {
    #[cfg(feature = "std")]
    {
        stringprep::saslprep(s)
            .map(alloc::borrow::Cow::into_owned)
            .map_err(|_| SaslError::InvalidCredential("SASLprep rejected a name or password"))
    }
    #[cfg(not(feature = "std"))]
    {
        if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            Ok(String::from(s))
        } else {
            Err(SaslError::InvalidCredential(
                "SASLprep needs the std feature for non-ASCII input",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escaping() {
        assert_eq!(escape_saslname("plain"), "plain");
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(escape_saslname(""), "");
    }

    #[test]
    fn saslprep_ascii_is_identity() {
        assert_eq!(saslprep("user pencil~"), Ok(String::from("user pencil~")));
        assert!(matches!(
            saslprep("a\u{7}b"),
            Err(SaslError::InvalidCredential(_))
        ));
        assert!(matches!(
            saslprep("a\u{7f}"),
            Err(SaslError::InvalidCredential(_))
        ));
    }

    #[cfg(feature = "std")]
    #[test]
    fn saslprep_maps_and_rejects() {
        // RFC 4013 section 3 examples.
        assert_eq!(saslprep("I\u{AD}X"), Ok(String::from("IX")));
        assert_eq!(saslprep("\u{AA}"), Ok(String::from("a")));
        assert_eq!(saslprep("\u{2168}"), Ok(String::from("IX")));
        assert!(saslprep("\u{627}1").is_err());
    }

    #[cfg(not(feature = "std"))]
    #[test]
    fn saslprep_without_std_rejects_non_ascii() {
        assert!(matches!(
            saslprep("\u{e9}"),
            Err(SaslError::InvalidCredential(_))
        ));
    }
}
