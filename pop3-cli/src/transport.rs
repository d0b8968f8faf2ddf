//! The one [`Session`] implementation, over the library's one connection
//! type on whichever runtime `--runtime` chose.
//!
//! Every runtime runs the same `pop3_transport::Connection`; what differs is
//! only how its futures are run ([`Exec`]) and which crate opens the socket.

use std::future::Future;
use std::io::{self, Write};
use std::time::Duration;

use pop3_blocking::rustls::{self, CertificateError, ClientConnection};
use pop3_proto::{AuthMethod, Capabilities, Greeting, ListEntry, MsgNum, Secret, Stat, UidlEntry};
use pop3_transport::runtime::{MessageSink as LibrarySink, Runtime as LibraryRuntime, StartTls};
use pop3_transport::{
    CertificateInfo, Connection, Error, Options, PeerCertificates, Sha256Fingerprint, Timeouts,
    TlsOptions, TrustRoots,
};

use crate::cli::{Runtime, TlsMode, Trust};
use crate::error::{Exit, Failure, NetError, TlsProblem};
use crate::session::{MessageSink, Session, Stop, TlsDetails};

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
    /// `--proxy`: the SOCKS5 proxy to connect through.
    pub(crate) proxy: Option<pop3_transport::socks5::Socks5Proxy>,
    /// Where every handshake records the certificates the server presented,
    /// trusted or not, so that a refusal can name the certificate (and its
    /// fingerprint) and `serverinfo` can show it.
    pub(crate) presented: PeerCertificates,
    /// `--timeout`: the same limit for every step; `None` keeps the
    /// transports' defaults.
    pub(crate) timeout: Option<Duration>,
    /// `--allow-plaintext-auth`.
    pub(crate) allow_plaintext_auth: bool,
}

impl ConnectConfig {
    /// What the server's own certificate from the latest handshake says.
    pub(crate) fn presented_certificate(&self) -> Option<CertificateInfo> {
        let der = self.presented.end_entity()?;
        CertificateInfo::from_der(der.as_ref()).ok()
    }

    /// The library's error as the command reports it; a TLS error is
    /// explained knowing the certificate the server presented.
    fn net_error(&self, error: Error) -> NetError {
        match &error {
            Error::Tls(tls) => {
                let presented = self.presented_certificate();
                let advice = error
                    .tls_advice_for(presented.as_ref())
                    .unwrap_or_else(|| tls.to_string());
                let (certificate_refused, unknown_issuer) = match tls {
                    rustls::Error::InvalidCertificate(problem) => (
                        presented.is_some(),
                        matches!(problem, CertificateError::UnknownIssuer)
                            || is_ca_used_as_end_entity(problem),
                    ),
                    _ => (false, false),
                };
                NetError::Tls(TlsProblem {
                    advice,
                    certificate_refused,
                    unknown_issuer,
                })
            }
            _ => NetError::from(error),
        }
    }
}

/// webpki's refusal of a CA certificate serving as a server's own: what a
/// certificate made by `openssl req -x509` gets when it is not trusted by
/// its exact bytes.
fn is_ca_used_as_end_entity(problem: &CertificateError) -> bool {
    match problem {
        CertificateError::Other(other) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl From<Error> for NetError {
    fn from(error: Error) -> NetError {
        error_ref(&error)
    }
}

/// A copy of a borrowed error (the sinks of `retr_many` get a reference).
fn error_ref(error: &Error) -> NetError {
    if let Some(advice) = error.tls_advice() {
        return NetError::Tls(TlsProblem::other(advice));
    }
    match error {
        Error::Io(e) => NetError::Io(io::Error::new(e.kind(), e.to_string())),
        Error::Sink(e) => NetError::Sink(io::Error::new(e.kind(), e.to_string())),
        Error::Tls(e) => NetError::Tls(TlsProblem::other(e.to_string())),
        Error::Protocol(e) => NetError::Protocol(e.clone()),
        Error::BadReply(e) => NetError::BadReply(e.clone()),
        Error::Usage(e) => NetError::Usage(e.clone()),
        Error::Server(e) => NetError::Server(e.clone()),
        Error::Timeout(phase) => NetError::Timeout(phase.to_string()),
        Error::Closed => NetError::Closed,
        Error::StlsUnavailable => NetError::StlsUnavailable,
        Error::Proxy(e) => NetError::Proxy(e.to_string()),
        other => NetError::Other(other.to_string()),
    }
}

/// The rustls session of a transport's stream, whichever runtime's it is.
trait TlsStream {
    /// The rustls connection, once TLS is on.
    fn rustls(&self) -> Option<&ClientConnection>;
}

impl<S: io::Read + io::Write> TlsStream for pop3_blocking::MaybeTls<S> {
    fn rustls(&self) -> Option<&ClientConnection> {
        self.tls_connection()
    }
}

impl<S> TlsStream for pop3_tokio::MaybeTls<S> {
    fn rustls(&self) -> Option<&ClientConnection> {
        self.tls_connection()
    }
}

impl<S> TlsStream for pop3_smol::MaybeTls<S> {
    fn rustls(&self) -> Option<&ClientConnection> {
        self.tls_connection()
    }
}

/// What a rustls session negotiated and was shown.
fn tls_details(connection: &ClientConnection) -> TlsDetails {
    let version = connection.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    });
    let cipher = connection.negotiated_cipher_suite().map(|suite| {
        let id = suite.suite();
        id.as_str().map_or_else(|| format!("{id:?}"), str::to_owned)
    });
    let chain = connection
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();
    TlsDetails {
        version,
        cipher,
        chain,
    }
}

