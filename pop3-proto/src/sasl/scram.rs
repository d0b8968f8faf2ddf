//! The `SCRAM-SHA-1` and `SCRAM-SHA-256` mechanisms (RFC 5802, RFC 7677) and
//! their channel-binding variants `SCRAM-SHA-1-PLUS` and `SCRAM-SHA-256-PLUS`.
//!
//! The GS2 header at the start of the exchange says what the client knows about
//! channel binding (RFC 5802 section 6):
//!
//! - `p=<type>`: the client binds to the TLS channel (the `-PLUS` mechanisms,
//!   [`Scram::sha256_plus`]); the `c=` attribute of the client-final message
//!   carries the GS2 header followed by the binding data, so the server's check
//!   of the proof also checks that both ends see the same TLS channel;
//! - `y`: the client could bind but the server did not offer a `-PLUS`
//!   mechanism ([`Scram::with_binding_supported`]). A server that does support
//!   binding then knows the offer was stripped on the way and refuses;
//! - `n`: the client cannot bind (no TLS, or no binding data).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::channel_binding::{ChannelBinding, ChannelBindingKind};
use super::{escape_saslname, saslprep, Mechanism, SaslError};
use crate::{Secret, Text};

/// The default upper bound for the server's iteration count.
const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// The default lower bound for the server's iteration count: RFC 7677
/// (section 4) asks for at least 4096.
pub const DEFAULT_MIN_ITERATIONS: u32 = 4096;

/// The hash function a SCRAM variant is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn mechanism_name(self, plus: bool) -> &'static str {
        match (self, plus) {
            (Hash::Sha1, false) => "SCRAM-SHA-1",
            (Hash::Sha256, false) => "SCRAM-SHA-256",
            (Hash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (Hash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        }
    }

    /// `HMAC(key, data)`.
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
        fn run<M: Mac + hmac::digest::KeyInit>(
            key: &[u8],
            data: &[u8],
        ) -> Result<Vec<u8>, SaslError> {
            // HMAC accepts keys of any length; this error cannot happen.
            let mut mac = <M as Mac>::new_from_slice(key)
                .map_err(|_| SaslError::InvalidCredential("cannot key HMAC"))?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Hash::Sha1 => run::<Hmac<Sha1>>(key, data),
            Hash::Sha256 => run::<Hmac<Sha256>>(key, data),
        }
    }

    /// `H(data)`.
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`, which is PBKDF2 with HMAC as the PRF and one
    /// output block.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Hash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the client tells the server about channel binding (the GS2
/// `gs2-cbind-flag`).
enum Binding {
    /// `n`: the client does not support channel binding.
    Unsupported,
    /// `y`: the client supports it, but the server did not offer a `-PLUS`
    /// mechanism.
    NotOffered,
    /// `p=<type>`: the client binds the exchange to this channel.
    Bound(ChannelBinding),
}

impl Binding {
    fn label(&self) -> &'static str {
        match self {
            Binding::Unsupported => "n",
            Binding::NotOffered => "y",
            Binding::Bound(b) => b.kind.name(),
        }
    }
}

/// Where the exchange stands.
enum State {
    /// Nothing sent yet.
    Initial,
    /// The client-first message has been produced.
    ClientFirstSent {
        /// The GS2 header followed by the binding data (if any): what `c=`
        /// carries, base64-encoded.
        cbind_input: Vec<u8>,
        client_first_bare: String,
    },
    /// The client-final message has been produced; waiting for the server's
    /// signature.
    ClientFinalSent { server_signature: Secret<Vec<u8>> },
    /// The server proved that it knows the password.
    Verified,
    /// The exchange failed; no further steps are possible.
    Failed,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::ClientFirstSent { .. } => "client-first sent",
            State::ClientFinalSent { .. } => "client-final sent",
            State::Verified => "verified",
            State::Failed => "failed",
        }
    }
}

/// The `SCRAM-SHA-1` and `SCRAM-SHA-256` mechanisms (RFC 5802, RFC 7677), with
/// or without channel binding (`SCRAM-SHA-1-PLUS`, `SCRAM-SHA-256-PLUS`).
///
/// [`Scram::sha1`] and [`Scram::sha256`] send the GS2 header `n,,` (or `y,,`
/// after [`Scram::with_binding_supported`]); [`Scram::sha1_plus`] and
/// [`Scram::sha256_plus`] bind the exchange to the TLS channel whose binding
/// data the transport supplies (see [`super::channel_binding`]).
///
/// SCRAM never sends the password, and the server has to prove that it knows it:
/// after the server's final message the mechanism checks the server signature and
/// [`Mechanism::finish`] fails with [`SaslError::Incomplete`] if the server
/// accepted the client without that proof. [`Mechanism::exposes_credentials`] is
/// `false`.
///
/// The protocol core has no random number generator, so the caller supplies the
/// client nonce: it must be fresh for every exchange and unpredictable. Use at
/// least 18 bytes from a cryptographically secure generator, base64-encoded
/// (giving 24 characters); the nonce must consist of printable ASCII other than
/// `,`.
///
/// User names and passwords are prepared with SASLprep (RFC 4013). Without the
/// `std` feature the Unicode tables are not available and only printable ASCII is
/// accepted.
///
/// # Example
///
/// The exchange from RFC 5802 section 5:
///
/// ```
/// use pop3_proto::sasl::{Mechanism, Scram};
/// use pop3_proto::Secret;
///
/// let mut scram = Scram::sha1(
///     "user".to_string(),
///     Secret::new("pencil".to_string()),
///     "fyko+d2lbbFgONRv9qkxdawL".to_string(), // use a random nonce in real code
/// )?;
///
/// // Sent with the AUTH command (base64-encoded by the client core).
/// let first = scram.initial_response()?.expect("SCRAM is client-first");
/// assert_eq!(first.expose().as_slice(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
///
/// // The server's first challenge carries its nonce, the salt and the iteration count.
/// let last = scram.respond(
///     b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
/// )?;
/// assert_eq!(
///     last.expose().as_slice(),
///     &b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="[..],
/// );
///
/// // The server proves that it knows the password; the answer is empty.
/// let empty = scram.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")?;
/// assert!(empty.expose().is_empty());
///
/// // On +OK the client core calls finish(), which succeeds only now.
/// scram.finish()?;
/// # Ok::<(), pop3_proto::sasl::SaslError>(())
/// ```
pub struct Scram {
    hash: Hash,
    /// The SASLprepped user name, not yet escaped.
    user: String,
    /// The authorization identity as given, not yet prepared.
    authzid: Option<String>,
    /// The SASLprepped password.
    password: Secret<String>,
    client_nonce: String,
    max_iterations: u32,
    min_iterations: u32,
    binding: Binding,
    state: State,
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.name())
            .field("channel_binding", &self.binding.label())
            .field("user", &self.user)
            .field("authzid", &self.authzid)
            .field("max_iterations", &self.max_iterations)
            .field("min_iterations", &self.min_iterations)
            .field("state", &self.state.label())
            .finish_non_exhaustive()
    }
}

