//! [`Session`] for each transport: `pop3-blocking` directly, `pop3-tokio` on
//! a current-thread tokio runtime, `pop3-smol` on `async_io::block_on`.
//!
//! The three crates share their error and options types and have the same
//! API (async in two of them), so the async sessions come from one macro;
//! only the runtime and the writer adapter differ.

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pop3_proto::{Capabilities, Greeting, ListEntry, MsgNum, Secret, Stat, UidlEntry};

use crate::cli::{Runtime, TlsMode};
use crate::error::{Exit, Failure, NetError};
use crate::session::{Mechanism, MessageSink, Session};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct ConnectConfig {
    /// Host name or IP address.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// Implicit TLS, STLS, or none.
    pub(crate) tls: TlsMode,
    /// PEM of extra trust anchors (`--ca-file`).
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// `--timeout`: the same limit for every step; `None` keeps the
    /// transports' defaults.
    pub(crate) timeout: Option<Duration>,
    /// `--allow-plaintext-auth`.
    pub(crate) allow_plaintext_auth: bool,
}

// The three transports share one error type (`pop3_transport::Error`,
// re-exported by each), so one conversion serves them all.
impl From<pop3_blocking::Error> for NetError {
    fn from(error: pop3_blocking::Error) -> NetError {
        use pop3_blocking::Error;
        match error {
            Error::Io(e) => NetError::Io(e),
            Error::Tls(e) => NetError::Tls(e.to_string()),
            Error::Protocol(e) => NetError::Protocol(e),
            Error::Usage(e) => NetError::Usage(e),
            Error::Server(e) => NetError::Server(e),
            Error::Timeout(phase) => NetError::Timeout(phase.to_string()),
            Error::Closed => NetError::Closed,
            Error::StlsUnavailable => NetError::StlsUnavailable,
            other => NetError::Other(other.to_string()),
        }
    }
}

/// A copy of a borrowed error (the sinks of `retr_many` get a reference).
fn error_ref(error: &pop3_blocking::Error) -> NetError {
    use pop3_blocking::Error;
    match error {
        Error::Io(e) => NetError::Io(io::Error::new(e.kind(), e.to_string())),
        Error::Tls(e) => NetError::Tls(e.to_string()),
        Error::Protocol(e) => NetError::Protocol(e.clone()),
        Error::Usage(e) => NetError::Usage(e.clone()),
        Error::Server(e) => NetError::Server(e.clone()),
        Error::Timeout(phase) => NetError::Timeout(phase.to_string()),
        Error::Closed => NetError::Closed,
        Error::StlsUnavailable => NetError::StlsUnavailable,
        other => NetError::Other(other.to_string()),
    }
}

/// Hands the messages of one transport's `retr_many` to a [`MessageSink`];
/// after the sink stops it ignores the rest (the transports' `retr_many` reads
/// every reply it asked for).
macro_rules! sink_adapter {
    ($name:ident, $krate:ident) => {
        /// This transport's sink in front of a [`MessageSink`].
        struct $name<'a> {
            sink: &'a mut dyn MessageSink,
            stopped: bool,
        }

        impl $krate::MessageSink for $name<'_> {
            fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) {
                if !self.stopped && self.sink.on_chunk(msg, chunk).is_err() {
                    self.stopped = true;
                }
            }

            fn on_end(&mut self, msg: MsgNum, result: Result<u64, &$krate::Error>) {
                if !self.stopped {
                    let result = result.map(drop).map_err(error_ref);
                    if self.sink.on_end(msg, result).is_err() {
                        self.stopped = true;
                    }
                }
            }
        }
    };
}

sink_adapter!(BlockingSink, pop3_blocking);
sink_adapter!(TokioSink, pop3_tokio);
sink_adapter!(SmolSink, pop3_smol);

/// Builds one transport's `Options` from the command line.
macro_rules! options {
    ($krate:ident, $config:expr) => {{
        let config: &ConnectConfig = $config;
        let mut tls = $krate::TlsOptions::new();
        if let Some(pem) = &config.ca_pem {
            tls = tls.add_root_pem(&pem[..]).map_err(|e| {
                Failure::new(
                    Exit::IoErr,
                    format!("--ca-file: no usable certificate: {}", NetError::from(e)),
                )
            })?;
        }
        let mut options = $krate::Options::new()
            .tls(tls)
            .allow_plaintext_auth(config.allow_plaintext_auth);
        if let Some(limit) = config.timeout {
            options = options.timeouts($krate::Timeouts {
                connect: Some(limit),
                tls_handshake: Some(limit),
                read: Some(limit),
                write: Some(limit),
            });
        }
        options
    }};
}

