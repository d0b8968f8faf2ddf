//! Opening connections: plaintext, implicit TLS, and `STLS`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use async_io::Async;
use pop3_transport::connect::open_stream;
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

async fn tcp(host: &str, port: u16, options: &Options) -> Result<TcpStream> {
    let connect = resolve_and_connect(host, port);
    let limit = options.timeouts.connect;
    let stream = with_timeout::<Smol, _>(limit, Phase::Connect, connect).await?;
    // Commands are small and each batch is written at once.
    stream.get_ref().set_nodelay(true).map_err(Error::Io)?;
    tracing::debug!("connected");
    Ok(stream)
}

/// The TCP connection to `host` (or to [`Options::proxy`], then tunnelled
/// to `host`), with implicit TLS when `tls`.
async fn open(host: &str, port: u16, options: &Options, tls: bool) -> Result<MaybeTls<TcpStream>> {
    open_stream::<Smol, _>(host, port, options, tls, async |host, port| {
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