impl Scram {
    /// Creates a `SCRAM-SHA-1` mechanism (RFC 5802).
    ///
    /// `client_nonce` must be fresh and random: at least 18 bytes from a
    /// cryptographically secure generator, base64-encoded.
    ///
    /// Returns [`SaslError::InvalidCredential`] if the nonce is empty or contains
    /// `,` or characters other than printable ASCII, or if SASLprep rejects the
    /// user name or password.
    pub fn sha1(
        user: String,
        password: Secret<String>,
        client_nonce: String,
    ) -> Result<Self, SaslError> {
        Self::new(Hash::Sha1, user, password, client_nonce)
    }

    /// Creates a `SCRAM-SHA-256` mechanism (RFC 7677).
    ///
    /// `client_nonce` must be fresh and random: at least 18 bytes from a
    /// cryptographically secure generator, base64-encoded.
    ///
    /// Returns [`SaslError::InvalidCredential`] if the nonce is empty or contains
    /// `,` or characters other than printable ASCII, or if SASLprep rejects the
    /// user name or password.
    pub fn sha256(
        user: String,
        password: Secret<String>,
        client_nonce: String,
    ) -> Result<Self, SaslError> {
        Self::new(Hash::Sha256, user, password, client_nonce)
    }

    /// Creates a `SCRAM-SHA-256-PLUS` mechanism (RFC 7677, RFC 5802 section 6):
    /// SCRAM-SHA-256 bound to the TLS channel that `binding` describes.
    ///
    /// Use it only on a TLS connection, with the binding data of that
    /// connection (`tls-exporter` on TLS 1.3, `tls-server-end-point` on TLS
    /// 1.2), and only when the server offers `SCRAM-SHA-256-PLUS`.
    ///
    /// Fails like [`Scram::sha256`], and with
    /// [`SaslError::InvalidChannelBinding`] if the binding data is empty.
    ///
    /// ```
    /// use pop3_proto::sasl::{ChannelBinding, Mechanism, Scram};
    /// use pop3_proto::Secret;
    ///
    /// let exporter = vec![7u8; 32]; // from the TLS library in real code
    /// let mut scram = Scram::sha256_plus(
    ///     "user".to_string(),
    ///     Secret::new("pencil".to_string()),
    ///     "rOprNGfwEbeRWgbNEkqO".to_string(), // use a random nonce in real code
    ///     ChannelBinding::tls_exporter(exporter),
    /// )?;
    /// assert_eq!(scram.name(), "SCRAM-SHA-256-PLUS");
    /// let first = scram.initial_response()?.expect("SCRAM is client-first");
    /// assert_eq!(first.expose().as_slice(), b"p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    /// # Ok::<(), pop3_proto::sasl::SaslError>(())
    /// ```
    pub fn sha256_plus(
        user: String,
        password: Secret<String>,
        client_nonce: String,
        binding: ChannelBinding,
    ) -> Result<Self, SaslError> {
        Self::new(Hash::Sha256, user, password, client_nonce)?.bound_to(binding)
    }