/// Connects with the chosen runtime and reads the greeting (and, with
/// `--tls starttls`, upgrades to TLS first).
pub(crate) fn connect(
    runtime: Runtime,
    config: &ConnectConfig,
) -> Result<Box<dyn Session>, Failure> {
    let host = config.host.as_str();
    let port = config.port;
    let context = |e: NetError| Failure::from(e).context(format_args!("{host}:{port}"));
    match runtime {
        Runtime::Blocking => {
            let options = options!(pop3_blocking, config);
            let conn = match config.tls {
                TlsMode::Implicit => pop3_blocking::connect_tls(host, port, &options),
                TlsMode::Starttls => pop3_blocking::connect_starttls(host, port, &options),
                TlsMode::None => pop3_blocking::connect_plain(host, port, &options),
            }
            .map_err(|e| context(e.into()))?;
            Ok(Box::new(Blocking { conn }))
        }
        Runtime::Tokio => {
            let options = options!(pop3_tokio, config);
            let rt = TokioRt(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failure::new(Exit::Software, format!("tokio runtime: {e}")))?,
            );
            let conn = rt
                .block_on(async {
                    match config.tls {
                        TlsMode::Implicit => pop3_tokio::connect_tls(host, port, &options).await,
                        TlsMode::Starttls => {
                            pop3_tokio::connect_starttls(host, port, &options).await
                        }
                        TlsMode::None => pop3_tokio::connect_plain(host, port, &options).await,
                    }
                })
                .map_err(|e| context(e.into()))?;
            Ok(Box::new(Tokio { rt, conn }))
        }
        Runtime::Smol => {
            let options = options!(pop3_smol, config);
            let rt = SmolRt;
            let conn = rt
                .block_on(async {
                    match config.tls {
                        TlsMode::Implicit => pop3_smol::connect_tls(host, port, &options).await,
                        TlsMode::Starttls => {
                            pop3_smol::connect_starttls(host, port, &options).await
                        }
                        TlsMode::None => pop3_smol::connect_plain(host, port, &options).await,
                    }
                })
                .map_err(|e| context(e.into()))?;
            Ok(Box::new(Smol { rt, conn }))
        }
    }
}

// ----- blocking -----

/// `pop3-blocking` over a `TcpStream`.
struct Blocking {
    conn: pop3_blocking::TcpConnection,
}

impl Session for Blocking {
    fn greeting(&self) -> &Greeting {
        self.conn.greeting()
    }

    fn is_encrypted(&self) -> bool {
        self.conn.client().is_encrypted()
    }

    fn is_usable(&self) -> bool {
        !self.conn.is_poisoned()
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.conn.capabilities().cloned()
    }

    fn capa(&mut self) -> Result<Capabilities, NetError> {
        Ok(self.conn.capa()?)
    }

    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        secret: Secret<String>,
    ) -> Result<(), NetError> {
        let c = &mut self.conn;
        Ok(match mechanism {
            Mechanism::User => c.login(user, secret),
            Mechanism::Apop => c.apop(user, secret),
            Mechanism::Plain => c.auth_plain(user, secret),
            Mechanism::Login => c.auth_login(user, secret),
            Mechanism::CramMd5 => c.auth_cram_md5(user, secret),
            Mechanism::ScramSha1 => c.auth_scram_sha1(user, secret),
            Mechanism::ScramSha256 => c.auth_scram_sha256(user, secret),
            Mechanism::XOauth2 => c.auth_xoauth2(user, secret),
            Mechanism::OAuthBearer => c.auth_oauthbearer(user, secret),
        }?)
    }

    fn stat(&mut self) -> Result<Stat, NetError> {
        Ok(self.conn.stat()?)
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, NetError> {
        Ok(self.conn.list()?)
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, NetError> {
        Ok(self.conn.list_one(msg)?)
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, NetError> {
        Ok(self.conn.uidl()?)
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, NetError> {
        Ok(self.conn.uidl_one(msg)?)
    }

    fn retr_to(&mut self, msg: MsgNum, mut out: &mut dyn Write) -> Result<u64, NetError> {
        Ok(self.conn.retr_to(msg, &mut out)?)
    }

    fn top_to(
        &mut self,
        msg: MsgNum,
        lines: u32,
        mut out: &mut dyn Write,
    ) -> Result<u64, NetError> {
        Ok(self.conn.top_to(msg, lines, &mut out)?)
    }

    fn retr_many(&mut self, msgs: &[MsgNum], sink: &mut dyn MessageSink) -> Result<(), NetError> {
        let mut adapter = BlockingSink {
            sink,
            stopped: false,
        };
        // Each message's outcome went to the sink already.
        self.conn.retr_many(msgs, &mut adapter)?;
        Ok(())
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), NetError> {
        Ok(self.conn.dele(msg)?)
    }

    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), NetError>>, NetError> {
        let results = self.conn.dele_many(msgs)?;
        Ok(results
            .into_iter()
            .map(|r| r.map_err(NetError::from))
            .collect())
    }

    fn quit(self: Box<Self>) -> Result<(), NetError> {
        Ok(self.conn.quit()?)
    }
}

// ----- async -----

/// A current-thread tokio runtime.
struct TokioRt(tokio::runtime::Runtime);

impl TokioRt {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// `async_io`'s executor (what `smol::block_on` is).
struct SmolRt;

impl SmolRt {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_io::block_on(future)
    }
}

/// A blocking [`Write`] seen as an async writer. Every write completes at
/// once, which is right for stdout and files in a one-connection program.
struct SyncWriter<'a>(&'a mut dyn Write);

impl tokio::io::AsyncWrite for SyncWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }
}

