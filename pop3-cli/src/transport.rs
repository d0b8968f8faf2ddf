//! The library's connection on whichever runtime `--runtime` chose, and
//! the one point where the runtime is chosen ([`open`]).
//!
//! Every runtime runs the same `pop3_transport::Connection`; what differs is
//! only how its futures are run ([`Exec`]) and which crate opens the socket.
//! The commands are generic over the connection ([`WithSession`]) and call
//! its operations themselves ([`Session::run`]).

use std::future::Future;
use std::time::Duration;

use pop3_blocking::Wait;
use pop3_transport::runtime::{Runtime as LibraryRuntime, StartTls, WriteTo};
use pop3_transport::{
    CertificateInfo, Connection, Error, MaybeTls, Options, PeerCertificates, Sha256Fingerprint,
    Timeouts, TlsOptions, TlsStream, TrustRoots,
};

use crate::cli::{Runtime, TlsMode, Trust};
use crate::error::{net_failure, Exit, Failure};

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
    /// `--trust`: the roots besides `--ca-file`.
    pub(crate) trust: Trust,
    /// `--tls-fingerprint`: trust exactly this server certificate instead.
    pub(crate) fingerprint: Option<Sha256Fingerprint>,
    /// `--tls-server-name`: the name the certificate is checked against
    /// (and sent in SNI) instead of `host`.
    pub(crate) server_name: Option<String>,
    /// `--proxy`: the SOCKS5 proxy to connect through.
    pub(crate) proxy: Option<pop3_transport::socks5::Socks5Proxy>,
    /// Where every handshake records the certificates the server presented,
    /// trusted or not, so that a refusal can name the certificate (and its
    /// fingerprint) and `serverinfo` can show it.
    pub(crate) presented: PeerCertificates,
    /// `--timeout`: the same limit for every step; `None` keeps the
    /// transports' defaults.
    pub(crate) timeout: Option<Duration>,
    /// `--session-timeout`: the overall limit of a session; `None` keeps the
    /// library's default (an hour).
    pub(crate) session_timeout: Option<Duration>,
    /// `--allow-plaintext-credentials`.
    pub(crate) allow_plaintext_credentials: bool,
}

impl ConnectConfig {
    /// `host:port`, with an IPv6 address in brackets (`[::1]:995`): how
    /// messages name the server.
    pub(crate) fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name the server's certificate must carry: `--tls-server-name`,
    /// else the host connected to.
    pub(crate) fn tls_name(&self) -> &str {
        self.server_name.as_deref().unwrap_or(&self.host)
    }

    /// What the server's own certificate from the latest handshake says.
    pub(crate) fn presented_certificate(&self) -> Option<CertificateInfo> {
        let der = self.presented.end_entity()?;
        CertificateInfo::from_der(der.as_ref()).ok()
    }
}

/// Runs futures to completion on the chosen runtime.
pub(crate) trait Exec {
    /// Runs `future` to completion.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// The blocking transport's executor: its futures complete in one poll.
struct BlockingExec;

impl Exec for BlockingExec {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        pop3_transport::runtime::block_on(future)
    }
}

/// A current-thread tokio runtime.
struct TokioExec(tokio::runtime::Runtime);

impl Exec for TokioExec {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// `async_io`'s executor (what `smol::block_on` is).
struct SmolExec;

impl Exec for SmolExec {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_io::block_on(future)
    }
}

/// The library's options from the command line.
pub(crate) fn options(config: &ConnectConfig) -> Result<Options, Failure> {
    let roots = match config.trust {
        Trust::System => TrustRoots::System,
        Trust::Mozilla => TrustRoots::Mozilla,
        Trust::CaFile => TrustRoots::OnlyGiven,
    };
    let mut tls = TlsOptions::new()
        .trust_roots(roots)
        .capture_peer_certificates(&config.presented);
    if let Some(pem) = &config.ca_pem {
        tls = tls.add_root_pem(&pem[..]).map_err(|e| {
            Failure::new(
                Exit::IoErr,
                format!("--ca-file: no usable certificate: {}", unusable_pem(e)),
            )
        })?;
    }
    if let Some(fingerprint) = config.fingerprint {
        tls = tls.pin_sha256(fingerprint);
    }
    let mut options = Options::new();
    if let Some(name) = &config.server_name {
        options = options.server_name(name.clone());
    }
    let mut options = options
        .tls(tls)
        .allow_plaintext_credentials(config.allow_plaintext_credentials);
    let mut timeouts = config
        .timeout
        .map_or_else(Timeouts::default, Timeouts::uniform);
    if let Some(limit) = config.session_timeout {
        timeouts.session = Some(limit);
    }
    options = options.timeouts(timeouts);
    if let Some(proxy) = &config.proxy {
        options = options.proxy(proxy.clone());
    }
    Ok(options)
}

/// Connects with the chosen runtime and reads the greeting (and, with
/// `--tls starttls`, upgrades to TLS first), then runs `command` on the
/// session. Errors name `host:port`.
pub(crate) fn connect<C: WithSession<Output = Result<T, Failure>>, T>(
    runtime: Runtime,
    config: &ConnectConfig,
    command: C,
) -> Result<T, Failure> {
    let options = options(config)?;
    open(runtime, config, &options, Connected { config, command })?
}