    /// Creates a `SCRAM-SHA-1-PLUS` mechanism (RFC 5802 section 6): SCRAM-SHA-1
    /// bound to the TLS channel that `binding` describes. See
    /// [`Scram::sha256_plus`], which is preferable when the server offers both.
    pub fn sha1_plus(
        user: String,
        password: Secret<String>,
        client_nonce: String,
        binding: ChannelBinding,
    ) -> Result<Self, SaslError> {
        Self::new(Hash::Sha1, user, password, client_nonce)?.bound_to(binding)
    }

    fn bound_to(mut self, binding: ChannelBinding) -> Result<Self, SaslError> {
        if binding.data.is_empty() {
            return Err(SaslError::InvalidChannelBinding(
                "channel-binding data is empty",
            ));
        }
        self.binding = Binding::Bound(binding);
        Ok(self)
    }

    fn new(
        hash: Hash,
        user: String,
        password: Secret<String>,
        client_nonce: String,
    ) -> Result<Self, SaslError> {
        if client_nonce.is_empty() {
            return Err(SaslError::InvalidCredential("SCRAM client nonce is empty"));
        }
        if !is_printable(&client_nonce) {
            return Err(SaslError::InvalidCredential(
                "SCRAM client nonce must be printable ASCII without ','",
            ));
        }
        let user = saslprep(&user)?;
        let password = Secret::new(saslprep(password.expose())?);
        Ok(Scram {
            hash,
            user,
            authzid: None,
            password,
            client_nonce,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            min_iterations: DEFAULT_MIN_ITERATIONS,
            binding: Binding::Unsupported,
            state: State::Initial,
        })
    }

    /// Asks the server to authorize the session as `authzid` (sent as `a=` in the
    /// GS2 header) instead of the authenticated user.
    ///
    /// The identity is prepared with SASLprep when the client-first message is
    /// built; if that fails, [`Mechanism::initial_response`] returns
    /// [`SaslError::InvalidCredential`].
    #[must_use]
    pub fn with_authzid(mut self, authzid: String) -> Self {
        self.authzid = Some(authzid);
        self
    }

    /// Says whether the client could have bound the exchange to the TLS channel
    /// (it has the binding data) although it is using a mechanism without
    /// `-PLUS`, because the server did not offer one.
    ///
    /// With `true` the GS2 header is `y,,` instead of `n,,` (RFC 5802 section
    /// 6). A server that does support channel binding then refuses the
    /// exchange: its `-PLUS` offer must have been removed on the way, which is
    /// how a downgrade by a machine in the middle is detected. Set it on TLS
    /// connections whose binding data the transport can obtain; leave it unset
    /// without TLS.
    ///
    /// It has no effect on the `-PLUS` mechanisms, which always send `p=`.
    #[must_use]
    pub fn with_binding_supported(mut self, supported: bool) -> Self {
        match self.binding {
            Binding::Bound(_) => {}
            Binding::Unsupported | Binding::NotOffered => {
                self.binding = if supported {
                    Binding::NotOffered
                } else {
                    Binding::Unsupported
                };
            }
        }
        self
    }

    /// The channel-binding type this mechanism binds to, or `None` for the
    /// mechanisms without `-PLUS`.
    pub fn channel_binding(&self) -> Option<ChannelBindingKind> {
        match &self.binding {
            Binding::Bound(b) => Some(b.kind),
            Binding::Unsupported | Binding::NotOffered => None,
        }
    }

    /// Sets the highest iteration count the client accepts from the server
    /// (default 1,000,000). Each iteration costs one HMAC computation, so a hostile
    /// server could otherwise make the client spin for a long time. A larger count
    /// fails with [`SaslError::IterationCount`].
    #[must_use]
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Sets the lowest iteration count the client accepts from the server
    /// (default [`DEFAULT_MIN_ITERATIONS`], 4096, as RFC 7677 asks). A
    /// smaller count fails with [`SaslError::IterationCountBelowMinimum`]
    /// before any key is derived. Lower it only for a server you know to
    /// store its keys with fewer iterations; zero is never accepted.
    #[must_use]
    pub fn with_min_iterations(mut self, min: u32) -> Self {
        self.min_iterations = min;
        self
    }

