//! Composite operations: one handle for a sequence of commands whose next
//! step depends on the replies so far (a login that chooses its mechanism,
//! STLS that first checks the capabilities).
//!
//! An operation is started when everything submitted before it has gone into
//! the queue, and everything submitted after it waits until it completes: the
//! operation may need a reply (CAPA) before it knows what to send, and what
//! comes after assumes it succeeded. Its sub-commands' events never reach the
//! caller; the operation's own handle completes with one event.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::pipeline::{Expect, Queued};
use super::{Client, Event, Handle, Reply};
use crate::command::{check_argument, Command};
use crate::sasl::{self, ChannelBinding, Mechanism, SaslError};
use crate::types::{Capabilities, ResponseCode};
use crate::{ProtocolError, Secret, Text, UsageError};

/// How [`Client::login_with`] logs in.
#[non_exhaustive]
pub enum AuthMethod {
    /// The strongest method the server offers, in this order:
    /// SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS (with a
    /// [`Credentials::channel_binding`] on an encrypted connection),
    /// SCRAM-SHA-256, SCRAM-SHA-1 (with a [`Credentials::scram_nonce`]),
    /// CRAM-MD5, APOP (when the greeting carries a timestamp), PLAIN, LOGIN,
    /// and USER/PASS. The core asks `CAPA` first when it does not know the
    /// capabilities yet.
    ///
    /// When the server refuses a challenge-response mechanism with a plain
    /// `-ERR` (no response code: "not supported"), the next offered
    /// challenge-response mechanism is tried. Never after `[AUTH]` (the
    /// credentials are wrong) or any other code, and never down to a method
    /// that sends the password itself. When a channel binding is given but the
    /// server offers plain SCRAM only, SCRAM says so (the `y` flag), so a
    /// server that supports binding detects that its `-PLUS` offer was
    /// stripped on the way.
    Auto,
    /// `USER` and `PASS` (RFC 1939).
    UserPass,
    /// `APOP` with the greeting's timestamp (RFC 1939).
    Apop,
    /// `AUTH PLAIN` (RFC 4616).
    Plain,
    /// `AUTH LOGIN`.
    Login,
    /// `AUTH CRAM-MD5` (RFC 2195).
    CramMd5,
    /// `AUTH SCRAM-SHA-1` (RFC 5802); needs a [`Credentials::scram_nonce`].
    ScramSha1,
    /// `AUTH SCRAM-SHA-256` (RFC 7677); needs a [`Credentials::scram_nonce`].
    ScramSha256,
    /// `AUTH SCRAM-SHA-1-PLUS` (RFC 5802): bound to the TLS channel; needs a
    /// [`Credentials::scram_nonce`] and a [`Credentials::channel_binding`].
    ScramSha1Plus,
    /// `AUTH SCRAM-SHA-256-PLUS`: bound to the TLS channel; needs a
    /// [`Credentials::scram_nonce`] and a [`Credentials::channel_binding`].
    ScramSha256Plus,
    /// `AUTH XOAUTH2`; the secret is an OAuth 2.0 access token.
    XOAuth2,
    /// `AUTH OAUTHBEARER` (RFC 7628); the secret is an OAuth 2.0 access token.
    OAuthBearer,
    /// Your own SASL mechanism; the credentials' user and secret are not used.
    Mechanism(Box<dyn Mechanism>),
}

impl core::fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AuthMethod::Mechanism(m) => write!(f, "Mechanism({})", m.name()),
            other => f.write_str(other.name()),
        }
    }
}