impl futures_io::AsyncWrite for SyncWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }
}

/// Implements [`Session`] for an async transport: `$name { rt: $rt, conn }`
/// where `conn` is `$krate::Connection<$krate::MaybeTls<$stream>>`.
macro_rules! async_session {
    ($name:ident, $krate:ident, $rt:ty, $sink:ident) => {
        /// An async transport driven by blocking on its runtime.
        struct $name {
            rt: $rt,
            conn: $krate::TcpConnection,
        }

        impl Session for $name {
            fn greeting(&self) -> &Greeting {
                self.conn.greeting()
            }

            fn is_encrypted(&self) -> bool {
                self.conn.client().is_encrypted()
            }

            fn is_usable(&self) -> bool {
                !self.conn.is_poisoned()
            }

            fn capabilities(&self) -> Option<Capabilities> {
                self.conn.capabilities().cloned()
            }

            fn capa(&mut self) -> Result<Capabilities, NetError> {
                Ok(self.rt.block_on(self.conn.capa())?)
            }

            fn authenticate(
                &mut self,
                mechanism: Mechanism,
                user: &str,
                secret: Secret<String>,
            ) -> Result<(), NetError> {
                let c = &mut self.conn;
                Ok(self.rt.block_on(async move {
                    match mechanism {
                        Mechanism::User => c.login(user, secret).await,
                        Mechanism::Apop => c.apop(user, secret).await,
                        Mechanism::Plain => c.auth_plain(user, secret).await,
                        Mechanism::Login => c.auth_login(user, secret).await,
                        Mechanism::CramMd5 => c.auth_cram_md5(user, secret).await,
                        Mechanism::ScramSha1 => c.auth_scram_sha1(user, secret).await,
                        Mechanism::ScramSha256 => c.auth_scram_sha256(user, secret).await,
                        Mechanism::XOauth2 => c.auth_xoauth2(user, secret).await,
                        Mechanism::OAuthBearer => c.auth_oauthbearer(user, secret).await,
                    }
                })?)
            }

            fn stat(&mut self) -> Result<Stat, NetError> {
                Ok(self.rt.block_on(self.conn.stat())?)
            }

            fn list(&mut self) -> Result<Vec<ListEntry>, NetError> {
                Ok(self.rt.block_on(self.conn.list())?)
            }

            fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, NetError> {
                Ok(self.rt.block_on(self.conn.list_one(msg))?)
            }

            fn uidl(&mut self) -> Result<Vec<UidlEntry>, NetError> {
                Ok(self.rt.block_on(self.conn.uidl())?)
            }

            fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, NetError> {
                Ok(self.rt.block_on(self.conn.uidl_one(msg))?)
            }

            fn retr_to(&mut self, msg: MsgNum, out: &mut dyn Write) -> Result<u64, NetError> {
                let mut out = SyncWriter(out);
                Ok(self.rt.block_on(self.conn.retr_to(msg, &mut out))?)
            }

            fn top_to(
                &mut self,
                msg: MsgNum,
                lines: u32,
                out: &mut dyn Write,
            ) -> Result<u64, NetError> {
                let mut out = SyncWriter(out);
                Ok(self.rt.block_on(self.conn.top_to(msg, lines, &mut out))?)
            }

            fn retr_many(
                &mut self,
                msgs: &[MsgNum],
                sink: &mut dyn MessageSink,
            ) -> Result<(), NetError> {
                let mut adapter = $sink {
                    sink,
                    stopped: false,
                };
                // Per-message outcomes went to the sink already.
                self.rt
                    .block_on(self.conn.retr_many(msgs, &mut adapter))
                    .map(drop)
                    .map_err(NetError::from)
            }

            fn dele(&mut self, msg: MsgNum) -> Result<(), NetError> {
                Ok(self.rt.block_on(self.conn.dele(msg))?)
            }

            fn dele_many(
                &mut self,
                msgs: &[MsgNum],
            ) -> Result<Vec<Result<(), NetError>>, NetError> {
                let results = self.rt.block_on(self.conn.dele_many(msgs))?;
                Ok(results
                    .into_iter()
                    .map(|r| r.map_err(NetError::from))
                    .collect())
            }

            fn quit(self: Box<Self>) -> Result<(), NetError> {
                let this = *self;
                Ok(this.rt.block_on(this.conn.quit())?)
            }
        }
    };
}

async_session!(Tokio, pop3_tokio, TokioRt, TokioSink);
async_session!(Smol, pop3_smol, SmolRt, SmolSink);