    /// Builds the client-first message and records it in the state.
    fn client_first(&mut self) -> Result<Secret<Vec<u8>>, SaslError> {
        let mut gs2_header = String::from(match &self.binding {
            Binding::Unsupported => "n",
            Binding::NotOffered => "y",
            Binding::Bound(_) => "p=",
        });
        if let Binding::Bound(b) = &self.binding {
            gs2_header.push_str(b.kind.name());
        }
        gs2_header.push(',');
        if let Some(authzid) = &self.authzid {
            gs2_header.push_str("a=");
            gs2_header.push_str(&escape_saslname(&saslprep(authzid)?));
        }
        gs2_header.push(',');
        let mut client_first_bare = String::from("n=");
        client_first_bare.push_str(&escape_saslname(&self.user));
        client_first_bare.push_str(",r=");
        client_first_bare.push_str(&self.client_nonce);

        let mut message = Vec::with_capacity(gs2_header.len() + client_first_bare.len());
        message.extend_from_slice(gs2_header.as_bytes());
        message.extend_from_slice(client_first_bare.as_bytes());
        // RFC 5802 section 7: `c=` is the base64 of the GS2 header, followed by
        // the binding data only when the flag is `p`.
        let mut cbind_input = gs2_header.into_bytes();
        if let Binding::Bound(b) = &self.binding {
            cbind_input.extend_from_slice(&b.data);
        }
        self.state = State::ClientFirstSent {
            cbind_input,
            client_first_bare,
        };
        Ok(Secret::new(message))
    }

    /// Handles server-first, returns client-final.
    fn client_final(
        &mut self,
        cbind_input: &[u8],
        client_first_bare: &str,
        server_first: &[u8],
    ) -> Result<Secret<Vec<u8>>, SaslError> {
        let server_first = core::str::from_utf8(server_first)
            .map_err(|_| SaslError::MalformedChallenge("SCRAM server-first is not UTF-8"))?;
        let limits = (self.min_iterations, self.max_iterations);
        let parsed = parse_server_first(server_first, &self.client_nonce, limits)?;

        let mut without_proof = String::from("c=");
        without_proof.push_str(&BASE64.encode(cbind_input));
        without_proof.push_str(",r=");
        without_proof.push_str(parsed.nonce);

        let mut auth_message = String::with_capacity(
            client_first_bare.len() + server_first.len() + without_proof.len() + 2,
        );
        auth_message.push_str(client_first_bare);
        auth_message.push(',');
        auth_message.push_str(server_first);
        auth_message.push(',');
        auth_message.push_str(&without_proof);

        let hash = self.hash;
        let salted = Secret::new(hash.salted_password(
            self.password.expose().as_bytes(),
            &parsed.salt,
            parsed.iterations,
        ));
        let client_key = Secret::new(hash.hmac(salted.expose(), b"Client Key")?);
        // The stored key is what the server keeps to check logins, and the
        // client signature XORed with the proof gives the client key back:
        // both are wiped like the keys they come from.
        let stored_key = Secret::new(hash.digest(client_key.expose()));
        let client_signature =
            Secret::new(hash.hmac(stored_key.expose(), auth_message.as_bytes())?);
        // With the proof and the exchange, anyone could recover the
        // client key and log in: it is wiped, and so is its encoding.
        let proof: Secret<Vec<u8>> = Secret::new(
            client_key
                .expose()
                .iter()
                .zip(client_signature.expose())
                .map(|(k, s)| k ^ s)
                .collect(),
        );
        let encoded_proof = Secret::new(BASE64.encode(proof.expose()));
        let server_key = Secret::new(hash.hmac(salted.expose(), b"Server Key")?);
        let server_signature = hash.hmac(server_key.expose(), auth_message.as_bytes())?;

        let mut message = without_proof.into_bytes();
        // Room for all of it first: growing after the proof is in would
        // leave a copy in the freed buffer.
        message.reserve(3 + encoded_proof.expose().len());
        message.extend_from_slice(b",p=");
        message.extend_from_slice(encoded_proof.expose().as_bytes());
        self.state = State::ClientFinalSent {
            server_signature: Secret::new(server_signature),
        };
        Ok(Secret::new(message))
    }
}

/// SCRAM's `printable`: ASCII 0x21..=0x7E except `,`.
fn is_printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Compares two byte strings without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The fields of a server-first message.
#[derive(Debug)]
struct ServerFirst<'a> {
    /// The combined nonce (client nonce followed by the server's part).
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

