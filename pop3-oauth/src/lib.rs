//! OAuth 2.0 for POP3 logins: getting an access token for Gmail or
//! Outlook.com / Microsoft 365 (or any provider whose endpoints are given),
//! keeping it, and refreshing it, for the SASL `XOAUTH2` login of the POP3
//! crates. Nothing here touches POP3 itself: the token this crate returns
//! is the password of an `XOAUTH2` login.
//!
//! * [`Preset`] / [`ProviderSettings`]: endpoints, scopes and the POP3
//!   server of each provider; every value can be changed (tenant, national
//!   clouds, single-tenant apps).
//! * [`AuthorizationRequest`]: the authorization code flow with PKCE (S256)
//!   and a loopback redirect on `127.0.0.1` (a random port, a `state`
//!   check) — what Google requires of desktop apps.
//! * [`DeviceAuthorization`]: the device code flow (Microsoft), for SSH
//!   sessions and machines without a browser. Google does not allow it for
//!   mail scopes, and [`DeviceAuthorization::start`] says so without asking.
//! * [`TokenStore`]: per-account token files, 0600, replaced atomically;
//!   [`TokenStore::access_token`] refreshes under a per-account file lock
//!   and saves a rotated refresh token at once. A refresh token the provider
//!   no longer takes is [`Error::RefreshTokenDead`].
//! * [`AccessTokenSource`]: how a long-lived session gets a fresh token for
//!   a new login.
//!
//! The project ships no client ID: users register their own application
//! with each provider ([`Client`]).
//!
//! **Unix only.** The token store relies on Unix file modes (0600 files in
//! a 0700 directory, set with `std::os::unix`) to keep tokens private, so
//! the crate builds on Unix-like systems alone; on others it fails to
//! compile rather than store tokens readable by anyone.
//!
//! # The HTTP client, and why it is this one
//!
//! OAuth needs one thing of HTTP here: post a small form, read a small JSON
//! answer. The crate does that with its own HTTP/1.1 client ([`http`]),
//! a few hundred lines over `std::net::TcpStream` and rustls (one `POST`,
//! `Content-Length`, chunked or read-to-close bodies; nothing else), rather
//! than a general client, because the rules a token client must keep are
//! easier to read and test in one small file than to configure in a large
//! dependency:
//!
//! * it uses the workspace's single rustls crypto provider
//!   ([`pop3_transport::crypto_provider`], aws-lc-rs) and can never pull in
//!   a second (two providers in one build make rustls' default builder
//!   panic);
//! * it never follows a redirect (a redirected token request is how secrets
//!   leak and internal addresses get probed);
//! * the head and the body of an answer are bounded ([`http::Limits`]),
//!   and one deadline covers connecting, sending and receiving;
//! * `http://` is refused except to a loopback address;
//! * it adds no async runtime and no new TLS stack to the workspace.
//!
//! The `oauth2` crate was considered: it would bring its own HTTP client
//! choice and its own types for what is, here, four form posts. `ureq`
//! (with `rustls-no-provider`) would do the HTTP, but every rule above would
//! still be this crate's to configure and test; owning the small client
//! keeps them in one readable place.
//!
//! # Secrets
//!
//! Tokens, codes, verifiers and client secrets are [`Secret`]s: `Debug`
//! prints a redaction, the memory is wiped on drop, and no [`Error`] holds
//! one (texts quoted from a provider are shortened and cleaned).

#![forbid(unsafe_code)]

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

mod authorization;
mod device;
mod error;
pub mod http;
mod provider;
mod secret;
mod store;
mod token;

pub use authorization::{pkce_challenge, AuthorizationRequest};
pub use device::{DeviceAuthorization, Poll, SLOW_DOWN_STEP};
pub use error::{DeadReason, Error};
pub use http::HttpClient;
pub use provider::{Client, Preset, ProviderSettings};
pub use secret::Secret;
pub use store::{Refreshed, StoredTokens, TokenStore, LOCK_WAIT, REFRESH_MARGIN};
pub use token::{now, refresh, Tokens};

/// The version of the token file format this crate writes.
pub const STORE_VERSION: u32 = 1;

/// Where a long-lived session gets an access token each time it logs in
/// (again): the token may have been refreshed since the last login.
pub trait AccessTokenSource {
    /// An access token good for a login now.
    fn access_token(&self) -> Result<Secret, Error>;
}

/// An account's stored tokens, refreshed as needed: the usual
/// [`AccessTokenSource`].
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The store.
    pub store: TokenStore,
    /// The account's name in the store.
    pub account: String,
    /// The HTTP client for refreshes.
    pub http: HttpClient,
    /// The provider.
    pub settings: ProviderSettings,
    /// The registered application.
    pub client: Client,
}

impl AccessTokenSource for StoredAccount {
    fn access_token(&self) -> Result<Secret, Error> {
        self.store
            .access_token(&self.account, &self.http, &self.settings, &self.client)
            .map(|(stored, _)| stored.tokens.access_token)
    }
}

impl<F: Fn() -> Result<Secret, Error>> AccessTokenSource for F {
    fn access_token(&self) -> Result<Secret, Error> {
        self()
    }
}

/// The tokens of a finished login, ready to be saved for `settings`.
pub fn to_store(settings: &ProviderSettings, tokens: Tokens) -> StoredTokens {
    StoredTokens {
        version: STORE_VERSION,
        provider: settings
            .preset
            .map_or_else(|| "custom".to_owned(), |preset| preset.name().to_owned()),
        token_endpoint: settings.token_endpoint.clone(),
        tokens,
    }
}
