//! OAuth 2.0 bearer-token mechanisms: Google's and Microsoft's `XOAUTH2`, and the
//! standard `OAUTHBEARER` (RFC 7628).
//!
//! Both always go in two steps: `AUTH XOAUTH2` alone, the server's empty
//! continuation (`+` or `+ `), then the token on a line of its own. RFC 5034
//! allows an initial response on the `AUTH` line only when the whole line
//! fits in 255 octets, which a real access token (Google: up to 2,000
//! characters, Microsoft: 1,500 to 2,500) never does, and Microsoft 365
//! closes the connection on an inline one ("-ERR Protocol error").
//!
//! If the server rejects the token it sends one challenge holding a JSON
//! error report (Gmail: `{"status":"400","schemes":"Bearer","scope":...}`);
//! the client must answer it (with an empty response for `XOAUTH2`, with a
//! single `0x01` byte for `OAUTHBEARER`) and the server then ends the exchange
//! with `-ERR`. The core reads that report into a [`TokenRefusal`] and hands
//! it over with the `-ERR` ([`crate::ServerError::token_refusal`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{escape_saslname, Mechanism, SaslError};
use crate::{Secret, Text};

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

    /// None: the token goes in answer to the server's empty challenge (see
    /// the module docs).
    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(None)
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

    /// None: the token goes in answer to the server's empty challenge (see
    /// the module docs).
    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        Ok(None)
    }

    /// An empty challenge asks for the message (if it was not sent as the initial
    /// response); a non-empty one is a JSON error report and gets the `0x01`
    /// answer of RFC 7628 section 3.2.3.
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        self.exchange.respond(challenge, b"\x01")
    }
}

/// Why the server refused an OAuth 2.0 token: the JSON error report of the
/// `XOAUTH2` / `OAUTHBEARER` exchange (RFC 7628 section 3.2.2; Google sends
/// the same for `XOAUTH2`), read by the core so every surface words it the
/// same way. Every field is server text, made safe to print.
///
/// ```
/// use pop3_proto::sasl::TokenRefusal;
/// let json = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
/// let refusal = TokenRefusal::parse(json).expect("a JSON error report");
/// assert_eq!(refusal.status.as_str(), "400");
/// assert_eq!(
///     refusal.to_string(),
///     "the token was refused (expired, or lacks the scope https://mail.google.com/)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRefusal {
    /// `status`: an HTTP status (`"400"`, `"401"`) or an RFC 6750 error code
    /// (`"invalid_token"`, `"insufficient_scope"`).
    pub status: Text,
    /// `scope`: the scope the token needs.
    pub scope: Option<Text>,
    /// `schemes`: the authentication schemes the server takes (`"Bearer"`).
    pub schemes: Option<Text>,
}

impl TokenRefusal {
    /// Reads a JSON error report; `None` when `json` is not a JSON object
    /// with a `status`.
    pub fn parse(json: &[u8]) -> Option<TokenRefusal> {
        let mut status = None;
        let mut scope = None;
        let mut schemes = None;
        json::each_member(json, |key, value| {
            let slot = match key {
                "status" => &mut status,
                "scope" => &mut scope,
                "schemes" => &mut schemes,
                _ => return,
            };
            *slot = Some(Text::sanitize(value.as_bytes()));
        })?;
        Some(TokenRefusal {
            status: status?,
            scope,
            schemes,
        })
    }

    /// The token is missing a permission rather than dead.
    fn lacks_scope(&self) -> bool {
        matches!(self.status.as_str(), "insufficient_scope" | "403")
    }
}

impl fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.scope.as_ref().filter(|s| !s.as_str().is_empty());
        match (self.status.as_str(), scope) {
            (_, Some(scope)) if self.lacks_scope() => {
                write!(f, "the token lacks the scope {scope}")
            }
            ("400" | "401" | "invalid_token", Some(scope)) => {
                write!(
                    f,
                    "the token was refused (expired, or lacks the scope {scope})"
                )
            }
            ("400" | "401" | "invalid_token", None) => {
                f.write_str("the token was refused (expired or revoked)")
            }
            (status, Some(scope)) => write!(
                f,
                "the token was refused (status {status}; it needs the scope {scope})"
            ),
            (status, None) => write!(f, "the token was refused (status {status})"),
        }
    }
}