/// [`connect`]'s part after the greeting: `STLS` if asked, then the command.
struct Connected<'a, C> {
    config: &'a ConnectConfig,
    command: C,
}

impl<C: WithSession<Output = Result<T, Failure>>, T> WithSession for Connected<'_, C> {
    type Output = Result<T, Failure>;

    fn with<X, Y, R, E>(self, opened: Result<Session<X, Y, R, E>, Error>) -> Self::Output
    where
        MaybeTls<X, Y>: StartTls,
        Y: TlsStream<X>,
        R: LibraryRuntime + WriteTo<Vec<u8>>,
        E: Exec,
    {
        let config = self.config;
        let context = |e: Error| {
            net_failure(&e, config.presented_certificate().as_ref()).context(config.endpoint())
        };
        let mut session = opened.map_err(context)?;
        if config.tls == TlsMode::Starttls {
            session
                .run(|c| c.start_tls(config.tls_name()))
                .map_err(context)?;
        }
        self.command.with(Ok(session))
    }
}

/// What runs on a session, whatever the runtime: the commands are written
/// once, generic over the library's connection.
pub(crate) trait WithSession {
    /// What the command returns.
    type Output;

    /// Runs on the session just opened, or on why it could not be.
    fn with<X, Y, R, E>(self, opened: Result<Session<X, Y, R, E>, Error>) -> Self::Output
    where
        MaybeTls<X, Y>: StartTls,
        Y: TlsStream<X>,
        R: LibraryRuntime + WriteTo<Vec<u8>>,
        E: Exec;
}

/// Connects with the chosen runtime and reads the greeting: after the TLS
/// handshake with `--tls implicit`, in plaintext otherwise (`--tls
/// starttls` then needs `STLS`, which is what [`connect`] does), and gives
/// the session (or the library's error) to `command`. `Err` only when the
/// runtime itself cannot start.
pub(crate) fn open<C: WithSession>(
    runtime: Runtime,
    config: &ConnectConfig,
    options: &Options,
    command: C,
) -> Result<C::Output, Failure> {
    let host = config.host.as_str();
    let port = config.port;
    let implicit = config.tls == TlsMode::Implicit;
    Ok(match runtime {
        Runtime::Blocking => {
            let conn = if implicit {
                pop3_blocking::connect_tls(host, port, options).wait()
            } else {
                pop3_blocking::connect_plain(host, port, options).wait()
            };
            command.with(conn.map(|conn| Session::new(conn, BlockingExec)))
        }
        Runtime::Tokio => {
            let exec = TokioExec(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Failure::new(Exit::Software, format!("tokio runtime: {e}"))
                            .context(config.endpoint())
                    })?,
            );
            let conn = exec.block_on(async {
                if implicit {
                    pop3_tokio::connect_tls(host, port, options).await
                } else {
                    pop3_tokio::connect_plain(host, port, options).await
                }
            });
            command.with(conn.map(|conn| Session::new(conn, exec)))
        }
        Runtime::Smol => {
            let conn = SmolExec.block_on(async {
                if implicit {
                    pop3_smol::connect_tls(host, port, options).await
                } else {
                    pop3_smol::connect_plain(host, port, options).await
                }
            });
            command.with(conn.map(|conn| Session::new(conn, SmolExec)))
        }
    })
}

/// The library's connection on a runtime, with the executor that runs its
/// futures. It adds no operations: the commands call the connection's own
/// ([`Session::run`], [`Session::finish`]).
pub(crate) struct Session<X, Y, R, E> {
    // Dropped before the executor that drives it.
    conn: Connection<MaybeTls<X, Y>, R>,
    exec: E,
}

impl<X, Y, R, E: Exec> Session<X, Y, R, E> {
    fn new(conn: Connection<MaybeTls<X, Y>, R>, exec: E) -> Self {
        Session { conn, exec }
    }

    /// The connection, for what needs no waiting (greeting, capabilities).
    pub(crate) fn conn(&self) -> &Connection<MaybeTls<X, Y>, R> {
        &self.conn
    }

    /// Runs one operation of the connection to completion.
    pub(crate) fn run<'a, F: Future + 'a>(
        &'a mut self,
        op: impl FnOnce(&'a mut Connection<MaybeTls<X, Y>, R>) -> F,
    ) -> F::Output {
        self.exec.block_on(op(&mut self.conn))
    }

    /// Runs an operation that ends the connection (`QUIT` and its kin).
    pub(crate) fn finish<F: Future>(
        self,
        op: impl FnOnce(Connection<MaybeTls<X, Y>, R>) -> F,
    ) -> F::Output {
        let Session { conn, exec } = self;
        exec.block_on(op(conn))
    }
}

/// Why `--ca-file` gave no certificate (the library reports it as an I/O
/// error).
fn unusable_pem(error: Error) -> String {
    match error {
        Error::Io(e) => e.to_string(),
        other => net_failure(&other, None).message,
    }
}
