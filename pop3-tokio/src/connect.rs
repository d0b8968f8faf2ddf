//! Opening connections: plaintext, implicit TLS, and `STLS`.

use pop3_transport::connect::{connect, Security};
use pop3_transport::runtime::tokio::Tokio;
use pop3_transport::runtime::with_timeout;
use tokio::net::TcpStream;

use crate::{Connection, Error, MaybeTls, Options, Phase, Result};

/// The transport's own part: a TCP connection, within the connect limit.
async fn tcp(host: &str, port: u16, options: &Options) -> Result<MaybeTls<TcpStream>> {
    let attempt = TcpStream::connect((host, port));
    let limit = options.timeouts.connect;
    let stream = with_timeout::<Tokio, _>(limit, Phase::Connect, attempt).await?;
    // Commands are small and each batch is written at once.
    stream.set_nodelay(true).map_err(Error::Io)?;
    tracing::debug!("connected");
    Ok(MaybeTls::Plain(stream))
}

/// Connects without TLS (POP3 port 110) and reads the greeting. Credentials
/// are then refused unless [`Options::allow_plaintext_credentials`]; use
/// [`connect_tls`] or [`connect_starttls`] for real servers.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
#[must_use = "no connection is made until this is awaited"]
pub async fn connect_plain(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Tokio, _>(host, port, options, Security::Plain, async |h, p| {
        tcp(h, p, options).await
    })
    .await
}

/// Connects with implicit TLS (POP3S, port 995): the TLS handshake comes
/// first, verifying the server's certificate for [`Options::server_name`]
/// (default `host`), then the greeting is read.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`; TLS is still for `host`.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
#[must_use = "no connection is made until this is awaited"]
pub async fn connect_tls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Tokio, _>(host, port, options, Security::ImplicitTls, async |h, p| {
        tcp(h, p, options).await
    })
    .await
}

/// Connects without TLS, then upgrades with `STLS` (RFC 2595) before anything
/// else: fails with [`Error::StlsUnavailable`] if the capabilities do not
/// list `STLS` (nothing but `CAPA` is sent, and there is never a fallback to
/// plaintext); a `-ERR` to `STLS` is [`Error::Server`]. The certificate is
/// verified for [`Options::server_name`] (default `host`), and the core asks
/// for the capabilities again over TLS.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
///
/// Cancel-safety: nothing is shared; dropping the future drops the socket.
#[must_use = "no connection is made until this is awaited"]
pub async fn connect_starttls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Tokio, _>(host, port, options, Security::StartTls, async |h, p| {
        tcp(h, p, options).await
    })
    .await
}
