//! OAuth 2.0 bearer-token mechanisms: Google's and Microsoft's `XOAUTH2`, and the
//! standard `OAUTHBEARER` (RFC 7628).
//!
//! Both are client-first: the initial response carries the token. If the server
//! rejects the token it sends one challenge holding a JSON error report; the
//! client must answer it (with an empty response for `XOAUTH2`, with a single
//! `0x01` byte for `OAUTHBEARER`) and the server then ends the exchange with
//! `-ERR`.

use alloc::string::String;
use alloc::vec::Vec;

use super::{escape_saslname, Mechanism, SaslError};
use crate::Secret;

/// Characters that would break the `0x01`-separated message format.
fn check_field(value: &str, why: &'static str) -> Result<(), SaslError> {
    if value.contains(['\x01', '\r', '\n']) {
        Err(SaslError::InvalidCredential(why))
    } else {
        Ok(())
    }
}

/// Shared state machine: the message, and how far the exchange has gone.
#[derive(Debug)]
struct BearerExchange {
    /// The complete client message (initial response).
    message: Secret<Vec<u8>>,
    /// The message was sent as the answer to an empty challenge.
    sent_in_response: bool,
    /// The server's error challenge has been acknowledged.
    acknowledged_error: bool,
}

impl BearerExchange {
    fn new(message: Vec<u8>) -> Self {
        BearerExchange {
            message: Secret::new(message),
            sent_in_response: false,
            acknowledged_error: false,
        }
    }

    fn respond(
        &mut self,
        challenge: &[u8],
        error_ack: &[u8],
    ) -> Result<Secret<Vec<u8>>, SaslError> {
        if self.acknowledged_error {
            return Err(SaslError::UnexpectedChallenge);
        }
        if challenge.is_empty() {
            // The server wants the message the client did not send as an
            // initial response.
            if self.sent_in_response {
                return Err(SaslError::UnexpectedChallenge);
            }
            self.sent_in_response = true;
            return Ok(self.message.clone());
        }
        // A non-empty challenge is the server's error report.
        self.acknowledged_error = true;
        Ok(Secret::new(error_ack.to_vec()))
    }
}

/// The `XOAUTH2` mechanism used by Gmail and Outlook.com: sends
/// `user=<user> ^A auth=Bearer <token> ^A ^A` as the initial response.
///
/// The bearer token travels in the clear (only base64-encoded), so
/// [`Mechanism::exposes_credentials`] is `true`.
#[derive(Debug)]
pub struct XOauth2 {
    exchange: BearerExchange,
}

impl XOauth2 {
    /// Creates the mechanism for `user` (an e-mail address) with an OAuth 2.0
    /// access `token`.
    ///
    /// Returns [`SaslError::InvalidCredential`] if either contains `0x01`, CR or LF.
    pub fn new(user: String, token: Secret<String>) -> Result<Self, SaslError> {
        check_field(&user, "XOAUTH2 user contains 0x01, CR or LF")?;
        check_field(token.expose(), "XOAUTH2 token contains 0x01, CR or LF")?;
        let token = token.expose();
        let mut message = Vec::with_capacity(user.len() + token.len() + 20);
        message.extend_from_slice(b"user=");
        message.extend_from_slice(user.as_bytes());
        message.extend_from_slice(b"\x01auth=Bearer ");
        message.extend_from_slice(token.as_bytes());
        message.extend_from_slice(b"\x01\x01");
        Ok(XOauth2 {
            exchange: BearerExchange::new(message),
        })
    }
}

impl Mechanism for XOauth2 {
    fn name(&self) -> &str {
        "XOAUTH2"
    }

    fn exposes_credentials(&self) -> bool {
        true
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(Some(self.exchange.message.clone()))
    }

    /// An empty challenge asks for the message (if it was not sent as the initial
    /// response); a non-empty one is a JSON error report and gets an empty answer.
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        self.exchange.respond(challenge, b"")
    }
}

/// The `OAUTHBEARER` mechanism (RFC 7628): sends
/// `n,a=<user>, ^A auth=Bearer <token> ^A ^A` as the initial response.
///
/// The bearer token travels in the clear (only base64-encoded), so
/// [`Mechanism::exposes_credentials`] is `true`.
#[derive(Debug)]
pub struct OAuthBearer {
    exchange: BearerExchange,
}

