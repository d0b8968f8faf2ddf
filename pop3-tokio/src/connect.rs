//! Opening connections: plaintext, implicit TLS, and `STLS`.

use std::sync::Arc;

use pop3_proto::{Command, Reply, UsageError};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::connection::with_timeout;
use crate::{Connection, Error, MaybeTls, Options, Phase, Result};

/// A connection made by the connect functions.
pub type TcpConnection = Connection<MaybeTls<TcpStream>>;

async fn tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream> {
    let stream = with_timeout(
        options.timeouts.connect,
        Phase::Connect,
        TcpStream::connect((host, port)),
    )
    .await?;
    // Commands are small and each batch is written at once.
    stream.set_nodelay(true).map_err(Error::Io)?;
    Ok(stream)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
    options: &Options,
) -> Result<TlsStream<S>> {
    let connect = TlsConnector::from(config).connect(name, stream);
    with_timeout(options.timeouts.tls_handshake, Phase::TlsHandshake, connect).await
}

/// Connects without TLS (port 110). Credentials are then refused unless
/// [`Options::allow_plaintext_auth`]; use [`connect_starttls`] or
/// [`connect_tls`] instead.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
pub async fn connect_plain(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let stream = tcp(host, port, options).await?;
    Connection::start(MaybeTls::Plain(stream), options, false).await
}

/// Connects with implicit TLS (port 995): the TLS handshake comes before the
/// greeting. The certificate is verified against [`Options::server_name`] or
/// `host`.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
pub async fn connect_tls(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let config = options.tls.client_config()?;
    let name = options.tls_server_name(host)?;
    let stream = tcp(host, port, options).await?;
    let tls = handshake(config, name, stream, options).await?;
    Connection::start(MaybeTls::Tls(Box::new(tls)), options, true).await
}

/// Connects in plaintext and upgrades with `STLS` (port 110) before anything
/// else; see [`Connection::stls`]. Fails with [`Error::StlsUnavailable`] if the
/// server does not offer it — never falls back to plaintext.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
pub async fn connect_starttls(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let mut conn = connect_plain(host, port, options).await?;
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    conn.stls(&name).await?;
    Ok(conn)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<MaybeTls<S>> {
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
    pub async fn stls(&mut self, server_name: &str) -> Result<()> {
        let config = self.options.tls.client_config()?;
        let name = pop3_transport::parse_server_name(server_name)?;
        let capabilities = match self.capabilities() {
            Some(capabilities) => capabilities.clone(),
            None => match self.capa().await {
                Ok(capabilities) => capabilities,
                Err(Error::Server(_)) => return Err(Error::StlsUnavailable),
                Err(error) => return Err(error),
            },
        };
        if !capabilities.stls() {
            return Err(Error::StlsUnavailable);
        }
        self.begin()?;
        let result = self.stls_steps(config, name).await;
        self.busy = false;
        result
    }

    async fn stls_steps(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<()> {
        let handle = self.client.submit(Command::Stls)?;
        let reply = self.drive(usize::MAX, |event| {
            match crate::connection::outcome(event) {
                Some((h, result)) if h == handle => result.map(Some),
                _ => Ok(None),
            }
        });
        match reply.await? {
            Some(Reply::StartTls) => {}
            Some(_) | None => {
                self.poisoned = true;
                return Err(Error::Closed);
            }
        }
        // Until the handshake succeeds the connection is unusable.
        self.poisoned = true;
        let plain = match std::mem::replace(&mut self.stream, MaybeTls::Broken) {
            MaybeTls::Plain(plain) => plain,
            other => {
                self.stream = other;
                return Err(Error::Usage(UsageError::WrongState {
                    command: "STLS",
                    reason: "the stream is already TLS",
                }));
            }
        };
        let tls = handshake(config, name, plain, &self.options).await?;
        self.stream = MaybeTls::Tls(Box::new(tls));
        self.client.tls_established()?;
        self.poisoned = false;
        self.settle().await
    }
}
