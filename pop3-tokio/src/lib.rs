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
//! The same over an in-memory pipe, with a pretend server on the other end
//! (this one runs as a doctest):
//!
//! ```
//! use pop3_tokio::{Connection, MaybeTls, MsgNum, Options};
//! use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, server) = tokio::io::duplex(4096);
//! tokio::spawn(async move {
//!     let (read, mut write) = tokio::io::split(server);
//!     let mut lines = BufReader::new(read).lines();
//!     write.write_all(b"+OK ready\r\n").await?;
//!     while let Some(line) = lines.next_line().await? {
//!         let reply: &[u8] = match line.as_str() {
//!             "RETR 1" => b"+OK\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n",
//!             "STAT" => b"+OK 1 22\r\n",
//!             _ => b"+OK\r\n", // USER, PASS, QUIT
//!         };
//!         write.write_all(reply).await?;
//!     }
//!     Ok::<_, std::io::Error>(())
//! });
//! // A pipe cannot be sniffed: declare it encrypted, or the password stays.
//! let options = Options::new().encrypted(true);
//! let mut conn = Connection::new(MaybeTls::Plain(client), &options).await?;
//! conn.login("alice", "secret").await?;
//! assert_eq!(conn.stat().await?.count, 1);
//! let mut message = Vec::new();
//! conn.retr(MsgNum::new(1).ok_or("no message 1")?).await?.read_to_end(&mut message).await?;
//! assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n"); // dot-unstuffed
//! conn.quit().await?;
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
//!   [`Options::allow_plaintext_credentials`].
//! - [`Connection::new`]: over any `AsyncRead + AsyncWrite + Unpin` stream,
//!   as `Connection::new(MaybeTls::Plain(stream), &options).await`.
//!
//! Each is awaited like any operation: `connect_tls(host, 995, &options).await?`.
//!
//! Certificates are always verified, against the operating system's roots by
//! default (your own, or a pinned certificate: [`TlsOptions`]). Each read, write, connect and handshake has a time limit
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

pub use connect::{connect_plain, connect_starttls, connect_tls};
pub use pop3_transport::runtime::tokio::{Tls, Tokio};
pub use pop3_transport::runtime::{IoResult, MessageSink};
pub use pop3_transport::{
    BulkDeletion, BulkRetrieval, CertFileError, CertificateInfo, Error, FingerprintError,
    FingerprintMismatch, Options, PeerCertificates, Phase, Result, Sha256Fingerprint, Timeouts,
    TlsOptions, TrustRoots,
};
pub use pop3_transport::{ErrorKind, IoContext, IoSubject};

pub use pop3_proto;
pub use pop3_proto::sasl::{self, Mechanism, SaslError};
pub use pop3_proto::{
    AuthMethod, Capabilities, Capability, Credentials, Greeting, Language, Limits, ListEntry,
    MsgNum, ProtocolError, ResponseCode, Secret, ServerError, Stat, Text, UidlEntry, UsageError,
};
pub use rustls;

/// A POP3 session on tokio: [`pop3_transport::Connection`] over a
/// [`MaybeTls`] stream (a [`tokio::net::TcpStream`] unless you bring your
/// own). Every method is documented there.
pub type Connection<S = tokio::net::TcpStream> = pop3_transport::Connection<MaybeTls<S>, Tokio>;

/// A message being read from a [`Connection`]: [`tokio::io::AsyncRead`].
pub type MessageReader<'c, S = tokio::net::TcpStream> =
    pop3_transport::MessageReader<'c, MaybeTls<S>, Tokio>;

/// A stream that is plaintext now and may become TLS in place (`STLS`):
/// [`pop3_transport::MaybeTls`] with this runtime's TLS stream.
pub type MaybeTls<S = tokio::net::TcpStream> = pop3_transport::MaybeTls<S, Tls<S>>;

/// A connection made by the connect functions.
pub type TcpConnection = Connection;

/// This crate's README's examples, compiled (and run where they need no
/// server) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