/// Runs futures to completion on the chosen runtime.
trait Exec {
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
                format!("--ca-file: no usable certificate: {}", NetError::from(e)),
            )
        })?;
    }
    if let Some(fingerprint) = config.fingerprint {
        tls = tls.pin_sha256(fingerprint);
    }
    let mut options = Options::new()
        .tls(tls)
        .allow_plaintext_auth(config.allow_plaintext_auth);
    if let Some(limit) = config.timeout {
        options = options.timeouts(Timeouts::uniform(limit));
    }
    if let Some(proxy) = &config.proxy {
        options = options.proxy(proxy.clone());
    }
    Ok(options)
}

/// Connects with the chosen runtime and reads the greeting (and, with
/// `--tls starttls`, upgrades to TLS first). Errors name `host:port`.
pub(crate) fn connect(
    runtime: Runtime,
    config: &ConnectConfig,
) -> Result<Box<dyn Session>, Failure> {
    let context =
        |e: NetError| Failure::from(e).context(format_args!("{}:{}", config.host, config.port));
    let options = options(config)?;
    let mut session = open(runtime, config, &options).map_err(context)?;
    if config.tls == TlsMode::Starttls {
        session.stls().map_err(context)?;
    }
    Ok(session)
}

/// Connects with the chosen runtime and reads the greeting: after the TLS
/// handshake with `--tls implicit`, in plaintext otherwise (`--tls
/// starttls` then needs [`Session::stls`], which is what `connect` does).
pub(crate) fn open(
    runtime: Runtime,
    config: &ConnectConfig,
    options: &Options,
) -> Result<Box<dyn Session>, NetError> {
    let host = config.host.as_str();
    let port = config.port;
    let implicit = config.tls == TlsMode::Implicit;
    let error = |e: Error| config.net_error(e);
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    Ok(match runtime {
        Runtime::Blocking => {
            let conn = if implicit {
                pop3_blocking::connect_tls(host, port, options)
            } else {
                pop3_blocking::connect_plain(host, port, options)
            }
            .map_err(error)?;
            Box::new(Live::new(conn, BlockingExec, name, config.clone()))
        }
        Runtime::Tokio => {
            let exec = TokioExec(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| NetError::Other(format!("tokio runtime: {e}")))?,
            );
            let conn = exec
                .block_on(async {
                    if implicit {
                        pop3_tokio::connect_tls(host, port, options).await
                    } else {
                        pop3_tokio::connect_plain(host, port, options).await
                    }
                })
                .map_err(error)?;
            Box::new(Live::new(conn, exec, name, config.clone()))
        }
        Runtime::Smol => {
            let conn = SmolExec
                .block_on(async {
                    if implicit {
                        pop3_smol::connect_tls(host, port, options).await
                    } else {
                        pop3_smol::connect_plain(host, port, options).await
                    }
                })
                .map_err(error)?;
            Box::new(Live::new(conn, SmolExec, name, config.clone()))
        }
    })
}

/// A connection on any runtime, with the executor that runs it.
struct Live<S, R, E> {
    // Dropped before the executor that drives it.
    conn: Connection<S, R>,
    exec: E,
    /// The name the certificate must be valid for, for `STLS`.
    server_name: String,
    /// The settings it was opened with, to explain TLS errors of `STLS`.
    config: ConnectConfig,
}

impl<S, R, E> Live<S, R, E> {
    fn new(conn: Connection<S, R>, exec: E, server_name: String, config: ConnectConfig) -> Self {
        Live {
            conn,
            exec,
            server_name,
            config,
        }
    }
}

/// The library's sink in front of the command's [`MessageSink`]: a stop
/// becomes an error, which ends the retrieval cleanly.
struct SinkAdapter<'a> {
    sink: &'a mut dyn MessageSink,
}

fn stopped(Stop: Stop) -> io::Error {
    io::Error::other("the delivery stopped")
}

impl LibrarySink for SinkAdapter<'_> {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) -> io::Result<()> {
        self.sink.on_chunk(msg, chunk).map_err(stopped)
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) -> io::Result<()> {
        let result = result.map(drop).map_err(error_ref);
        self.sink.on_end(msg, result).map_err(stopped)
    }
}

/// Copies a message from the reader into a blocking writer.
async fn copy_out<S: pop3_transport::runtime::IoStream, R: LibraryRuntime>(
    mut reader: pop3_transport::MessageReader<'_, S, R>,
    out: &mut dyn Write,
) -> Result<u64, NetError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read_chunk(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(NetError::Sink)?;
        total += n as u64;
    }
    out.flush().map_err(NetError::Sink)?;
    Ok(total)
}