impl OAuthBearer {
    /// Creates the mechanism for `user` (sent as the authorization identity of the
    /// GS2 header, with `,` and `=` escaped) with an OAuth 2.0 access `token`.
    ///
    /// Returns [`SaslError::InvalidCredential`] if either contains `0x01`, CR or LF.
    pub fn new(user: String, token: Secret<String>) -> Result<Self, SaslError> {
        check_field(&user, "OAUTHBEARER user contains 0x01, CR or LF")?;
        check_field(token.expose(), "OAUTHBEARER token contains 0x01, CR or LF")?;
        let user = escape_saslname(&user);
        let token = token.expose();
        let mut message = Vec::with_capacity(user.len() + token.len() + 20);
        message.extend_from_slice(b"n,a=");
        message.extend_from_slice(user.as_bytes());
        message.extend_from_slice(b",\x01auth=Bearer ");
        message.extend_from_slice(token.as_bytes());
        message.extend_from_slice(b"\x01\x01");
        Ok(OAuthBearer {
            exchange: BearerExchange::new(message),
        })
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &str {
        "OAUTHBEARER"
    }

    fn exposes_credentials(&self) -> bool {
        true
    }

    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(Some(self.exchange.message.clone()))
    }

    /// An empty challenge asks for the message (if it was not sent as the initial
    /// response); a non-empty one is a JSON error report and gets the `0x01`
    /// answer of RFC 7628 section 3.2.3.
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        self.exchange.respond(challenge, b"\x01")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;

    const ERROR_JSON: &[u8] =
        br#"{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}"#;

    fn secret(s: &str) -> Secret<String> {
        Secret::new(String::from(s))
    }

    #[test]
    fn xoauth2_initial_response() {
        let mut m = XOauth2::new(
            String::from("someuser@example.com"),
            secret("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
        )
        .unwrap();
        assert_eq!(m.name(), "XOAUTH2");
        assert!(m.exposes_credentials());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn xoauth2_error_challenge_gets_empty_answer_once() {
        let mut m = XOauth2::new(String::from("u@example.com"), secret("tok")).unwrap();
        m.initial_response().unwrap();
        assert!(m.respond(ERROR_JSON).unwrap().expose().is_empty());
        assert_eq!(
            m.respond(ERROR_JSON).unwrap_err(),
            SaslError::UnexpectedChallenge
        );
        assert_eq!(m.respond(b"").unwrap_err(), SaslError::UnexpectedChallenge);
    }

    #[test]
    fn xoauth2_empty_challenge_gets_the_message() {
        let mut m = XOauth2::new(String::from("u@example.com"), secret("tok")).unwrap();
        assert_eq!(
            m.respond(b"").unwrap().expose().as_slice(),
            b"user=u@example.com\x01auth=Bearer tok\x01\x01"
        );
        assert_eq!(m.respond(b"").unwrap_err(), SaslError::UnexpectedChallenge);
        // The error report may still follow.
        assert!(m.respond(ERROR_JSON).unwrap().expose().is_empty());
    }

    #[test]
    fn oauthbearer_initial_response() {
        // RFC 7628 section 4.1, without host and port.
        let mut m = OAuthBearer::new(
            String::from("user@example.com"),
            secret("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
        )
        .unwrap();
        assert_eq!(m.name(), "OAUTHBEARER");
        assert!(m.exposes_credentials());
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_escapes_user() {
        let mut m = OAuthBearer::new(String::from("a,b=c"), secret("t")).unwrap();
        let ir = m.initial_response().unwrap().unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_error_challenge_gets_ctrl_a() {
        let mut m = OAuthBearer::new(String::from("u"), secret("t")).unwrap();
        m.initial_response().unwrap();
        assert_eq!(m.respond(ERROR_JSON).unwrap().expose().as_slice(), b"\x01");
        assert_eq!(
            m.respond(ERROR_JSON).unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn rejects_separators() {
        for bad in ["a\x01b", "a\rb", "a\nb"] {
            assert!(matches!(
                XOauth2::new(String::from(bad), secret("t")),
                Err(SaslError::InvalidCredential(_))
            ));
            assert!(matches!(
                XOauth2::new(String::from("u"), secret(bad)),
                Err(SaslError::InvalidCredential(_))
            ));
            assert!(matches!(
                OAuthBearer::new(String::from(bad), secret("t")),
                Err(SaslError::InvalidCredential(_))
            ));
            assert!(matches!(
                OAuthBearer::new(String::from("u"), secret(bad)),
                Err(SaslError::InvalidCredential(_))
            ));
        }
    }

    #[test]
    fn debug_redacts_token() {
        let x = XOauth2::new(String::from("u"), secret("sekrit-token")).unwrap();
        let o = OAuthBearer::new(String::from("u"), secret("sekrit-token")).unwrap();
        assert!(!format!("{x:?}").contains("sekrit"));
        assert!(!format!("{o:?}").contains("sekrit"));
    }
}
