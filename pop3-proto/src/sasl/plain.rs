//! The `PLAIN` mechanism (RFC 4616).

use alloc::string::String;
use alloc::vec::Vec;

use super::{Mechanism, SaslError};
use crate::Secret;

/// The `PLAIN` mechanism (RFC 4616): sends `authzid NUL authcid NUL password`
/// as the initial response.
///
/// The password travels in the clear (only base64-encoded), so
/// [`Mechanism::exposes_credentials`] is `true`.
///
/// If the client core does not send the initial response (for example because the
/// `AUTH` line would be too long), the server answers with an empty challenge and
/// [`Mechanism::respond`] returns the same message.
#[derive(Debug)]
pub struct Plain {
    authzid: Option<String>,
    authcid: String,
    password: Secret<String>,
    responded: bool,
}

impl Plain {
    /// Creates the mechanism. `authzid` is the identity to act as (usually
    /// `None`: act as `authcid`), `authcid` is the user name.
    ///
    /// Returns [`SaslError::InvalidCredential`] if any field contains a NUL
    /// character, which the message format cannot carry.
    pub fn new(
        authzid: Option<String>,
        authcid: String,
        password: Secret<String>,
    ) -> Result<Self, SaslError> {
        if authzid.as_deref().is_some_and(|a| a.contains('\0')) {
            return Err(SaslError::InvalidCredential(
                "PLAIN authorization identity contains NUL",
            ));
        }
        if authcid.contains('\0') {
            return Err(SaslError::InvalidCredential("PLAIN user name contains NUL"));
        }
        if password.expose().contains('\0') {
            return Err(SaslError::InvalidCredential("PLAIN password contains NUL"));
        }
        Ok(Plain {
            authzid,
            authcid,
            password,
            responded: false,
        })
    }

    fn message(&self) -> Secret<Vec<u8>> {
        let authzid = self.authzid.as_deref().unwrap_or("");
        let password = self.password.expose();
        let mut out = Vec::with_capacity(authzid.len() + self.authcid.len() + password.len() + 2);
        out.extend_from_slice(authzid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.authcid.as_bytes());
        out.push(0);
        out.extend_from_slice(password.as_bytes());
        Secret::new(out)
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &str {
        "PLAIN"
    }

    fn exposes_credentials(&self) -> bool {
        true
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(Some(self.message()))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        // The only challenge PLAIN knows is the empty one a server sends when the
        // client did not send an initial response.
        if self.responded || !challenge.is_empty() {
            return Err(SaslError::UnexpectedChallenge);
        }
        self.responded = true;
        Ok(self.message())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;

    fn plain(authzid: Option<&str>, authcid: &str, password: &str) -> Result<Plain, SaslError> {
        Plain::new(
            authzid.map(String::from),
            String::from(authcid),
            Secret::new(String::from(password)),
        )
    }

    #[test]
    fn initial_response() {
        let mut m = plain(None, "tim", "tanstaaftanstaaf").unwrap();
        assert_eq!(m.name(), "PLAIN");
        assert!(m.exposes_credentials());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose().as_slice(), b"\0tim\0tanstaaftanstaaf");
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn with_authzid() {
        // RFC 4616 section 4 example.
        let mut m = plain(Some("Ursel"), "Kurt", "xipj3plmq").unwrap();
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(ir.expose().as_slice(), b"Ursel\0Kurt\0xipj3plmq");
    }

    #[test]
    fn empty_challenge_gets_the_message_once() {
        let mut m = plain(None, "u", "p").unwrap();
        assert_eq!(m.respond(b"").unwrap().expose().as_slice(), b"\0u\0p");
        assert_eq!(m.respond(b"").unwrap_err(), SaslError::UnexpectedChallenge);
    }

    #[test]
    fn non_empty_challenge_is_unexpected() {
        let mut m = plain(None, "u", "p").unwrap();
        assert_eq!(
            m.respond(b"what").unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn rejects_nul() {
        assert!(matches!(
            plain(Some("a\0"), "u", "p"),
            Err(SaslError::InvalidCredential(_))
        ));
        assert!(matches!(
            plain(None, "u\0", "p"),
            Err(SaslError::InvalidCredential(_))
        ));
        assert!(matches!(
            plain(None, "u", "\0p"),
            Err(SaslError::InvalidCredential(_))
        ));
    }

    #[test]
    fn debug_redacts_password() {
        let m = plain(None, "u", "hunter2").unwrap();
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
