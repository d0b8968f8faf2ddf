//! Opening connections: plaintext, implicit TLS, and `STLS`.

use std::sync::Arc;

use pop3_transport::nonblocking::with_timeout;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{Connect, TlsConnector};

use crate::runtime::Sleep;
use crate::{Connection, Error, MaybeTls, Options, Phase, Result};

/// A connection made by the connect functions.
pub type TcpConnection = Connection<MaybeTls<TcpStream>>;

/// The TLS handshake over `stream` (for [`connect_tls`] and
/// [`Connection::stls`]).
pub(crate) fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
) -> Connect<S> {
    TlsConnector::from(config).connect(name, stream)
}

async fn tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream> {
    let connect = TcpStream::connect((host, port));
    let limit = options.timeouts.connect;
    let stream = with_timeout::<Sleep, _>(limit, Phase::Connect, connect).await?;
    // Commands are small and each batch is written at once.
    stream.set_nodelay(true).map_err(Error::Io)?;
    Ok(stream)
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
    let handshake = tls_connect(config, name, stream);
    let limit = options.timeouts.tls_handshake;
    let tls = with_timeout::<Sleep, _>(limit, Phase::TlsHandshake, handshake).await?;
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
