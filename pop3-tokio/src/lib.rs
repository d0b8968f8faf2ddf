//! An async POP3 client for [tokio], with TLS by [tokio-rustls].
//!
//! ```no_run
//! use pop3_tokio::{connect_tls, MsgNum, Options};
//! use tokio::io::AsyncReadExt;
//!
//! # async fn run() -> Result<(), pop3_tokio::Error> {
//! let mut conn = connect_tls("pop.example.com", 995, &Options::new()).await?;
//! conn.login("alice", "secret").await?;
//! let stat = conn.stat().await?;
//! println!("{} messages, {} octets", stat.count, stat.size);
//! if let Some(first) = MsgNum::new(1) {
//!     let mut message = Vec::new();
//!     conn.retr(first).await?.read_to_end(&mut message).await?;
//! }
//! conn.quit().await?; // commits deletions; dropping `conn` would not
//! # Ok(()) }
//! ```
//!
//! This crate only moves bytes, does TLS and keeps time: every protocol
//! decision (what may be sent when, pipelining, parsing, SASL, refusing
//! credentials in plaintext) is made by the sans-IO core [`pop3_proto`]. The
//! same API exists as `pop3-blocking` (std I/O) and `pop3-smol` (futures-io).
//!
//! # Connecting
//!
//! - [`connect_tls`]: implicit TLS, port 995.
//! - [`connect_starttls`]: port 110, upgraded with `STLS` before anything else
//!   ([`Error::StlsUnavailable`] if the server does not offer it; there is no
//!   plaintext fallback).
//! - [`connect_plain`]: no TLS; logins are refused unless
//!   [`Options::allow_plaintext_auth`].
//! - [`Connection::new`]: over any `AsyncRead + AsyncWrite + Unpin` stream.
//!
//! Certificates are always verified, against the `webpki-roots` by default
//! ([`TlsOptions`]). Each read, write, connect and handshake has a time limit
//! ([`Timeouts`]); the timers need a tokio runtime with time enabled.
//!
//! # Cancellation
//!
//! The protocol state lives in the [`pop3_proto::Client`] inside the
//! [`Connection`], and the I/O code is written once as poll functions over it,
//! so dropping a future never corrupts the stream. But a dropped operation
//! leaves a command whose reply nobody reads, so **dropping any `Connection`
//! method's future after its first poll poisons the connection**: later calls
//! return [`Error::Closed`]. The [`MessageReader`] is the exception: drop it
//! at any point and the next operation drains the rest of the message. See
//! each method's "Cancel-safety" note.
//!
//! [tokio]: https://docs.rs/tokio
//! [tokio-rustls]: https://docs.rs/tokio-rustls

#![forbid(unsafe_code)]

mod connect;
mod runtime;

pub use connect::{connect_plain, connect_starttls, connect_tls, TcpConnection};
pub use pop3_transport::nonblocking::MessageSink;
pub use pop3_transport::{Error, Options, Phase, Result, Timeouts, TlsOptions};

pub use pop3_proto;
pub use pop3_proto::{
    Capabilities, Capability, Greeting, Language, Limits, ListEntry, MsgNum, ResponseCode, Secret,
    ServerError, Stat, UidlEntry,
};
pub use rustls;

use connect::tls_connect;
use runtime::{Io, Sleep};
use tokio_rustls::client::TlsStream;

// `Connection`, `MessageReader` and `MaybeTls`: the same API and documentation
// as `pop3-smol`, over the logic of `pop3_transport::nonblocking`.
pop3_transport::async_api! {
    io: Io,
    timer: Sleep,
    bounds: [tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin],
    writer: tokio::io::AsyncWrite,
    copy: tokio::io::copy,
    tls_stream: TlsStream,
    tls_connect: tls_connect,
    read_trait: "[`tokio::io::AsyncRead`]",
    race: "a `tokio::select!` or a `tokio::time::timeout`",
}