/// Parses `[m=ext,]r=nonce,s=salt,i=count[,ext...]`.
fn parse_server_first<'a>(
    message: &'a str,
    client_nonce: &str,
    (min_iterations, max_iterations): (u32, u32),
) -> Result<ServerFirst<'a>, SaslError> {
    let mut attributes = message.split(',');
    let first = attributes.next().unwrap_or("");
    if first.starts_with("m=") {
        return Err(SaslError::MalformedChallenge(
            "SCRAM server requires an unsupported extension (m=)",
        ));
    }
    if let Some(error) = first.strip_prefix("e=") {
        return Err(server_error(error));
    }

    let nonce = first
        .strip_prefix("r=")
        .ok_or(SaslError::MalformedChallenge("SCRAM server-first lacks r="))?;
    if !is_printable(nonce) {
        return Err(SaslError::MalformedChallenge(
            "SCRAM server nonce is not printable ASCII",
        ));
    }
    if nonce.len() <= client_nonce.len() || !nonce.starts_with(client_nonce) {
        return Err(SaslError::NonceMismatch);
    }

    let salt = attributes
        .next()
        .and_then(|a| a.strip_prefix("s="))
        .ok_or(SaslError::MalformedChallenge("SCRAM server-first lacks s="))?;
    let salt = BASE64
        .decode(salt)
        .map_err(|_| SaslError::MalformedChallenge("SCRAM salt is not valid base64"))?;
    if salt.is_empty() {
        return Err(SaslError::MalformedChallenge("SCRAM salt is empty"));
    }

    let count = attributes
        .next()
        .and_then(|a| a.strip_prefix("i="))
        .ok_or(SaslError::MalformedChallenge("SCRAM server-first lacks i="))?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SaslError::MalformedChallenge(
            "SCRAM iteration count is not a decimal number",
        ));
    }
    // All digits, so the only possible parse error is overflow.
    let iterations = count
        .parse::<u32>()
        .map_err(|_| SaslError::IterationCount(u32::MAX))?;
    if iterations == 0 || iterations > max_iterations {
        return Err(SaslError::IterationCount(iterations));
    }
    if iterations < min_iterations {
        return Err(SaslError::IterationCountBelowMinimum {
            count: iterations,
            minimum: min_iterations,
        });
    }
    // Any further attributes are optional extensions, which we ignore.
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

impl Mechanism for Scram {
    fn name(&self) -> &str {
        self.hash
            .mechanism_name(matches!(self.binding, Binding::Bound(_)))
    }

    fn exposes_credentials(&self) -> bool {
        false
    }

    /// Returns the client-first message. Must be called at most once, before any
    /// [`Mechanism::respond`].
    fn initial_response(&mut self) -> Result<Option<Secret<Vec<u8>>>, SaslError> {
        match self.state {
            State::Initial => match self.client_first() {
                Ok(message) => Ok(Some(message)),
                Err(e) => {
                    self.state = State::Failed;
                    Err(e)
                }
            },
            _ => Err(SaslError::UnexpectedChallenge),
        }
    }

    /// Answers the server-first message with the client-final message, then checks
    /// the server-final message and answers it with an empty response.
    ///
    /// An empty challenge before the server-first message asks for the
    /// client-first message (when the client core did not send it as an initial
    /// response). Any error ends the exchange.
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret<Vec<u8>>, SaslError> {
        // Until a step succeeds the exchange counts as failed, so any error ends it.
        let state = core::mem::replace(&mut self.state, State::Failed);
        match state {
            State::Initial if challenge.is_empty() => self.client_first(),
            State::Initial => Err(SaslError::MalformedChallenge(
                "SCRAM server sent a challenge before the client-first message",
            )),
            State::ClientFirstSent { .. } if challenge.is_empty() => self.client_first(),
            State::ClientFirstSent {
                cbind_input,
                client_first_bare,
            } => self.client_final(&cbind_input, &client_first_bare, challenge),
            State::ClientFinalSent { server_signature } => {
                check_server_final(challenge, server_signature.expose()).map(|()| {
                    self.state = State::Verified;
                    Secret::new(Vec::new())
                })
            }
            State::Verified | State::Failed => Err(SaslError::UnexpectedChallenge),
        }
    }

    /// Succeeds only if the server's signature has been verified.
    fn finish(&mut self) -> Result<(), SaslError> {
        match self.state {
            State::Verified => Ok(()),
            _ => Err(SaslError::Incomplete),
        }
    }
}

/// The server's `e=` report, under the one rule for server text
/// ([`Text::sanitize_str`]): it reaches callers and terminals.
fn server_error(report: &str) -> SaslError {
    SaslError::ServerError(Text::sanitize_str(report).into_string())
}