impl<S: StartTls + TlsStream, R: LibraryRuntime, E: Exec> Session for Live<S, R, E> {
    fn greeting(&self) -> &Greeting {
        self.conn().greeting()
    }

    fn tls(&self) -> Option<TlsDetails> {
        self.conn().get_ref().rustls().map(tls_details)
    }

    fn stls(&mut self) -> Result<(), NetError> {
        let Live {
            conn,
            exec,
            server_name,
            config,
        } = self;
        exec.block_on(conn.stls(server_name))
            .map_err(|e| config.net_error(e))
    }

    fn is_encrypted(&self) -> bool {
        self.conn().client().is_encrypted()
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.conn().capabilities().cloned()
    }

    fn login_attempts(&self) -> Vec<String> {
        self.conn().client().login_attempts().to_vec()
    }

    fn capa(&mut self) -> Result<Capabilities, NetError> {
        self.run(|c| c.capa())
    }

    fn authenticate(
        &mut self,
        method: AuthMethod,
        user: &str,
        secret: Secret<String>,
    ) -> Result<(), NetError> {
        self.run(|c| c.login_with(user, secret, method))
    }

    fn stat(&mut self) -> Result<Stat, NetError> {
        self.run(|c| c.stat())
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, NetError> {
        self.run(|c| c.list())
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, NetError> {
        self.run(|c| c.list_one(msg))
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, NetError> {
        self.run(|c| c.uidl())
    }

    fn uidl_and_list(
        &mut self,
    ) -> Result<
        (
            Result<Vec<UidlEntry>, NetError>,
            Result<Vec<ListEntry>, NetError>,
        ),
        NetError,
    > {
        let (uidl, list) = self.run(|c| c.uidl_and_list())?;
        Ok((uidl.map_err(NetError::from), list.map_err(NetError::from)))
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, NetError> {
        self.run(|c| c.uidl_one(msg))
    }

    fn retr_to(&mut self, msg: MsgNum, out: &mut dyn Write) -> Result<u64, NetError> {
        let Live { conn, exec, .. } = self;
        exec.block_on(async { copy_out(conn.retr(msg).await?, out).await })
    }

    fn top_to(&mut self, msg: MsgNum, lines: u32, out: &mut dyn Write) -> Result<u64, NetError> {
        let Live { conn, exec, .. } = self;
        exec.block_on(async { copy_out(conn.top(msg, lines).await?, out).await })
    }

    fn retr_many(&mut self, msgs: &[MsgNum], sink: &mut dyn MessageSink) -> Result<(), NetError> {
        let mut adapter = SinkAdapter { sink };
        // Each message's outcome went to the sink already; a stop of the
        // sink is its own business (it keeps the reason).
        match self.run(|c| c.retr_many(msgs, &mut adapter)) {
            Ok(_) | Err(NetError::Sink(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), NetError> {
        self.run(|c| c.dele(msg))
    }

    fn quit(self: Box<Self>) -> Result<(), NetError> {
        let Live { conn, exec, .. } = *self;
        Ok(exec.block_on(conn.quit())?)
    }

    fn dele_many_and_quit(
        self: Box<Self>,
        msgs: &[MsgNum],
    ) -> Result<(Vec<Result<(), NetError>>, Result<(), NetError>), NetError> {
        let Live { conn, exec, .. } = *self;
        let pop3_transport::BulkDeletion {
            per_message: results,
            quit,
        } = exec.block_on(conn.dele_many_and_quit(msgs))?;
        let results = results
            .into_iter()
            .map(|r| r.map_err(NetError::from))
            .collect();
        Ok((results, quit.map_err(NetError::from)))
    }

    fn retr_many_and_quit(
        self: Box<Self>,
        msgs: &[MsgNum],
        sink: &mut dyn MessageSink,
    ) -> Result<Result<(), NetError>, NetError> {
        let Live { conn, exec, .. } = *self;
        let mut adapter = SinkAdapter { sink };
        // As in retr_many: the sink keeps the reason it stopped for.
        match exec.block_on(conn.retr_many_and_quit(msgs, &mut adapter)) {
            Ok(retrieval) => Ok(retrieval.quit.map_err(NetError::from)),
            Err(Error::Sink(_)) => Ok(Ok(())),
            Err(error) => Err(error.into()),
        }
    }
}

impl<S, R, E: Exec> Live<S, R, E> {
    fn conn(&self) -> &Connection<S, R> {
        &self.conn
    }

    /// Runs one operation of the connection on the executor.
    fn run<'a, T, F>(
        &'a mut self,
        op: impl FnOnce(&'a mut Connection<S, R>) -> F,
    ) -> Result<T, NetError>
    where
        F: Future<Output = Result<T, Error>> + 'a,
    {
        Ok(self.exec.block_on(op(&mut self.conn))?)
    }
}
