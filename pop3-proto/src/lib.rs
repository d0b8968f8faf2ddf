//! A sans-IO POP3 client: bytes in, events out; commands in, bytes out.
//!
//! `pop3-proto` holds every protocol decision of a POP3 client — RFC 1939,
//! CAPA and PIPELINING (RFC 2449), STLS (RFC 2595), SASL AUTH (RFC 5034),
//! response codes (RFC 3206), UTF8 and LANG (RFC 6856), APOP — and no I/O at
//! all: no sockets, no runtime, no clock. It is `no_std` with `alloc`. The
//! transports (`pop3-blocking`, `pop3-tokio`, `pop3-smol`) are thin loops over it,
//! and any event loop can drive it the same way.
//!
//! # The run loop
//!
//! 1. Create a [`Client`] with a [`Config`] when the connection is open.
//! 2. Submit commands whenever you like with [`Client::submit`] (or the
//!    shortcuts [`Client::user`], [`Client::pass`], ...). Each returns a
//!    [`Handle`] naming the reply to come, or a [`UsageError`] — with nothing
//!    sent — when the command does not fit the session's state or an argument
//!    is unsafe. Commands queue and go out one at a time, or pipelined when the
//!    server allows it.
//! 3. Call [`Client::poll`] in a loop and do what the [`Action`] says:
//!    - [`Action::Send`]: write all the bytes to the server;
//!    - [`Action::Event`]: handle the [`Event`] (a greeting, a reply, a piece of
//!      a message body, ...);
//!    - [`Action::NeedInput`]: read from the server into
//!      [`Client::input_buffer`] and report the count with
//!      [`Client::input_written`] (or pass bytes to [`Client::receive`]); on
//!      end of stream call [`Client::receive_eof`];
//!    - [`Action::StartTls`]: run the TLS handshake, then call
//!      [`Client::tls_established`] (or [`Client::tls_failed`] if it failed;
//!      end of stream meanwhile ends the session too);
//!    - [`Action::Closed`]: the session is over; close the connection.
//! 4. An `Err` from `poll` means the server broke the protocol. It is fatal and
//!    sticky: close the connection.
//!
//! **Partial writes.** The bytes of an [`Action::Send`] are the client's
//! until the next call on it: the next `poll` takes them as written. A
//! blocking loop writes them all (`write_all`) before polling again. A
//! non-blocking socket may take only part: keep the rest in a buffer of your
//! own (they may hold a password: wipe it once written, as the core wipes
//! its own) and write it before anything the core hands out later (append
//! later `Send` bytes behind it). [`Client::in_flight`] counts the commands handed
//! out in a `Send`, whether or not your socket has written them yet. (The C
//! ABI offers this bookkeeping as `pop3_client_output_written`.)
//!
//! **Logging in.** [`Client::login_with`] with [`AuthMethod::Auto`] chooses the
//! strongest mechanism the server offers that the [`Credentials`] can do.
//! SCRAM needs a client nonce, which this crate cannot make without a source
//! of randomness: without one ([`Credentials::scram_nonce`], or the
//! `getrandom` feature's `Credentials::with_random_scram_nonce`), `Auto`
//! skips SCRAM and goes on down the list of [`AuthMethod::Auto`] (CRAM-MD5
//! next).
//!
//! The core also sends commands of its own, which the loop pumps like any
//! other: a `CAPA` right after TLS starts, after a login (when the server
//! answered `CAPA` before) and before a burst of commands whose pipelining
//! depends on it, under a handle the caller never holds. Its answer arrives as
//! [`Event::Capabilities`] (which lists exactly when the core asks), and
//! [`Client::capabilities`] is updated; a refusal is silent. Match replies by
//! the handles `submit` returned and these extra commands never get in the
//! way.
//!
//! ```
//! use pop3_proto::{Action, Client, Config, Event, MsgNum, Reply};
//!
//! // What a server answers, one reply per read, as if from a socket.
//! let mut replies = [
//!     &b"+OK POP3 ready\r\n"[..],
//!     b"+OK\r\n",
//!     b"+OK logged in\r\n",
//!     b"+OK 1 7\r\n",
//!     b"+OK\r\nHi\r\n..\r\n.\r\n",
//! ]
//! .into_iter();
//! let mut client = Client::new(Config::encrypted());
//! client.user("alice")?;
//! client.pass("secret")?;
//! client.submit(pop3_proto::Command::Stat)?;
//! let retr = client.submit(pop3_proto::Command::Retr(MsgNum::new(1).unwrap()))?;
//!
//! let mut sent = Vec::new();
//! let mut message = Vec::new();
//! loop {
//!     match client.poll()? {
//!         Action::Send(bytes) => sent.extend_from_slice(bytes),
//!         Action::Event(Event::Body { handle, data }) if handle == retr => {
//!             message.extend_from_slice(data)
//!         }
//!         Action::Event(Event::Ok { handle, reply: Reply::BodyEnd }) if handle == retr => break,
//!         Action::Event(_) => {}
//!         Action::NeedInput => match replies.next() {
//!             // A real program reads from its socket here.
//!             Some(reply) => client.receive(reply),
//!             None => client.receive_eof(),
//!         },
//!         Action::StartTls | Action::Closed => break,
//!     }
//! }
//! assert_eq!(message, b"Hi\r\n.\r\n");
//! assert_eq!(sent, b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The whole loop over a `std::net::TcpStream` (connect, greeting, login,
//! `STAT`, `RETR`, `QUIT`, every read and write written out) is the program
//! `examples/by_hand.rs`, shown in full [at the end](#a-whole-program-over-a-tcpstream).
//!
//! # Errors
//!
//! - [`UsageError`]: the caller asked for something the protocol does not
//!   allow now. Nothing was sent; the session goes on.
//! - `-ERR` replies are not errors of this crate: they arrive as
//!   [`Event::Err`] with their [`ResponseCode`].
//! - [`Event::Failed`]: one reply could not be used (malformed, too long), but
//!   it was read to its end and the session goes on.
//! - [`ProtocolError`] from [`Client::poll`]: the server broke the protocol;
//!   fatal and sticky.
//!
//! # Safety against hostile servers
//!
//! No input can make the client panic, hang without a `NeedInput`, or hold more
//! memory than the [`Limits`] allow; message bodies are streamed. Server text is
//! sanitised ([`Text`]). Secrets are wrapped in [`Secret`], whose `Debug`
//! redacts them, and the send buffer is wiped after carrying one.
//! Credentials are refused on an unencrypted connection unless
//! [`Config::allow_plaintext_credentials`] is set.
//!
//! # Cargo features
//!
//! - `std` (default): `std::error::Error` impls and SASLprep for SCRAM
//!   passwords. Without it the core is `no_std` + `alloc`.
//! - `getrandom` (off by default): `Credentials::random_scram_nonce` and
//!   `Credentials::with_random_scram_nonce`, SCRAM nonces from the
//!   operating system, which every driver of this workspace uses. On
//!   `wasm32-unknown-unknown` also enable getrandom's `js` feature.
//!
//! # Panics
//!
//! None are reachable from input bytes or API calls; a panic is a bug.
//!
//! # A whole program over a `TcpStream`
//!
//! `examples/by_hand.rs` (`cargo run -p pop3-proto --example by_hand`):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/by_hand.rs"), "```")]
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod client;
mod command;
mod error;
mod framing;
mod parse;
pub mod sasl;
mod secret;
mod text;
mod types;

#[cfg(feature = "getrandom")]
pub use client::RandomUnavailable;
pub use client::{
    Action, AuthMethod, Client, Config, Credentials, Direction, Event, Handle, Limits, Reply,
    State, TraceLine, MAX_READ_SIZE, MAX_WRITE_AHEAD,
};
pub use command::Command;
pub use error::{ProtocolError, UsageError};
pub use secret::Secret;
pub use text::Text;
pub use types::{
    Capabilities, Capability, Greeting, Language, ListEntry, MsgNum, ResponseCode, ServerError,
    Stat, UidlEntry,
};

/// This crate's README's examples, compiled and run as doctests. (The
/// workspace README's examples use the transports, so `pop3-blocking` runs
/// them.)
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