/// Checks `(e=error / v=verifier) [,extensions]`.
fn check_server_final(message: &[u8], expected: &[u8]) -> Result<(), SaslError> {
    let message = core::str::from_utf8(message)
        .map_err(|_| SaslError::MalformedChallenge("SCRAM server-final is not UTF-8"))?;
    let first = message.split(',').next().unwrap_or("");
    if let Some(error) = first.strip_prefix("e=") {
        return Err(server_error(error));
    }
    let verifier = first
        .strip_prefix("v=")
        .ok_or(SaslError::MalformedChallenge("SCRAM server-final lacks v="))?;
    let verifier = BASE64
        .decode(verifier)
        .map_err(|_| SaslError::MalformedChallenge("SCRAM verifier is not valid base64"))?;
    if constant_time_eq(&verifier, expected) {
        Ok(())
    } else {
        Err(SaslError::ServerSignatureMismatch)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;

    const SHA1_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
    const SHA1_SERVER_FIRST: &[u8] =
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const SHA1_CLIENT_FINAL: &[u8] =
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    const SHA1_SERVER_FINAL: &[u8] = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

    const SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SHA256_SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const SHA256_CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SHA256_SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn secret(s: &str) -> Secret<String> {
        Secret::new(String::from(s))
    }

    fn sha1(nonce: &str) -> Scram {
        Scram::sha1(String::from("user"), secret("pencil"), String::from(nonce)).unwrap()
    }

    fn sha256(nonce: &str) -> Scram {
        Scram::sha256(String::from("user"), secret("pencil"), String::from(nonce)).unwrap()
    }

    /// A SCRAM-SHA-1 exchange that has sent its client-first message.
    fn started_sha1() -> Scram {
        let mut m = sha1(SHA1_NONCE);
        m.initial_response().unwrap();
        m
    }

    #[test]
    fn rfc5802_sha1_vector() {
        let mut m = sha1(SHA1_NONCE);
        assert_eq!(m.name(), "SCRAM-SHA-1");
        assert!(!m.exposes_credentials());
        let first = m.initial_response().unwrap().unwrap();
        assert_eq!(
            first.expose().as_slice(),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
        let last = m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(last.expose().as_slice(), SHA1_CLIENT_FINAL);
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
        let empty = m.respond(SHA1_SERVER_FINAL).unwrap();
        assert!(empty.expose().is_empty());
        assert_eq!(m.finish(), Ok(()));
        assert_eq!(m.respond(b"").unwrap_err(), SaslError::UnexpectedChallenge);
        assert_eq!(
            m.respond(SHA1_SERVER_FINAL).unwrap_err(),
            SaslError::UnexpectedChallenge
        );
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let mut m = sha256(SHA256_NONCE);
        assert_eq!(m.name(), "SCRAM-SHA-256");
        assert!(!m.exposes_credentials());
        let first = m.initial_response().unwrap().unwrap();
        assert_eq!(
            first.expose().as_slice(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let last = m.respond(SHA256_SERVER_FIRST).unwrap();
        assert_eq!(last.expose().as_slice(), SHA256_CLIENT_FINAL);
        let empty = m.respond(SHA256_SERVER_FINAL).unwrap();
        assert!(empty.expose().is_empty());
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn client_first_sent_in_response_to_empty_challenge() {
        let mut m = sha1(SHA1_NONCE);
        let first = m.respond(b"").unwrap();
        assert_eq!(
            first.expose().as_slice(),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        assert_eq!(
            m.respond(SHA1_SERVER_FIRST).unwrap().expose().as_slice(),
            SHA1_CLIENT_FINAL
        );
        m.respond(SHA1_SERVER_FINAL).unwrap();
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn initial_response_only_once() {
        let mut m = started_sha1();
        assert!(m.initial_response().is_err());
    }

    #[test]
    fn wrong_server_signature() {
        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(
            m.respond(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap_err(),
            SaslError::ServerSignatureMismatch
        );
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
        // The SHA-256 signature has the wrong length for SHA-1.
        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(
            m.respond(SHA256_SERVER_FINAL).unwrap_err(),
            SaslError::ServerSignatureMismatch
        );
        // After a failure the exchange is over.
        assert_eq!(
            m.respond(SHA1_SERVER_FINAL).unwrap_err(),
            SaslError::UnexpectedChallenge
        );
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
    }

    #[test]
    fn wrong_password_gives_different_proof_and_signature_check_fails() {
        let mut m = Scram::sha1(
            String::from("user"),
            secret("pencil2"),
            String::from(SHA1_NONCE),
        )
        .unwrap();
        m.initial_response().unwrap();
        let last = m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_ne!(last.expose().as_slice(), SHA1_CLIENT_FINAL);
        assert_eq!(
            m.respond(SHA1_SERVER_FINAL).unwrap_err(),
            SaslError::ServerSignatureMismatch
        );
    }

    #[test]
    fn finish_before_verification() {
        let mut m = sha1(SHA1_NONCE);
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
        let mut m = started_sha1();
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
        m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(m.finish(), Err(SaslError::Incomplete));
    }

    #[test]
    fn iteration_count_limits() {
        let mut m = started_sha1();
        assert_eq!(
            m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=0")
                .unwrap_err(),
            SaslError::IterationCount(0)
        );
        let mut m = started_sha1();
        assert_eq!(
            m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1000001")
                .unwrap_err(),
            SaslError::IterationCount(1_000_001)
        );
        let mut m = started_sha1();
        assert_eq!(
            m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4294967295")
                .unwrap_err(),
            SaslError::IterationCount(u32::MAX)
        );
        let mut m = started_sha1();
        assert_eq!(
            m.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=99999999999999999999")
                .unwrap_err(),
            SaslError::IterationCount(u32::MAX)
        );
        let mut m = sha1(SHA1_NONCE).with_max_iterations(4095);
        m.initial_response().unwrap();
        assert_eq!(
            m.respond(SHA1_SERVER_FIRST).unwrap_err(),
            SaslError::IterationCount(4096)
        );
        let mut m = sha1(SHA1_NONCE).with_max_iterations(4096);
        m.initial_response().unwrap();
        assert_eq!(
            m.respond(SHA1_SERVER_FIRST).unwrap().expose().as_slice(),
            SHA1_CLIENT_FINAL
        );
    }

    #[test]
    fn malformed_iteration_count() {
        for bad in ["i=", "i=+5", "i=-1", "i=4096x", "i= 4096", "x=4096"] {
            let mut m = started_sha1();
            let msg = format!("r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,{bad}");
            assert!(
                matches!(
                    m.respond(msg.as_bytes()),
                    Err(SaslError::MalformedChallenge(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn nonce_must_extend_ours() {
        for nonce in [
            "fyko+d2lbbFgONRv9qkxdawL",       // not extended
            "fyko+d2lbbFgONRv9qkxdaw",        // shorter
            "Xyko+d2lbbFgONRv9qkxdawL3rfcNH", // different prefix
            "3rfcNHfyko+d2lbbFgONRv9qkxdawL", // ours, but not as the prefix
        ] {
            let mut m = started_sha1();
            let msg = format!("r={nonce},s=QSXCR+Q6sek8bf92,i=4096");
            assert_eq!(
                m.respond(msg.as_bytes()).unwrap_err(),
                SaslError::NonceMismatch,
                "{nonce}"
            );
        }
        let mut m = started_sha1();
        assert!(matches!(
            m.respond("r=fyko+d2lbbFgONRv9qkxdawL\u{e9}t,s=QSXCR+Q6sek8bf92,i=4096".as_bytes()),
            Err(SaslError::MalformedChallenge(_))
        ));
    }

    #[test]
    fn server_error_reports_are_safe_to_print() {
        let nasty = "e=no\x1b]0;owned\x07\x1b[2J\u{202e}deyalp\u{202c}\u{200b}\u{2066}x\u{2069}";
        let mut m = started_sha1();
        let first = m.respond(nasty.as_bytes()).unwrap_err();
        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        let last = m.respond(nasty.as_bytes()).unwrap_err();
        for error in [first, last] {
            let SaslError::ServerError(report) = &error else {
                panic!("{error:?}");
            };
            assert_eq!(
                report,
                "no\u{fffd}]0;owned\u{fffd}\u{fffd}[2J\u{fffd}deyalp\u{fffd}\u{fffd}\u{fffd}x\u{fffd}"
            );
            assert!(!format!("{error}").chars().any(Text::is_unsafe_char));
        }
    }

    #[test]
    fn server_errors() {
        let mut m = started_sha1();
        assert_eq!(
            m.respond(b"e=other-error").unwrap_err(),
            SaslError::ServerError(String::from("other-error"))
        );
        assert_eq!(m.finish(), Err(SaslError::Incomplete));

        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(
            m.respond(b"e=invalid-proof").unwrap_err(),
            SaslError::ServerError(String::from("invalid-proof"))
        );
        assert_eq!(m.finish(), Err(SaslError::Incomplete));

        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        assert_eq!(
            m.respond(b"e=other-error,x=ext").unwrap_err(),
            SaslError::ServerError(String::from("other-error"))
        );
    }

    #[test]
    fn mandatory_extension_is_rejected() {
        let mut m = started_sha1();
        assert!(matches!(
            m.respond(b"m=foo,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(SaslError::MalformedChallenge(_))
        ));
    }

    #[test]
    fn optional_extensions_are_ignored() {
        let mut m = started_sha1();
        let mut first = SHA1_SERVER_FIRST.to_vec();
        first.extend_from_slice(b",x=whatever");
        // The extension is part of AuthMessage, so the proof changes; just check it
        // is accepted.
        assert!(m.respond(&first).is_ok());
        let mut m = started_sha1();
        m.respond(SHA1_SERVER_FIRST).unwrap();
        let mut last = SHA1_SERVER_FINAL.to_vec();
        last.extend_from_slice(b",x=whatever");
        assert!(m.respond(&last).is_ok());
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn malformed_server_first() {
        for bad in [
            &b""[..],
            b"garbage",
            b"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=!!!,i=4096",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096,s=QSXCR+Q6sek8bf92",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096\xff",
        ] {
            let mut m = started_sha1();
            let r = m.respond(bad);
            // An empty challenge re-requests the client-first message.
            if bad.is_empty() {
                assert!(r.is_ok());
                continue;
            }
            assert!(
                matches!(r, Err(SaslError::MalformedChallenge(_))),
                "{:?}: {r:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn malformed_server_final() {
        for bad in [&b""[..], b"x=1", b"v=!!!", b"\xff"] {
            let mut m = started_sha1();
            m.respond(SHA1_SERVER_FIRST).unwrap();
            assert!(
                matches!(m.respond(bad), Err(SaslError::MalformedChallenge(_))),
                "{bad:?}"
            );
            assert_eq!(m.finish(), Err(SaslError::Incomplete));
        }
    }

    #[test]
    fn challenge_before_client_first() {
        let mut m = sha1(SHA1_NONCE);
        assert!(matches!(
            m.respond(SHA1_SERVER_FIRST),
            Err(SaslError::MalformedChallenge(_))
        ));
    }

    #[test]
    fn authzid_and_escaping() {
        let mut m = Scram::sha256(
            String::from("us,er=1"),
            secret("pencil"),
            String::from(SHA256_NONCE),
        )
        .unwrap()
        .with_authzid(String::from("ad=min,x"));
        let first = m.initial_response().unwrap().unwrap();
        assert_eq!(
            first.expose().as_slice(),
            b"n,a=ad=3Dmin=2Cx,n=us=2Cer=3D1,r=rOprNGfwEbeRWgbNEkqO"
        );
        let last = m.respond(SHA256_SERVER_FIRST).unwrap();
        let expected_c = format!("c={},", BASE64.encode("n,a=ad=3Dmin=2Cx,"));
        assert!(last.expose().starts_with(expected_c.as_bytes()));
    }

    #[test]
    fn invalid_authzid_fails_initial_response() {
        let mut m = sha1(SHA1_NONCE).with_authzid(String::from("a\u{7}"));
        assert!(matches!(
            m.initial_response(),
            Err(SaslError::InvalidCredential(_))
        ));
    }

    #[test]
    fn nonce_validation() {
        for bad in ["", "a,b", "a b", "abc\u{e9}", "a\tb", "a\u{7f}"] {
            assert!(
                matches!(
                    Scram::sha1(String::from("u"), secret("p"), String::from(bad)),
                    Err(SaslError::InvalidCredential(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_are_prepared() {
        assert!(matches!(
            Scram::sha1(String::from("u\0"), secret("p"), String::from("n")),
            Err(SaslError::InvalidCredential(_))
        ));
        assert!(matches!(
            Scram::sha256(String::from("u"), secret("p\u{7}"), String::from("n")),
            Err(SaslError::InvalidCredential(_))
        ));
    }

    #[cfg(feature = "std")]
    #[test]
    fn saslprep_applies_to_the_password() {
        // U+00AD SOFT HYPHEN maps to nothing, so "pen\u{AD}cil" is "pencil".
        let mut m = Scram::sha1(
            String::from("user"),
            secret("pen\u{AD}cil"),
            String::from(SHA1_NONCE),
        )
        .unwrap();
        m.initial_response().unwrap();
        assert_eq!(
            m.respond(SHA1_SERVER_FIRST).unwrap().expose().as_slice(),
            SHA1_CLIENT_FINAL
        );
    }

    #[cfg(not(feature = "std"))]
    #[test]
    fn non_ascii_needs_std() {
        assert_eq!(
            Scram::sha1(String::from("user"), secret("p\u{e9}"), String::from("n")).unwrap_err(),
            SaslError::InvalidCredential("SASLprep needs the std feature for non-ASCII input")
        );
    }

    #[test]
    fn debug_redacts_password() {
        let m = Scram::sha1(String::from("u"), secret("hunter2"), String::from("n")).unwrap();
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("SCRAM-SHA-1"), "{dbg}");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
