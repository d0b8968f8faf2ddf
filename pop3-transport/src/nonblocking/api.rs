//! `async_api!`: the public API of an async runtime crate, written once.

/// Defines, in the calling crate, the public `Connection<S>`,
/// `MessageReader<'c, S>` and `MaybeTls<S>` of an async transport, with their
/// user documentation: newtypes over [`nonblocking::Connection`] and
/// [`nonblocking::MessageReader`] that forward every method, plus `STLS`.
///
/// Not a public interface: `pop3-tokio` and `pop3-smol` expand it once
/// each, so that their APIs and documentation stay identical. The calling
/// module must have in scope `Error` and `Options` (named by the doc links),
/// the adapter `$io` (a tuple struct `$io<S>(S)` that implements
/// [`nonblocking::IoStream`] for every `S: $bounds`) and the TLS stream type
/// `$tls_stream`. The crate then implements its runtime's `AsyncRead` for
/// `MessageReader` (with [`nonblocking::MessageReader::poll_read`]) and its
/// `AsyncRead` and `AsyncWrite` for `MaybeTls`.
///
/// - `timer`: the [`nonblocking::Timer`];
/// - `writer`, `copy`: the runtime's `AsyncWrite` trait and its `copy`
///   function, called as `copy(&mut reader, &mut writer)`;
/// - `tls_connect`: `fn(Arc<ClientConfig>, ServerName<'static>, S)`
///   returning a future of `io::Result<$tls_stream<S>>`;
/// - `read_trait`, `race`: the runtime's words in the documentation.
///
/// [`nonblocking::Connection`]: crate::nonblocking::Connection
/// [`nonblocking::MessageReader`]: crate::nonblocking::MessageReader
/// [`nonblocking::MessageReader::poll_read`]: crate::nonblocking::MessageReader::poll_read
/// [`nonblocking::IoStream`]: crate::nonblocking::IoStream
/// [`nonblocking::Timer`]: crate::nonblocking::Timer
#[doc(hidden)]
#[macro_export]
macro_rules! async_api {
    (
        io: $io:ident,
        timer: $timer:ty,
        bounds: [$($bounds:tt)+],
        writer: $writer:path,
        copy: $copy:path,
        tls_stream: $tls_stream:ident,
        tls_connect: $tls_connect:path,
        read_trait: $read_trait:literal,
        race: $race:literal $(,)?
    ) => {
        /// A POP3 session over an async stream: the [`pop3_proto::Client`] core, the
        /// stream, and the time limits.
        ///
        /// Every method returns when its reply has arrived; commands are checked by the
        /// core before anything is sent ([`Error::Usage`]), and `-ERR` replies come back
        /// as [`Error::Server`] with the connection still usable.
        ///
        /// **Dropping a `Connection` without calling [`Connection::quit`] sends
        /// nothing**: without `QUIT` the server never enters the UPDATE state, so
        /// messages marked with [`Connection::dele`] are *not* deleted.
        ///
        /// # Cancellation
        ///
        /// All protocol state lives in the core, not in the futures, so dropping a
        /// future never corrupts memory or the byte stream, but it may leave a command
        /// sent whose reply nobody reads. The rule is therefore: **if the future of a
        /// method is dropped after its first poll and before it completes, the
        /// connection is poisoned** and every later call returns [`Error::Closed`]
        /// ([`Connection::is_poisoned`]). This holds for every `async fn` here
        /// ([`Connection::retr_to`] and [`Connection::top_to`]: until the `+OK`), and is
        #[doc = concat!("what happens when such a future loses ", $race, ".")]
        /// The one exception is the [`MessageReader`] returned
        /// by [`Connection::retr`] and [`Connection::top`]: it may be dropped at any
        /// time, and the next operation first drains the rest of the message.
        /// Prefer [`Options::timeouts`] (which keep time per read and write) to
        /// wrapping calls in a timeout.
        pub struct Connection<S> {
            inner: $crate::nonblocking::Connection<$io<S>, $timer>,
        }

        impl<S> ::std::fmt::Debug for Connection<S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.inner, f)
            }
        }

        impl<S> Connection<S> {
            /// The server's greeting.
            pub fn greeting(&self) -> &$crate::__private::Greeting {
                self.inner.greeting()
            }

            /// The capabilities from the latest `CAPA` valid in the current state, if
            /// known (the core forgets them after `STLS` and login, and re-reads them
            /// itself when the server answered `CAPA` before).
            pub fn capabilities(&self) -> ::std::option::Option<&$crate::__private::Capabilities> {
                self.inner.capabilities()
            }

            /// The protocol core, for inspection (state, encryption, pipelining).
            pub fn client(&self) -> &$crate::__private::Client {
                self.inner.client()
            }

            /// The stream.
            pub fn get_ref(&self) -> &S {
                &self.inner.get_ref().0
            }

            /// The time limits in force.
            pub fn timeouts(&self) -> $crate::Timeouts {
                self.inner.timeouts()
            }

            /// Changes the time limits for the following reads and writes.
            pub fn set_timeouts(&mut self, timeouts: $crate::Timeouts) {
                self.inner.set_timeouts(timeouts)
            }

            /// The connection cannot be used any more: a fatal error happened, the
            /// server closed it, or an operation was cancelled (see the type's docs).
            pub fn is_poisoned(&self) -> bool {
                self.inner.is_poisoned()
            }

            /// Gives the stream back, without sending anything (no `QUIT`).
            pub fn into_inner(self) -> S {
                self.inner.into_inner().0
            }
        }

        impl<S: $($bounds)+> Connection<S> {
            /// Reads the greeting from a connected stream and returns the session.
            ///
            /// Use this for streams you opened yourself (an in-memory pipe, a child
            /// process's stdio, an SSH channel). [`Options::encrypted`] says whether the
            /// stream is already encrypted, which allows credentials to be sent. The
            /// greeting read is bounded by the read timeout.
            ///
            /// Cancel-safety: the stream is dropped with the future.
            pub async fn new(
                stream: S,
                options: &$crate::Options,
            ) -> $crate::Result<Connection<S>> {
                Connection::start(stream, options, options.encrypted).await
            }

            /// [`Connection::new`], saying whether the stream is encrypted.
            pub(crate) async fn start(
                stream: S,
                options: &$crate::Options,
                encrypted: bool,
            ) -> $crate::Result<Connection<S>> {
                let inner =
                    $crate::nonblocking::Connection::start($io(stream), options, encrypted).await?;
                Ok(Connection { inner })
            }

            /// `CAPA`: asks for the server's capabilities (also cached, see
            /// [`Connection::capabilities`]). A `-ERR` (server without `CAPA`) is
            /// [`Error::Server`].
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn capa(&mut self) -> $crate::Result<$crate::__private::Capabilities> {
                self.inner.capa().await
            }

            /// `USER` then `PASS` (pipelined by the core when the server allows).
            /// Refused with [`UsageError::PlaintextCredentials`] (nothing sent) on an
            /// unencrypted connection unless [`Options::allow_plaintext_auth`]. After
            /// success, waits for the `CAPA` the core re-issues (if the server answered
            /// `CAPA` before), so [`Connection::capabilities`] is current.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            ///
            /// [`UsageError::PlaintextCredentials`]: pop3_proto::UsageError::PlaintextCredentials
            pub async fn login(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.login(user, password).await
            }

            /// `APOP`: login with the MD5 digest of the greeting's timestamp and the
            /// password ([`UsageError::NoApopTimestamp`] if the greeting has none).
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            ///
            /// [`UsageError::NoApopTimestamp`]: pop3_proto::UsageError::NoApopTimestamp
            pub async fn apop(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.apop(user, password).await
            }

            /// `AUTH` with any SASL mechanism (RFC 5034).
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn auth(
                &mut self,
                mechanism: Box<dyn $crate::__private::Mechanism>,
            ) -> $crate::Result<()> {
                self.inner.auth(mechanism).await
            }

            /// `AUTH SCRAM-SHA-256` with a fresh random nonce; verifies the server too.
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_scram_sha256(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_scram_sha256(user, password).await
            }

            /// `AUTH SCRAM-SHA-1` with a fresh random nonce; verifies the server too.
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_scram_sha1(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_scram_sha1(user, password).await
            }

            /// `AUTH CRAM-MD5`.
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_cram_md5(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_cram_md5(user, password).await
            }

            /// `AUTH PLAIN` (the password travels base64-encoded: TLS needed unless
            /// [`Options::allow_plaintext_auth`]).
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_plain(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_plain(user, password).await
            }

            /// `AUTH LOGIN` (same exposure as `PLAIN`).
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_login(
                &mut self,
                user: &str,
                password: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_login(user, password).await
            }

            /// `AUTH XOAUTH2` with an OAuth 2.0 access token.
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_xoauth2(
                &mut self,
                user: &str,
                token: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_xoauth2(user, token).await
            }

            /// `AUTH OAUTHBEARER` (RFC 7628) with an OAuth 2.0 access token.
            ///
            /// Cancel-safety: as [`Connection::auth`].
            pub async fn auth_oauthbearer(
                &mut self,
                user: &str,
                token: impl Into<$crate::__private::Secret<String>>,
            ) -> $crate::Result<()> {
                self.inner.auth_oauthbearer(user, token).await
            }

            /// `STAT`: message count and maildrop size.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn stat(&mut self) -> $crate::Result<$crate::__private::Stat> {
                self.inner.stat().await
            }

            /// `LIST`: every message's size.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn list(&mut self) -> $crate::Result<Vec<$crate::__private::ListEntry>> {
                self.inner.list().await
            }

            /// `LIST n`: one message's size.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn list_one(
                &mut self,
                msg: $crate::__private::MsgNum,
            ) -> $crate::Result<$crate::__private::ListEntry> {
                self.inner.list_one(msg).await
            }

            /// `UIDL`: every message's unique id.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn uidl(&mut self) -> $crate::Result<Vec<$crate::__private::UidlEntry>> {
                self.inner.uidl().await
            }

            /// `UIDL n`: one message's unique id.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn uidl_one(
                &mut self,
                msg: $crate::__private::MsgNum,
            ) -> $crate::Result<$crate::__private::UidlEntry> {
                self.inner.uidl_one(msg).await
            }

            /// `DELE n`: marks a message for deletion, committed only by
            /// [`Connection::quit`].
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn dele(&mut self, msg: $crate::__private::MsgNum) -> $crate::Result<()> {
                self.inner.dele(msg).await
            }

            /// `RSET`: unmarks every message marked for deletion.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn rset(&mut self) -> $crate::Result<()> {
                self.inner.rset().await
            }

            /// `NOOP`.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn noop(&mut self) -> $crate::Result<()> {
                self.inner.noop().await
            }

            /// `UTF8` (RFC 6856): user names, passwords and replies in UTF-8.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn utf8(&mut self) -> $crate::Result<()> {
                self.inner.utf8().await
            }

            /// `LANG` (RFC 6856): with `None`, lists the server's languages; with a
            /// tag, chooses that language (and returns an empty list).
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn lang(
                &mut self,
                tag: ::std::option::Option<&str>,
            ) -> $crate::Result<Vec<$crate::__private::Language>> {
                self.inner.lang(tag).await
            }

            /// `RETR n`: waits for the `+OK` (a `-ERR` is [`Error::Server`]) and
            /// returns a reader for the message, dot-unstuffed, line endings as sent.
            ///
            /// Cancel-safety: dropping this future after its first poll poisons the
            /// connection; the returned [`MessageReader`] may be dropped at any time.
            pub async fn retr(
                &mut self,
                msg: $crate::__private::MsgNum,
            ) -> $crate::Result<MessageReader<'_, S>> {
                let inner = self.inner.retr(msg).await?;
                Ok(MessageReader { inner })
            }

            /// `TOP n lines`: the headers, the blank line and the first `lines` lines
            /// of the body, as a reader (see [`Connection::retr`]).
            ///
            /// Cancel-safety: as [`Connection::retr`].
            pub async fn top(
                &mut self,
                msg: $crate::__private::MsgNum,
                lines: u32,
            ) -> $crate::Result<MessageReader<'_, S>> {
                let inner = self.inner.top(msg, lines).await?;
                Ok(MessageReader { inner })
            }

            /// `RETR n` into a writer (flushed at the end); returns the byte count.
            ///
            /// Cancel-safety: dropping the future before the `+OK` poisons the
            /// connection; after it, the rest of the message is drained by the next
            /// operation. The same holds when the writer fails: [`Error::Io`], and the
            /// connection stays usable.
            pub async fn retr_to<W: $writer + Unpin + ?Sized>(
                &mut self,
                msg: $crate::__private::MsgNum,
                writer: &mut W,
            ) -> $crate::Result<u64> {
                self.retr(msg).await?.read_to_writer(writer).await
            }

            /// `TOP n lines` into a writer; returns the byte count.
            ///
            /// Cancel-safety: as [`Connection::retr_to`].
            pub async fn top_to<W: $writer + Unpin + ?Sized>(
                &mut self,
                msg: $crate::__private::MsgNum,
                lines: u32,
                writer: &mut W,
            ) -> $crate::Result<u64> {
                self.top(msg, lines).await?.read_to_writer(writer).await
            }

            /// Retrieves several messages, pipelined when the server offers
            /// `PIPELINING` (if the capabilities are not known after login, the
            /// core asks `CAPA` first, once).
            /// Chunks go to `sink` as they arrive. Returns one result per message: its
            /// size, or why it failed (`-ERR`, an unusable reply, or cancelled). An
            /// outer `Err` is fatal.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn retr_many(
                &mut self,
                msgs: &[$crate::__private::MsgNum],
                sink: &mut impl $crate::nonblocking::MessageSink,
            ) -> $crate::Result<Vec<$crate::Result<u64>>> {
                self.inner.retr_many(msgs, sink).await
            }

            /// Marks several messages for deletion, pipelined like
            /// [`Connection::retr_many`]. Returns one result per message.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn dele_many(
                &mut self,
                msgs: &[$crate::__private::MsgNum],
            ) -> $crate::Result<Vec<$crate::Result<()>>> {
                self.inner.dele_many(msgs).await
            }

            /// `QUIT`: ends the session; the server commits the deletions. Then shuts
            /// the stream down (TLS `close_notify`), ignoring errors there.
            ///
            /// Cancel-safety: consumes the connection; dropping the future drops it
            /// (whether deletions were committed is then unknown).
            pub async fn quit(self) -> $crate::Result<()> {
                self.inner.quit().await
            }
        }

        impl<S: $($bounds)+> Connection<MaybeTls<S>> {
            /// Upgrades a plaintext connection to TLS with `STLS` (RFC 2595),
            /// verifying the certificate against `server_name`.
            ///
            /// Uses the cached capabilities or asks `CAPA`; if `STLS` is not listed
            /// (or `CAPA` is refused) this fails with [`Error::StlsUnavailable`] and
            /// nothing else is sent. A `-ERR` to `STLS` is [`Error::Server`]. After the
            /// handshake it waits for the core's fresh `CAPA`, so
            /// [`Connection::capabilities`] describes the encrypted session.
            ///
            /// Cancel-safety: dropping the future after its first poll poisons the
            /// connection.
            pub async fn stls(&mut self, server_name: &str) -> $crate::Result<()> {
                self.inner
                    .stls(server_name, |io, config, name| {
                        match ::std::mem::replace(&mut io.0, MaybeTls::Broken) {
                            MaybeTls::Plain(plain) => Some(async move {
                                let tls = $tls_connect(config, name, plain).await?;
                                Ok($io(MaybeTls::Tls(Box::new(tls))))
                            }),
                            other => {
                                io.0 = other;
                                None
                            }
                        }
                    })
                    .await
            }
        }

        /// A message being received (`RETR` or `TOP`), read with
        #[doc = concat!($read_trait, ": dot-unstuffed, line endings exactly as sent.")]
        ///
        /// Each read asks the core for at most the free space of the caller's buffer
        /// ([`pop3_proto::Client::poll_body_limited`]), so the bytes are copied once,
        /// from the receive buffer into the caller's.
        ///
        /// It borrows the connection. **Dropping it before the end is safe** (and is
        /// how to abandon a message): the connection stays usable and its next
        /// operation first reads and discards the rest of this message. A read error
        /// is an [`io::Error`](std::io::Error) wrapping this crate's [`Error`];
        /// `Error::from` gets it back (for example [`Error::Protocol`] when the
        /// server's reply was unusable, in which case the bytes already read must be
        /// discarded).
        ///
        /// Cancel-safety: a `read` future may be dropped at any time without losing
        /// data.
        pub struct MessageReader<'c, S> {
            inner: $crate::nonblocking::MessageReader<'c, $io<S>, $timer>,
        }

        impl<S> ::std::fmt::Debug for MessageReader<'_, S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.inner, f)
            }
        }

        impl<S> MessageReader<'_, S> {
            /// The message being read.
            pub fn msg(&self) -> $crate::__private::MsgNum {
                self.inner.msg()
            }

            /// Every byte of the message has been read.
            pub fn is_finished(&self) -> bool {
                self.inner.is_finished()
            }
        }

        impl<S: $($bounds)+> MessageReader<'_, S> {
            /// Like `read` of the `AsyncRead` trait, with this crate's error type.
            ///
            /// Cancel-safety: may be dropped at any time without losing data.
            pub async fn read_message(&mut self, buf: &mut [u8]) -> $crate::Result<usize> {
                self.inner.read(buf).await
            }

            /// Reads the rest of the message into `out` and flushes it; returns the
            /// number of bytes.
            ///
            /// Cancel-safety: may be dropped; bytes already read from the connection
            /// may not have reached `out`.
            pub async fn read_to_writer<W: $writer + Unpin + ?Sized>(
                &mut self,
                out: &mut W,
            ) -> $crate::Result<u64> {
                $copy(self, out).await.map_err($crate::Error::from)
            }
        }

        /// A stream that is either plaintext or TLS, so that `STLS` can upgrade a
        /// connection in place. The connect functions return connections over
        /// `MaybeTls<TcpStream>`.
        #[derive(Debug)]
        #[non_exhaustive]
        pub enum MaybeTls<S> {
            /// Not encrypted.
            Plain(S),
            /// TLS over the inner stream.
            Tls(Box<$tls_stream<S>>),
            /// The inner stream was handed to a TLS handshake that failed; every read
            /// and write fails with `NotConnected`.
            Broken,
        }

        impl<S> MaybeTls<S> {
            /// Whether TLS is active.
            pub fn is_tls(&self) -> bool {
                matches!(self, MaybeTls::Tls(_))
            }

            /// The rustls session (peer certificates, negotiated version, ...) when TLS
            /// is active.
            pub fn tls_connection(
                &self,
            ) -> ::std::option::Option<&$crate::__private::ClientConnection> {
                match self {
                    MaybeTls::Tls(tls) => Some(tls.get_ref().1),
                    _ => None,
                }
            }

            /// The underlying transport stream.
            pub fn get_ref(&self) -> ::std::option::Option<&S> {
                match self {
                    MaybeTls::Plain(s) => Some(s),
                    MaybeTls::Tls(tls) => Some(tls.get_ref().0),
                    MaybeTls::Broken => None,
                }
            }

            /// The underlying transport stream, mutably. Reading or writing it
            /// directly bypasses TLS and breaks the session.
            pub fn get_mut(&mut self) -> ::std::option::Option<&mut S> {
                match self {
                    MaybeTls::Plain(s) => Some(s),
                    MaybeTls::Tls(tls) => Some(tls.get_mut().0),
                    MaybeTls::Broken => None,
                }
            }

            /// The underlying transport stream, dropping any TLS state (no
            /// `close_notify` is sent).
            pub fn into_inner(self) -> ::std::option::Option<S> {
                match self {
                    MaybeTls::Plain(s) => Some(s),
                    MaybeTls::Tls(tls) => Some(tls.into_inner().0),
                    MaybeTls::Broken => None,
                }
            }
        }
    };
}
