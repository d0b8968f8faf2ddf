//! Test support for the POP3 crates (not published).
//!
//! * [`pki`] — a throw-away CA and certificates (valid, wrong host, expired,
//!   unknown CA, self-signed) plus rustls configs, and certificates made with
//!   `openssl req -x509` as small servers make them ([`HomemadeCerts`]).
//! * [`cyrus`] — starts a real Cyrus POP3 server (Debian's package unpacked
//!   by `scripts/install-cyrus.sh`) on loopback, with SASL users and LMTP
//!   delivery, and [`cyrus_scenarios`], the suite every transport runs
//!   against it.
//! * [`dovecot`] — starts a real Dovecot POP3 server (plain + STLS and
//!   implicit TLS) on loopback with per-test users and Maildirs.
//! * [`scenarios`] — the scenario suite every transport runs (Dovecot and
//!   scripted faults).
//! * [`hostile`] — the hostile-server suite every transport runs.
//! * [`providers`] — scripted profiles of Microsoft 365, Gmail and a
//!   Courier-like server (OAuth logins, refusals, LOGIN-DELAY), and
//!   [`provider_scenarios`], the suite every transport runs against them.
//! * [`oauth`] — a scripted OAuth 2.0 authorization server (authorization,
//!   token and device endpoints, with faults) and a test browser.
//! * [`scripted`] — a thread-based scripted POP3 server for fault injection.
//! * [`socks5`] — a SOCKS5 proxy on loopback, working or faulty.
//! * [`transcript`] — RFC-style `C:`/`S:` transcripts that can drive the
//!   scripted server.

pub mod cyrus;
pub mod cyrus_scenarios;
pub mod dovecot;
pub mod hostile;
pub mod oauth;
pub mod pki;
pub mod provider_scenarios;
pub mod providers;
pub mod scenarios;
pub mod scripted;
pub mod socks5;
pub mod transcript;

pub use dovecot::{unique_user, Dovecot, DovecotOptions, Mailbox};
pub use pki::{rustls_server_config, CertKey, HomemadeCerts, TestPki};
pub use scripted::{ScriptConfig, ScriptedServer, Step};
pub use transcript::{Dir, Transcript};

/// The workspace README's examples (the library quick starts for blocking and
/// tokio, and the core), compiled as doctests exactly as written; those that
/// need a server are `no_run`. They are compiled here, in a crate that is
/// never published, because the README lies outside every published package.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;