impl AuthMethod {
    /// The method with this name, in any case: `auto`, `user`, `apop`,
    /// `plain`, `login`, `cram-md5`, `scram-sha-1`, `scram-sha-256`,
    /// `xoauth2`, `oauthbearer`.
    ///
    /// ```
    /// use pop3_proto::AuthMethod;
    /// assert!(matches!(AuthMethod::from_name("SCRAM-SHA-256"), Some(AuthMethod::ScramSha256)));
    /// assert!(AuthMethod::from_name("kerberos").is_none());
    /// ```
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        let lower = |n: &str| name.eq_ignore_ascii_case(n);
        Some(match () {
            _ if lower("auto") => AuthMethod::Auto,
            _ if lower("user") => AuthMethod::UserPass,
            _ if lower("apop") => AuthMethod::Apop,
            _ if lower("plain") => AuthMethod::Plain,
            _ if lower("login") => AuthMethod::Login,
            _ if lower("cram-md5") => AuthMethod::CramMd5,
            _ if lower("scram-sha-1") => AuthMethod::ScramSha1,
            _ if lower("scram-sha-256") => AuthMethod::ScramSha256,
            _ if lower("scram-sha-1-plus") => AuthMethod::ScramSha1Plus,
            _ if lower("scram-sha-256-plus") => AuthMethod::ScramSha256Plus,
            _ if lower("xoauth2") => AuthMethod::XOAuth2,
            _ if lower("oauthbearer") => AuthMethod::OAuthBearer,
            _ => return None,
        })
    }

    /// How traces and error messages name the method: `USER/PASS`, `APOP`,
    /// or the SASL mechanism name.
    pub fn name(&self) -> &str {
        match self {
            AuthMethod::Auto => "auto",
            AuthMethod::UserPass => "USER/PASS",
            AuthMethod::Apop => "APOP",
            AuthMethod::Plain => "PLAIN",
            AuthMethod::Login => "LOGIN",
            AuthMethod::CramMd5 => "CRAM-MD5",
            AuthMethod::ScramSha1 => "SCRAM-SHA-1",
            AuthMethod::ScramSha256 => "SCRAM-SHA-256",
            AuthMethod::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            AuthMethod::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            AuthMethod::XOAuth2 => "XOAUTH2",
            AuthMethod::OAuthBearer => "OAUTHBEARER",
            AuthMethod::Mechanism(m) => m.name(),
        }
    }
}

/// Who logs in, for [`Client::login_with`].
///
/// ```
/// use pop3_proto::Credentials;
/// let password = String::from("secret");
/// let credentials = Credentials::new("alice", &password).scram_nonce("rOprNGfwEbeRWgbNEkqO");
/// ```
pub struct Credentials {
    user: String,
    secret: Secret<String>,
    nonce: Option<String>,
    binding: Option<ChannelBinding>,
    /// The lowest SCRAM iteration count accepted (`None`: the default, 4096).
    scram_min_iterations: Option<u32>,
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &self.secret)
            .field("nonce", &self.nonce.is_some())
            .field("binding", &self.binding)
            .field("scram_min_iterations", &self.scram_min_iterations)
            .finish()
    }
}

impl Credentials {
    /// A user name and its password (or OAuth 2.0 token).
    pub fn new(user: impl Into<String>, secret: impl Into<Secret<String>>) -> Credentials {
        Credentials {
            user: user.into(),
            secret: secret.into(),
            nonce: None,
            binding: None,
            scram_min_iterations: None,
        }
    }

    /// The lowest SCRAM iteration count to accept from the server (default
    /// [`sasl::scram::DEFAULT_MIN_ITERATIONS`], 4096, as RFC 7677 asks). A
    /// server that asks for fewer fails the login with
    /// [`SaslError::IterationCountBelowMinimum`](sasl::SaslError::IterationCountBelowMinimum)
    /// before any key is derived. Lower it only for a server known to store
    /// its keys that way.
    #[must_use]
    pub fn scram_min_iterations(mut self, minimum: u32) -> Credentials {
        self.scram_min_iterations = Some(minimum);
        self
    }

    /// The TLS channel's binding data (`tls-exporter` on TLS 1.3,
    /// `tls-server-end-point` on TLS 1.2), which the transport obtains from
    /// its TLS library. With it, [`AuthMethod::Auto`] prefers the `-PLUS`
    /// SCRAM mechanisms.
    #[must_use]
    pub fn channel_binding(mut self, binding: ChannelBinding) -> Credentials {
        self.binding = Some(binding);
        self
    }

