//! A blocking POP3 client over any `std::io::Read + Write` stream, with TLS
//! from rustls.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::io::{self, Read, Write};
//! use pop3_blocking::{Connection, MaybeTls, MsgNum, Options, Wait};
//!
//! // A pretend server that answers each command line with the next reply.
//! struct Script { replies: VecDeque<&'static [u8]>, ready: Vec<u8> }
//! impl Read for Script {
//!     fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
//!         let n = buf.len().min(self.ready.len());
//!         buf[..n].copy_from_slice(&self.ready[..n]);
//!         self.ready.drain(..n);
//!         Ok(n)
//!     }
//! }
//! impl Write for Script {
//!     fn write(&mut self, data: &[u8]) -> io::Result<usize> {
//!         for _ in data.iter().filter(|&&b| b == b'\n') {
//!             self.ready.extend_from_slice(self.replies.pop_front().unwrap_or(b""));
//!         }
//!         Ok(data.len())
//!     }
//!     fn flush(&mut self) -> io::Result<()> { Ok(()) }
//! }
//!
//! let server = Script {
//!     ready: b"+OK POP3 server ready\r\n".to_vec(),
//!     replies: VecDeque::from([
//!         &b"+OK\r\n"[..],                                       // USER
//!         b"+OK logged in\r\n",                                  // PASS
//!         b"+OK 1 29\r\n",                                       // STAT
//!         b"+OK\r\nSubject: hello\r\n\r\n..a dot\r\n.\r\n",      // RETR 1
//!         b"+OK\r\nSubject: hello\r\n\r\n..a dot\r\n.\r\n",      // RETR 1 again
//!         b"+OK bye\r\n",                                        // QUIT
//!     ]),
//! };
//! // An in-memory pipe cannot be sniffed: declare it encrypted, or the client
//! // refuses to send the password.
//! let options = Options::new().encrypted(true);
//! let mut pop3 = Connection::new(MaybeTls::Plain(server), &options).wait()?;
//! pop3.login("alice", "secret").wait()?;
//! assert_eq!(pop3.stat().wait()?.count, 1);
//! let mut message = Vec::new();
//! pop3.retr(MsgNum::new(1).unwrap()).wait()?.read_to_end(&mut message)?;
//! assert_eq!(message, b"Subject: hello\r\n\r\n.a dot\r\n"); // dot-unstuffed
//! // The same into memory, refusing a message over 1 MiB:
//! assert_eq!(pop3.retr_vec(MsgNum::new(1).unwrap(), 1 << 20).wait()?, message);
//! pop3.quit().wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Over the network, with TLS (certificates are always verified):
//!
//! ```no_run
//! use pop3_blocking::{connect_tls, Options, Wait};
//!
//! let mut pop3 = connect_tls("pop.example.com", 995, &Options::new()).wait()?;
//! pop3.login("alice", "secret").wait()?;
//! for entry in pop3.list().wait()? {
//!     let mut out = std::io::stdout().lock();
//!     let size = pop3.retr_to(entry.msg, &mut out).wait()?;
//!     eprintln!("message {}: {size} bytes", entry.msg);
//! }
//! pop3.quit().wait()?; // only QUIT commits deletions
//! # Ok::<(), pop3_blocking::Error>(())
//! ```
//!
//! # Every call ends in `.wait()`, connecting too
//!
//! The operations are the same `async fn`s the tokio and smol crates use;
//! [`Wait::wait`] runs one to completion on the calling thread. The connect
//! functions are `async fn`s as well, so a session reads the same from its
//! first line to its last, and the same as on tokio with `.await` in place
//! of `.wait()`:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpListener;
//! use pop3_blocking::{connect_plain, Options, Wait};
//!
//! // A pretend server on a local port: a greeting, then `+OK` to each line.
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let port = listener.local_addr()?.port();
//! std::thread::spawn(move || -> std::io::Result<()> {
//!     let (socket, _) = listener.accept()?;
//!     let mut replies = socket.try_clone()?;
//!     replies.write_all(b"+OK POP3 server ready\r\n")?;
//!     for line in BufReader::new(socket).lines() {
//!         line?;
//!         replies.write_all(b"+OK\r\n")?;
//!     }
//!     Ok(())
//! });
//!
//! let pop3 = connect_plain("127.0.0.1", port, &Options::new()).wait()?;
//! assert_eq!(pop3.greeting().text.to_string(), "POP3 server ready");
//! pop3.quit().wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A call without `.wait()` does nothing at all: `connect_tls(..);` opens no
//! connection, and `pop3.quit();` sends no `QUIT`, so the server commits no
//! deletions. The compiler says so ("no connection is made until this is
//! run: add `.wait()` (or `.await`)", "nothing is sent until this is awaited
//! (`.await`, or `.wait()` with pop3-blocking)"), and a crate that denies
//! `unused_must_use` refuses to build:
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! fn close(pop3: pop3_blocking::Connection) {
//!     pop3.quit(); // forgot `.wait()`: QUIT is never sent
//! }
//! ```
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! fn open(options: &pop3_blocking::Options) {
//!     pop3_blocking::connect_tls("pop.example.com", 995, options); // forgot `.wait()`
//! }
//! ```
//!
//! Until it has run, what a connect function returns is not a connection:
//!
//! ```compile_fail
//! use pop3_blocking::{connect_tls, Options, Result, Wait};
//!
//! fn session(options: &Options) -> Result<()> {
//!     let pop3 = connect_tls("pop.example.com", 995, options)?; // `.wait()?` is needed
//!     pop3.quit().wait()
//! }
//! ```
//!
//! # Connecting
//!
//! - [`connect_tls`]: implicit TLS (port 995), the recommended way.
//! - [`connect_starttls`]: plaintext (port 110), then `STLS`; fails with
//!   [`Error::StlsUnavailable`] rather than continue without TLS.
//! - [`connect_plain`]: no TLS; credentials are refused unless
//!   [`Options::allow_plaintext_credentials`].
//! - [`Connection::new`]: any stream you opened yourself, as
//!   `Connection::new(MaybeTls::Plain(stream), &options).wait()`.
//!
//! Each returns a pending connection, run with `.wait()` like any operation:
//! `let mut pop3 = connect_tls("pop.example.com", 995, &options).wait()?;`.
//!
//! Certificates are always verified, against the operating system's roots by
//! default (the Mozilla roots where it has none); [`TlsOptions`] adds your
//! own, trusts a self-signed certificate you give it, or pins one by its
//! SHA-256 fingerprint.
//!
//! # Timeouts
//!
//! Every step has a time limit, from [`Timeouts`]: `connect` (30 s) for
//! each TCP connection attempt, `tls_handshake` (30 s) for each socket read
//! and write during a TLS handshake, and `read` / `write` (60 s each) for each
//! socket read and write after that. They bound how long one socket
//! operation may wait, not a whole command: a large message that keeps
//! arriving does not time out, a server that goes silent does. A limit that
//! runs out returns [`Error::Timeout`] with the [`Phase`], and ends the
//! connection. The connect helpers apply the limits with
//! `TcpStream::connect_timeout` and `set_read_timeout` / `set_write_timeout`;
//! for a stream passed to [`Connection::new`], set them on the stream yourself
//! (a `WouldBlock` or `TimedOut` error from your stream is reported as a
//! timeout too).
//!
//! # Pipelining
//!
//! [`Connection::retr_many_to`] (a writer per message, from a closure that
//! needs no type annotation), [`Connection::retr_many`] (chunks to a
//! [`MessageSink`]) and [`Connection::dele_many`] hand all their commands to
//! the core at once; when the server lists `PIPELINING` the core keeps up to
//! [`Options::pipeline_window`] of them in flight, which saves a round trip
//! per message. [`Connection::retr_many_and_quit`] and
//! [`Connection::dele_many_and_quit`] send the `QUIT` that ends the session
//! as soon as the last reply is in (not before: a server may drop replies it
//! has not yet sent when it reads `QUIT`). For one message in memory,
//! [`Connection::retr_vec`] takes a size limit.
//!
//! # How it works
//!
//! All protocol decisions are made by the sans-IO core [`pop3_proto`]; this
//! crate only moves bytes between it and the stream, runs TLS and keeps time.
//! Dropping a [`Connection`] without [`Connection::quit`] sends nothing, so
//! the server commits no deletions.

#![forbid(unsafe_code)]

mod connect;

use std::future::Future;

pub use connect::{connect_plain, connect_starttls, connect_tls};
pub use pop3_transport::runtime::blocking::{Blocking, Tls};
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

/// A blocking POP3 session: [`pop3_transport::Connection`] over a
/// [`MaybeTls`] stream (a [`std::net::TcpStream`] unless you bring your
/// own), every method documented there. Each method returns a future that
/// completes in one poll here; [`Wait::wait`] runs it.
pub type Connection<S = std::net::TcpStream> = pop3_transport::Connection<MaybeTls<S>, Blocking>;

/// A message being read from a [`Connection`]: [`std::io::Read`].
pub type MessageReader<'c, S = std::net::TcpStream> =
    pop3_transport::MessageReader<'c, MaybeTls<S>, Blocking>;

/// A stream that is plaintext now and may become TLS in place (`STLS`):
/// [`pop3_transport::MaybeTls`] with this runtime's TLS stream.
pub type MaybeTls<S = std::net::TcpStream> = pop3_transport::MaybeTls<S, Tls<S>>;

/// A connection made by the connect functions.
pub type TcpConnection = Connection;

/// Runs an operation of a blocking [`Connection`] to its end:
/// `pop3.stat().wait()?`.
///
/// The operations are the same code on every runtime; over a blocking
/// stream they never wait for a wake-up, so `wait` only polls them (it
/// parks the thread if a future does wait, so it is correct for any
/// future).
pub trait Wait: Future + Sized {
    /// Blocks until the future completes and returns its output.
    fn wait(self) -> Self::Output {
        pop3_transport::runtime::block_on(self)
    }
}

impl<F: Future> Wait for F {}

/// This crate's README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
