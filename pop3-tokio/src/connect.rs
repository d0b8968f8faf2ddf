//! Opening connections: plaintext, implicit TLS, and `STLS`.

use pop3_transport::connect::open_stream;
use pop3_transport::runtime::tokio::Tokio;
use pop3_transport::runtime::with_timeout;
use tokio::net::TcpStream;

use crate::{Connection, Error, MaybeTls, Options, Phase, Result};

async fn tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream> {
    let connect = TcpStream::connect((host, port));
    let limit = options.timeouts.connect;
    let stream = with_timeout::<Tokio, _>(limit, Phase::Connect, connect).await?;
    // Commands are small and each batch is written at once.
    stream.set_nodelay(true).map_err(Error::Io)?;
    tracing::debug!("connected");
    Ok(stream)
}

/// The TCP connection to `host` (or to [`Options::proxy`], then tunnelled
/// to `host`), with implicit TLS when `tls`.
async fn open(host: &str, port: u16, options: &Options, tls: bool) -> Result<MaybeTls<TcpStream>> {
    open_stream::<Tokio, _>(host, port, options, tls, async |host, port| {
        Ok(MaybeTls::Plain(tcp(host, port, options).await?))
    })
    .await
}

/// Connects without TLS (port 110). Credentials are then refused unless
/// [`Options::allow_plaintext_auth`]; use [`connect_starttls`] or
/// [`connect_tls`] instead.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
pub async fn connect_plain(host: &str, port: u16, options: &Options) -> Result<Connection> {
    Connection::traced(host, port, async {
        let stream = open(host, port, options, false).await?;
        Connection::start(stream, options, false).await
    })
    .await
}

/// Connects with implicit TLS (port 995): the TLS handshake comes before the
/// greeting. The certificate is verified against [`Options::server_name`] or
/// `host`.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
pub async fn connect_tls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    Connection::traced(host, port, async {
        let stream = open(host, port, options, true).await?;
        Connection::start(stream, options, true).await
    })
    .await
}

/// Connects in plaintext and upgrades with `STLS` (port 110) before anything
/// else; see [`Connection::stls`]. Fails with [`Error::StlsUnavailable`] if the
/// server does not offer it — never falls back to plaintext.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
pub async fn connect_starttls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    let mut conn = connect_plain(host, port, options).await?;
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    conn.stls(&name).await?;
    Ok(conn)
}