    /// Replaces the SCRAM nonce with another derived from it, for a second
    /// exchange in the same login: RFC 5802 wants each exchange to have its
    /// own. The core has no randomness, so the new nonce is a hash of the
    /// old one: as unpredictable to anyone who did not see the first (which
    /// travelled inside TLS), and never equal to it.
    fn renew_nonce(&mut self) {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        if let Some(nonce) = &self.nonce {
            let digest = Sha256::new()
                .chain_update(b"pop3 SCRAM retry nonce\0")
                .chain_update(nonce.as_bytes())
                .finalize();
            self.nonce = Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest));
        }
    }

    fn clone_for_retry(&self) -> Credentials {
        Credentials {
            user: self.user.clone(),
            secret: self.secret.clone(),
            nonce: self.nonce.clone(),
            binding: self.binding.clone(),
            scram_min_iterations: self.scram_min_iterations,
        }
    }

    /// A fresh random printable nonce for SCRAM (at least 18 random bytes,
    /// base64-encoded). The core has no randomness of its own: without a
    /// nonce, [`AuthMethod::Auto`] never picks SCRAM and an explicit SCRAM
    /// method is refused. With the `getrandom` feature,
    /// `Credentials::with_random_scram_nonce` sets one.
    #[must_use]
    pub fn scram_nonce(mut self, nonce: impl Into<String>) -> Credentials {
        self.nonce = Some(nonce.into());
        self
    }

    /// A fresh SCRAM client nonce from the operating system's random
    /// generator: 24 random bytes, base64-encoded (32 characters). Every
    /// driver takes its nonces from here.
    ///
    /// Only with the `getrandom` cargo feature (off by default; on
    /// `wasm32-unknown-unknown` it also needs getrandom's `js` feature).
    #[cfg(feature = "getrandom")]
    pub fn random_scram_nonce() -> Result<String, RandomUnavailable> {
        use base64::Engine as _;
        let mut bytes = [0u8; 24];
        getrandom::getrandom(&mut bytes).map_err(|_| RandomUnavailable)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Sets a fresh random SCRAM nonce ([`Credentials::random_scram_nonce`]),
    /// so that [`AuthMethod::Auto`] may choose SCRAM.
    ///
    /// ```
    /// use pop3_proto::Credentials;
    /// let credentials = Credentials::new("alice", "secret").with_random_scram_nonce()?;
    /// # Ok::<(), pop3_proto::RandomUnavailable>(())
    /// ```
    #[cfg(feature = "getrandom")]
    pub fn with_random_scram_nonce(self) -> Result<Credentials, RandomUnavailable> {
        Ok(self.scram_nonce(Credentials::random_scram_nonce()?))
    }
}

/// The operating system's random generator failed
/// ([`Credentials::random_scram_nonce`]).
#[cfg(feature = "getrandom")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

#[cfg(feature = "getrandom")]
impl core::fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the system random generator failed")
    }
}

#[cfg(all(feature = "getrandom", feature = "std"))]
impl std::error::Error for RandomUnavailable {}

/// A composite operation in progress or waiting for its turn.
pub(super) struct Operation {
    pub(super) handle: Handle,
    kind: Kind,
    stage: Stage,
    /// Handles of the commands the operation submitted.
    subs: Vec<Handle>,
}

enum Kind {
    Login {
        credentials: Credentials,
        method: Option<AuthMethod>,
        /// For [`AuthMethod::Auto`]: the next mechanisms to try when one is
        /// refused as unsupported.
        fallback: VecDeque<Pick>,
        /// What [`AuthMethod::Auto`] is trying now.
        current: Option<Pick>,
    },
    StartTls,
}

/// A method [`AuthMethod::Auto`] may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    ScramSha256Plus,
    ScramSha1Plus,
    ScramSha256,
    ScramSha1,
    CramMd5,
    Apop,
    Plain,
    Login,
    UserPass,
}

impl Pick {
    fn method(self) -> AuthMethod {
        match self {
            Pick::ScramSha256Plus => AuthMethod::ScramSha256Plus,
            Pick::ScramSha1Plus => AuthMethod::ScramSha1Plus,
            Pick::ScramSha256 => AuthMethod::ScramSha256,
            Pick::ScramSha1 => AuthMethod::ScramSha1,
            Pick::CramMd5 => AuthMethod::CramMd5,
            Pick::Apop => AuthMethod::Apop,
            Pick::Plain => AuthMethod::Plain,
            Pick::Login => AuthMethod::Login,
            Pick::UserPass => AuthMethod::UserPass,
        }
    }

    /// Challenge-response: the password itself never crosses the wire.
    fn keeps_password(self) -> bool {
        !matches!(self, Pick::Plain | Pick::Login | Pick::UserPass)
    }