/// Just enough JSON for an error report: the members of one object whose
/// values are strings, numbers or literals (nested values are skipped).
/// Linear, no recursion, no allocation beyond the decoded strings.
mod json {
    use alloc::string::String;

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Cursor<'_> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.at += 1;
            Some(b)
        }

        fn skip_space(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                self.at += 1;
            }
        }

        fn eat(&mut self, expected: u8) -> Option<()> {
            self.skip_space();
            (self.next()? == expected).then_some(())
        }

        /// A string after its opening quote, unescaped.
        fn string(&mut self) -> Option<String> {
            let mut out = String::new();
            loop {
                match self.next()? {
                    b'"' => return Some(out),
                    b'\\' => {
                        let c = match self.next()? {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' | b'f' | b'n' | b'r' | b't' => ' ',
                            b'u' => {
                                let mut code = 0u32;
                                for _ in 0..4 {
                                    let digit = char::from(self.next()?).to_digit(16)?;
                                    code = code * 16 + digit;
                                }
                                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                            _ => return None,
                        };
                        out.push(c);
                    }
                    _ => {
                        // Copy the run of plain bytes up to the next quote or
                        // escape at once; invalid UTF-8 is replaced.
                        let start = self.at - 1;
                        while self.peek().is_some_and(|b| b != b'"' && b != b'\\') {
                            self.at += 1;
                        }
                        out.push_str(&String::from_utf8_lossy(&self.bytes[start..self.at]));
                    }
                }
            }
        }

        /// A scalar that is not a string (number, `true`, `null`...), as text.
        fn bare(&mut self) -> Option<String> {
            let start = self.at;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
            {
                self.at += 1;
            }
            (self.at > start)
                .then(|| String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
        }

        /// Skips a nested object or array after its opening bracket.
        fn skip_nested(&mut self) -> Option<()> {
            let mut depth = 1usize;
            while depth > 0 {
                match self.next()? {
                    b'"' => {
                        self.string()?;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
            }
            Some(())
        }
    }

    /// Calls `member` with each key and scalar value of the object `bytes`
    /// holds; `None` when it is not one well-formed object.
    pub(super) fn each_member(bytes: &[u8], mut member: impl FnMut(&str, String)) -> Option<()> {
        let mut cursor = Cursor { bytes, at: 0 };
        cursor.eat(b'{')?;
        cursor.skip_space();
        if cursor.peek() == Some(b'}') {
            cursor.at += 1;
        } else {
            loop {
                cursor.eat(b'"')?;
                let key = cursor.string()?;
                cursor.eat(b':')?;
                cursor.skip_space();
                match cursor.next()? {
                    b'"' => member(&key, cursor.string()?),
                    b'{' | b'[' => cursor.skip_nested()?,
                    _ => {
                        cursor.at -= 1;
                        member(&key, cursor.bare()?);
                    }
                }
                cursor.skip_space();
                match cursor.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        cursor.skip_space();
        (cursor.at == bytes.len()).then_some(())
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
        // Two steps: nothing on the AUTH line, the message for the empty challenge.
        assert!(m.initial_response().unwrap().is_none());
        let ir = m.respond(b"").unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn xoauth2_error_challenge_gets_empty_answer_once() {
        let mut m = XOauth2::new(String::from("u@example.com"), secret("tok")).unwrap();
        m.respond(b"").unwrap();
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
        assert!(m.initial_response().unwrap().is_none());
        let ir = m.respond(b"").unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_escapes_user() {
        let mut m = OAuthBearer::new(String::from("a,b=c"), secret("t")).unwrap();
        let ir = m.respond(b"").unwrap();
        assert_eq!(
            ir.expose().as_slice(),
            b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_error_challenge_gets_ctrl_a() {
        let mut m = OAuthBearer::new(String::from("u"), secret("t")).unwrap();
        m.respond(b"").unwrap();
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
    #[test]
    fn refusal_reads_google_and_rfc7628_reports() {
        let google = TokenRefusal::parse(
            br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#,
        )
        .unwrap();
        assert_eq!(google.status.as_str(), "400");
        assert_eq!(google.schemes.as_ref().unwrap().as_str(), "Bearer");
        assert_eq!(
            format!("{google}"),
            "the token was refused (expired, or lacks the scope https://mail.google.com/)"
        );
        let rfc = TokenRefusal::parse(ERROR_JSON).unwrap();
        assert_eq!(rfc.status.as_str(), "invalid_token");
        assert_eq!(rfc.scope.as_ref().unwrap().as_str(), "example_scope");
        let scope = TokenRefusal::parse(
            b" { \"status\" : \"insufficient_scope\", \"scope\":\"mail\\/read\", \"n\": [1, {\"x\": \"}\"}], \"t\": true } ",
        )
        .unwrap();
        assert_eq!(format!("{scope}"), "the token lacks the scope mail/read");
        let bare = TokenRefusal::parse(br#"{"status":401}"#).unwrap();
        assert_eq!(
            format!("{bare}"),
            "the token was refused (expired or revoked)"
        );
        let other = TokenRefusal::parse(br#"{"status":"500"}"#).unwrap();
        assert_eq!(format!("{other}"), "the token was refused (status 500)");
    }

    #[test]
    fn refusal_text_is_safe_to_print() {
        let hostile =
            TokenRefusal::parse(br#"{"status":"400","scope":"a\u001b[2Jb\u202ec"}"#).unwrap();
        let shown = format!("{hostile}");
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
    }

    #[test]
    fn refusal_refuses_what_is_not_one_object() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"scope\":\"x\"}",
            b"{\"status\":\"400\"} trailing",
            b"{\"status\":\"4\\q\"}",
            b"{\"status\" \"400\"}",
            b"{\"status\":\"400\",}",
            b"{\"a\":[[[[",
            b"{\"status\":\"\\u12\"}",
            b"not json",
        ] {
            assert_eq!(TokenRefusal::parse(bad), None, "{bad:?}");
        }
    }
}
