//! Opening connections: plaintext, implicit TLS, and `STLS`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use async_io::Async;
use pop3_transport::connect::{connect, Security};
use pop3_transport::runtime::smol::Smol;
use pop3_transport::runtime::with_timeout;

use crate::{Connection, Error, MaybeTls, Options, Phase, Result};

/// A TCP stream registered with the `async-io` reactor.
pub type TcpStream = Async<std::net::TcpStream>;

/// Resolves `host` (on the `blocking` thread pool unless it is an IP address)
/// and connects to its addresses in turn.
async fn resolve_and_connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let host = host.to_owned();
            blocking::unblock(move || {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
            })
            .await?
        }
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in addrs {
        match Async::<std::net::TcpStream>::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// The transport's own part: a TCP connection, within the connect limit.
async fn tcp(host: &str, port: u16, options: &Options) -> Result<MaybeTls<TcpStream>> {
    let attempt = resolve_and_connect(host, port);
    let limit = options.timeouts.connect;
    let stream = with_timeout::<Smol, _>(limit, Phase::Connect, attempt).await?;
    // Commands are small and each batch is written at once.
    stream.get_ref().set_nodelay(true).map_err(Error::Io)?;
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
    connect::<Smol, _>(host, port, options, Security::Plain, async |h, p| {
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
    connect::<Smol, _>(host, port, options, Security::ImplicitTls, async |h, p| {
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
    connect::<Smol, _>(host, port, options, Security::StartTls, async |h, p| {
        tcp(h, p, options).await
    })
    .await
}