    /// For a `-PLUS` SCRAM: the same SCRAM without channel binding.
    fn unbound(self) -> Option<Pick> {
        match self {
            Pick::ScramSha256Plus => Some(Pick::ScramSha256),
            Pick::ScramSha1Plus => Some(Pick::ScramSha1),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Stage {
    /// Not started: commands before it are still being queued.
    Waiting,
    /// Waiting for the core's `CAPA` before choosing what to send.
    Capabilities,
    /// The login commands are queued or in flight.
    LoggingIn,
    /// Logged in; waiting for the `CAPA` the core asks after login.
    SettlingLogin(Text),
    /// `STLS` is queued or in flight.
    Stls,
    /// `STLS` was accepted; waiting for TLS and the `CAPA` after it.
    SettlingTls,
}

/// What the active operation did with an event of one of its commands.
pub(super) enum Routed {
    /// Not one of its commands' events: report it.
    Foreign(Event<'static>),
    /// Consumed.
    Consumed,
}

impl Operation {
    pub(super) fn login(handle: Handle, credentials: Credentials, method: AuthMethod) -> Self {
        Operation {
            handle,
            kind: Kind::Login {
                credentials,
                method: Some(method),
                fallback: VecDeque::new(),
                current: None,
            },
            stage: Stage::Waiting,
            subs: Vec::new(),
        }
    }

    pub(super) fn start_tls(handle: Handle) -> Self {
        Operation {
            handle,
            kind: Kind::StartTls,
            stage: Stage::Waiting,
            subs: Vec::new(),
        }
    }
}

/// Checks credentials before anything is queued.
pub(super) fn check_login(
    client: &Client,
    credentials: &Credentials,
    method: &AuthMethod,
) -> Result<(), UsageError> {
    if client.projection.state != super::State::Authorization {
        return Err(UsageError::WrongState {
            command: "login",
            reason: "only before login",
        });
    }
    // Stricter than single AUTH commands: even a challenge-response exchange
    // gives an eavesdropper something to crack offline, and the mail that
    // follows would travel in the clear too.
    // A caller's own mechanism says itself whether it reveals a credential.
    let credentials_ok = client.projection.encrypted || client.config.allow_plaintext_credentials;
    let exposes = match method {
        AuthMethod::Mechanism(mechanism) => mechanism.exposes_credentials(),
        _ => true,
    };
    if exposes && !credentials_ok {
        return Err(UsageError::PlaintextCredentials);
    }
    if matches!(method, AuthMethod::Mechanism(_)) {
        return Ok(());
    }
    check_argument(&credentials.user, "empty user name")?;
    // The secret goes on a command line only for USER/PASS; SASL carries it
    // on a response line of its own, where an OAuth token of real length
    // (2,000 characters and more) must fit.
    match method {
        AuthMethod::UserPass => check_argument(credentials.secret.expose(), "empty password")?,
        _ => check_secret(credentials.secret.expose())?,
    }
    let plus = matches!(
        method,
        AuthMethod::ScramSha1Plus | AuthMethod::ScramSha256Plus
    );
    if (plus || matches!(method, AuthMethod::ScramSha1 | AuthMethod::ScramSha256))
        && credentials.nonce.is_none()
    {
        return Err(UsageError::InvalidArgument("SCRAM needs a client nonce"));
    }
    if plus && credentials.binding.is_none() {
        return Err(UsageError::InvalidArgument(
            "SCRAM-PLUS needs the TLS channel binding",
        ));
    }
    if matches!(method, AuthMethod::Apop) {
        if credentials.user.contains(' ') {
            return Err(UsageError::InvalidArgument(
                "APOP user name contains a space",
            ));
        }
        if let Some(greeting) = &client.greeting {
            if greeting.apop_timestamp.is_none() {
                return Err(UsageError::NoApopTimestamp);
            }
        }
    }
    Ok(())
}

/// The longest password or token a SASL login takes: far above any OAuth
/// 2.0 access token seen (Microsoft's are about 2,500 characters), and
/// small enough that its response line stays a bounded write.
pub(crate) const MAX_SECRET: usize = 64 * 1024;

/// A password or token that travels in a SASL response, not on a command
/// line: not empty, no line breaks or NUL, at most [`MAX_SECRET`] bytes.
fn check_secret(secret: &str) -> Result<(), UsageError> {
    if secret.is_empty() {
        return Err(UsageError::InvalidArgument("empty password"));
    }
    if secret.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(UsageError::InvalidArgument(
            "password contains CR, LF or NUL",
        ));
    }
    if secret.len() > MAX_SECRET {
        return Err(UsageError::InvalidArgument(
            "password or token longer than 64 KiB",
        ));
    }
    Ok(())
}

/// What [`AuthMethod::Auto`] may use, strongest first: the first is used,
/// and the challenge-response ones after it are the fallbacks.
fn candidates(
    capabilities: Option<&Capabilities>,
    apop: bool,
    nonce: bool,
    binding: bool,
) -> VecDeque<Pick> {
    let offered = |name: &str| capabilities.is_some_and(|c| c.has_sasl(name));
    let mut picks = VecDeque::new();
    let ranked = [
        (
            Pick::ScramSha256Plus,
            nonce && binding && offered("SCRAM-SHA-256-PLUS"),
        ),
        (
            Pick::ScramSha1Plus,
            nonce && binding && offered("SCRAM-SHA-1-PLUS"),
        ),
        (Pick::ScramSha256, nonce && offered("SCRAM-SHA-256")),
        (Pick::ScramSha1, nonce && offered("SCRAM-SHA-1")),
        (Pick::CramMd5, offered("CRAM-MD5")),
        (Pick::Apop, apop),
        (Pick::Plain, offered("PLAIN")),
        (Pick::Login, offered("LOGIN")),
    ];
    for (pick, usable) in ranked {
        if usable {
            picks.push_back(pick);
        }
    }
    picks.push_back(Pick::UserPass);
    // Fallbacks stay among challenge-response methods.
    let first = picks.pop_front().unwrap_or(Pick::UserPass);
    picks.retain(|p| p.keeps_password());
    picks.push_front(first);
    picks
}

/// The SASL mechanism for a method, or `None` for USER/PASS and APOP.
/// `stripped`: the client could bind to the channel but the server's
/// capabilities do not list the `-PLUS` variant, so plain SCRAM sets the `y`
/// flag (RFC 5802 section 6) and a server that does support binding can tell
/// that its offer was removed on the way.
fn mechanism(
    method: AuthMethod,
    credentials: &Credentials,
    stripped: bool,
) -> Result<Option<Box<dyn Mechanism>>, UsageError> {
    let user = credentials.user.clone();
    let secret = credentials.secret.clone();
    let nonce = || credentials.nonce.clone().unwrap_or_default();
    let min_iterations = credentials
        .scram_min_iterations
        .unwrap_or(sasl::scram::DEFAULT_MIN_ITERATIONS);
    let sasl_error = UsageError::Sasl;
    Ok(Some(match method {
        AuthMethod::Auto | AuthMethod::UserPass | AuthMethod::Apop => return Ok(None),
        AuthMethod::Plain => Box::new(sasl::Plain::new(None, user, secret).map_err(sasl_error)?),
        AuthMethod::Login => Box::new(sasl::Login::new(user, secret)),
        AuthMethod::CramMd5 => Box::new(sasl::CramMd5::new(user, secret)),
        AuthMethod::ScramSha1 => Box::new(
            sasl::Scram::sha1(user, secret, nonce())
                .map_err(sasl_error)?
                .with_binding_supported(stripped)
                .with_min_iterations(min_iterations),
        ),
        AuthMethod::ScramSha256 => Box::new(
            sasl::Scram::sha256(user, secret, nonce())
                .map_err(sasl_error)?
                .with_binding_supported(stripped)
                .with_min_iterations(min_iterations),
        ),
        AuthMethod::ScramSha1Plus | AuthMethod::ScramSha256Plus => {
            let binding = credentials
                .binding
                .clone()
                .ok_or(UsageError::InvalidArgument(
                    "SCRAM-PLUS needs the TLS channel binding",
                ))?;
            let scram = if matches!(method, AuthMethod::ScramSha1Plus) {
                sasl::Scram::sha1_plus(user, secret, nonce(), binding)
            } else {
                sasl::Scram::sha256_plus(user, secret, nonce(), binding)
            };
            Box::new(
                scram
                    .map_err(sasl_error)?
                    .with_min_iterations(min_iterations),
            )
        }
        AuthMethod::XOAuth2 => Box::new(sasl::XOauth2::new(user, secret).map_err(sasl_error)?),
        AuthMethod::OAuthBearer => {
            Box::new(sasl::OAuthBearer::new(user, secret).map_err(sasl_error)?)
        }
        AuthMethod::Mechanism(m) => m,
    }))
}

impl Client {
    /// Gives the TLS channel binding to the logins submitted without one
    /// that have not chosen their mechanism yet: a login queued behind
    /// [`Client::start_tls`], submitted before the handshake could yield
    /// the binding, so that it can still use the `-PLUS` mechanisms. Call it
    /// right after [`Client::tls_established`]. Returns how many logins
    /// took it.
    pub fn bind_pending_logins(&mut self, binding: &ChannelBinding) -> usize {
        let active = self
            .operation
            .iter_mut()
            .filter(|op| matches!(op.stage, Stage::Waiting | Stage::Capabilities));
        let waiting = self.backlog.iter_mut().filter_map(|item| match item {
            super::Backlog::Operation(op) => Some(op),
            super::Backlog::Command(_) => None,
        });
        let mut bound = 0;
        for op in active.chain(waiting) {
            if let Kind::Login { credentials, .. } = &mut op.kind {
                if credentials.binding.is_none() {
                    credentials.binding = Some(binding.clone());
                    bound += 1;
                }
            }
        }
        bound
    }

    /// The core's own `CAPA` is queued or waiting for its reply.
    fn internal_capa_pending(&self) -> bool {
        let internal = |e: &Expect| matches!(e, Expect::Capa { internal: true });
        self.queue.iter().any(|q| internal(&q.expect))
            || self.in_flight.iter().any(|f| internal(&f.expect))
    }

    /// Queues a command on behalf of the active operation, bypassing the
    /// state checks (the operation checked its inputs when submitted).
    fn queue_sub(&mut self, command: Command) -> Result<Handle, UsageError> {
        let expect = Expect::of(&command);
        let handle = self.new_handle();
        let (command, initial) = match command {
            Command::Auth(mut mechanism) => {
                let initial = mechanism.initial_response().map_err(UsageError::Sasl)?;
                (Command::Auth(mechanism), initial)
            }
            other => (other, None),
        };
        self.queue.push_back(Queued {
            handle,
            command,
            expect,
            initial,
        });
        if let Some(op) = &mut self.operation {
            op.subs.push(handle);
        }
        self.fill_window();
        Ok(handle)
    }

    /// Makes the active operation progress as far as the facts allow; called
    /// from `poll` before reading.
    pub(super) fn advance_operation(&mut self) {
        loop {
            let Some(op) = &mut self.operation else {
                return;
            };
            let stage = core::mem::replace(&mut op.stage, Stage::Waiting);
            let next = match stage {
                Stage::Waiting => self.start_operation(),
                Stage::Capabilities if self.internal_capa_pending() => Stage::Capabilities,
                Stage::Capabilities => self.decide(),
                Stage::SettlingLogin(text)
                    if self.internal_capa_pending() || !self.in_flight_of_op_done() =>
                {
                    Stage::SettlingLogin(text)
                }
                Stage::SettlingLogin(text) => {
                    self.finish_operation(Ok(Reply::Authenticated(text)));
                    continue;
                }
                Stage::SettlingTls
                    if self.tls_pending || !self.encrypted || self.internal_capa_pending() =>
                {
                    Stage::SettlingTls
                }
                Stage::SettlingTls => {
                    self.finish_operation(Ok(Reply::TlsEstablished));
                    continue;
                }
                other => other,
            };
            if let Some(op) = &mut self.operation {
                if matches!(op.stage, Stage::Waiting) {
                    op.stage = next;
                }
            }
            return;
        }
    }

    /// The active login may try another mechanism after a plain `-ERR`.
    fn can_fall_back(&self) -> bool {
        matches!(
            &self.operation,
            Some(Operation {
                kind: Kind::Login { fallback, .. },
                stage: Stage::LoggingIn,
                ..
            }) if !fallback.is_empty()
        )
    }

    /// The active [`AuthMethod::Auto`] login may retry a refused `-PLUS`
    /// SCRAM without channel binding: the refusal is `[AUTH]` or has no code
    /// (a server that cannot bind answers so, like a wrong password; any
    /// other code says "not now", which another try would not change), and
    /// it is the first retry of this kind.
    /// The refusal is the server's `-ERR` (`[AUTH]` or no code), or its SCRAM
    /// `e=` error, never the client's own finding (a server signature that
    /// does not match ends the login).
    fn unbound_retry(&self, event: &Event<'_>) -> Option<Pick> {
        let Some(Operation {
            kind: Kind::Login { current, .. },
            stage: Stage::LoggingIn,
            ..
        }) = &self.operation
        else {
            return None;
        };
        let refused = match event {
            Event::Err { error, .. } => matches!(error.code, None | Some(ResponseCode::Auth)),
            Event::Failed {
                error: ProtocolError::Sasl(SaslError::ServerError(_)),
                ..
            } => true,
            _ => false,
        };
        if !refused {
            return None;
        }
        current.and_then(Pick::unbound)
    }

    /// Every sub-command of the active operation has been answered.
    fn in_flight_of_op_done(&self) -> bool {
        let Some(op) = &self.operation else {
            return true;
        };
        !self
            .in_flight
            .iter()
            .map(|f| f.handle)
            .chain(self.queue.iter().map(|q| q.handle))
            .any(|h| op.subs.contains(&h))
    }

    fn start_operation(&mut self) -> Stage {
        let Some(op) = &self.operation else {
            return Stage::Waiting;
        };
        if matches!(op.kind, Kind::Login { .. }) {
            self.login_attempts.clear();
        }
        let Some(op) = &self.operation else {
            return Stage::Waiting;
        };
        let needs_capabilities = match &op.kind {
            Kind::Login { method, .. } => matches!(method, Some(AuthMethod::Auto)),
            Kind::StartTls => true,
        };
        if needs_capabilities && self.capabilities.is_none() && self.capa.may_ask() {
            if !self.internal_capa_pending() {
                self.queue_internal_capa();
                self.fill_window();
            }
            return Stage::Capabilities;
        }
        self.decide()
    }

    /// The capabilities are as known as they will be: send the operation's
    /// commands.
    fn decide(&mut self) -> Stage {
        let Some(op) = &mut self.operation else {
            return Stage::Waiting;
        };
        let handle = op.handle;
        let (credentials, method) = match &mut op.kind {
            Kind::StartTls => {
                if !self.capabilities.as_ref().is_some_and(Capabilities::stls) {
                    let reason = UsageError::StlsUnavailable;
                    self.fail_operation(Event::Cancelled { handle, reason });
                    return Stage::Waiting;
                }
                return match self.queue_sub(Command::Stls) {
                    Ok(_) => Stage::Stls,
                    Err(reason) => self.refuse(reason),
                };
            }
            Kind::Login {
                credentials,
                method,
                fallback,
                current,
            } => {
                let method = match method.take() {
                    Some(AuthMethod::Auto) => {
                        let apop = self
                            .greeting
                            .as_ref()
                            .is_some_and(|g| g.apop_timestamp.is_some());
                        let binding = credentials.binding.is_some() && self.encrypted;
                        let nonce = credentials.nonce.is_some();
                        let caps = self.capabilities.as_ref();
                        *fallback = candidates(caps, apop, nonce, binding);
                        *current = Some(fallback.pop_front().unwrap_or(Pick::UserPass));
                        current.map_or(AuthMethod::UserPass, Pick::method)
                    }
                    Some(other) => other,
                    // Retrying: the next fallback.
                    None => match fallback.pop_front() {
                        Some(pick) => {
                            *current = Some(pick);
                            pick.method()
                        }
                        None => return Stage::Waiting,
                    },
                };
                (credentials.clone_for_retry(), method)
            }
        };
        self.login_attempts.push(String::from(method.name()));
        // Only when the capabilities are known: a server that was never
        // asked may support binding, and the flag would make it refuse.
        let stripped = credentials.binding.is_some()
            && self.encrypted
            && self.capabilities.as_ref().is_some_and(|caps| {
                let plus = alloc::format!("{}-PLUS", method.name());
                !caps.has_sasl(&plus)
            });
        let queued = match method {
            // `auto` checked the secret for SASL; USER/PASS puts it on a line.
            AuthMethod::UserPass => check_argument(credentials.secret.expose(), "empty password")
                .and_then(|()| self.queue_sub(Command::User(credentials.user)))
                .and_then(|_| self.queue_sub(Command::Pass(credentials.secret))),
            AuthMethod::Apop => self.queue_sub(Command::Apop {
                user: credentials.user,
                password: credentials.secret,
            }),
            other => match mechanism(other, &credentials, stripped) {
                Ok(Some(mechanism)) => self.queue_sub(Command::Auth(mechanism)),
                Ok(None) => Err(UsageError::InvalidArgument("login method")),
                Err(error) => Err(error),
            },
        };
        match queued {
            Ok(_) => Stage::LoggingIn,
            Err(reason) => self.refuse(reason),
        }
    }

    /// The operation cannot go on for a reason of the caller's.
    fn refuse(&mut self, reason: UsageError) -> Stage {
        if let Some(op) = &self.operation {
            let handle = op.handle;
            self.fail_operation(Event::Cancelled { handle, reason });
        }
        Stage::Waiting
    }

    /// Hands an event of one of the active operation's commands to it.
    pub(super) fn route(&mut self, event: Event<'static>) -> Routed {
        let Some(op) = &mut self.operation else {
            return Routed::Foreign(event);
        };
        let Some(handle) = completed_handle(&event) else {
            return Routed::Foreign(event);
        };
        if !op.subs.contains(&handle) {
            return Routed::Foreign(event);
        }
        let own = op.handle;
        if let Some(retry) = self.unbound_retry(&event) {
            // Some servers offer `-PLUS` and then cannot bind to the channel
            // (Cyrus on TLS 1.3, where its binding type does not exist). One
            // retry with the same SCRAM, unbound, and with no other method:
            // the offer came inside verified TLS (SECURITY.md).
            if let Some(Operation {
                kind:
                    Kind::Login {
                        credentials,
                        method,
                        fallback,
                        current,
                    },
                ..
            }) = &mut self.operation
            {
                fallback.clear();
                *current = None;
                *method = Some(retry.method());
                credentials.renew_nonce();
            }
            self.projection.state = super::State::Transaction;
            self.projection.user_given = false;
            self.decide();
            return Routed::Consumed;
        }
        let Some(op) = &mut self.operation else {
            return Routed::Foreign(event);
        };
        match event {
            Event::Ok { reply, .. } => match reply {
                Reply::Authenticated(text) => op.stage = Stage::SettlingLogin(text),
                Reply::StartTls => op.stage = Stage::SettlingTls,
                _ => {}
            },
            // Dropped because an earlier step of the same operation failed,
            // which is what the operation reports.
            Event::Cancelled {
                reason: UsageError::Cancelled,
                ..
            } => {}
            Event::Err { error, .. } if error.code.is_none() && self.can_fall_back() => {
                // Refused as unsupported: the next offered mechanism. The
                // refusal reset the projection; the retry is a login again.
                if let Some(Operation {
                    kind: Kind::Login { credentials, .. },
                    ..
                }) = &mut self.operation
                {
                    credentials.renew_nonce();
                }
                self.projection.state = super::State::Transaction;
                self.projection.user_given = false;
                self.decide();
            }
            Event::Err { error, .. } => self.fail_operation(Event::Err { handle: own, error }),
            Event::Failed { error, .. } => {
                self.fail_operation(Event::Failed { handle: own, error })
            }
            Event::Cancelled { reason, .. } => self.fail_operation(Event::Cancelled {
                handle: own,
                reason,
            }),
            _ => {}
        }
        Routed::Consumed
    }

    /// The session failed under the active operation. Events of its own
    /// commands may still be queued ahead of the error: they stay the
    /// operation's, never the caller's.
    pub(super) fn abandon_operation(&mut self) {
        if let Some(op) = self.operation.take() {
            self.finished_subs = op.subs;
        }
    }

    fn finish_operation(&mut self, reply: Result<Reply, ()>) {
        let Some(op) = self.operation.take() else {
            return;
        };
        self.finished_subs = op.subs;
        if let Ok(reply) = reply {
            self.events.push_back(Event::Ok {
                handle: op.handle,
                reply,
            });
        }
        self.release_backlog();
    }

    /// The active operation ends with `error` as its [`Event::Failed`].
    pub(super) fn fail_operation_with(&mut self, error: ProtocolError) {
        if let Some(handle) = self.operation.as_ref().map(|op| op.handle) {
            self.fail_operation(Event::Failed { handle, error });
        }
    }

    /// The operation failed: report it, and drop what was submitted after it,
    /// which assumed it would succeed.
    fn fail_operation(&mut self, event: Event<'static>) {
        let Some(op) = self.operation.take() else {
            return;
        };
        self.finished_subs = op.subs;
        self.events.push_back(event);
        for item in core::mem::take(&mut self.backlog) {
            let handle = match item {
                super::Backlog::Command(queued) => queued.handle,
                super::Backlog::Operation(op) => op.handle,
            };
            self.events.push_back(Event::Cancelled {
                handle,
                reason: UsageError::Cancelled,
            });
        }
        self.cancel_queue();
    }
}

/// The handle an event completes, if it completes one.
pub(super) fn completed_handle(event: &Event<'_>) -> Option<Handle> {
    match event {
        Event::Ok { handle, .. }
        | Event::Err { handle, .. }
        | Event::Failed { handle, .. }
        | Event::Cancelled { handle, .. } => Some(*handle),
        _ => None,
    }
}
