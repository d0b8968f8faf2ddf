//! Opening TCP connections: plaintext, implicit TLS, and STLS.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};

use pop3_transport::connect::{connect, Security};
use pop3_transport::runtime::blocking::Blocking;

use crate::{Connection, Error, MaybeTls, Options, Phase, Result, Timeouts};

/// Resolves `host` and connects to the first address that answers, each
/// attempt limited by `timeouts.connect`.
fn tcp_connect(host: &str, port: u16, timeouts: &Timeouts) -> Result<TcpStream> {
    let addresses = (host, port).to_socket_addrs().map_err(Error::Io)?;
    let mut last_error = None;
    for address in addresses {
        let attempt = match timeouts.connect {
            Some(limit) => TcpStream::connect_timeout(&address, limit),
            None => TcpStream::connect(address),
        };
        match attempt {
            Ok(socket) => {
                // Commands are small: send each at once.
                socket.set_nodelay(true).map_err(Error::Io)?;
                return Ok(socket);
            }
            Err(error) => last_error = Some(error),
        }
    }
    // The caller names the host and port (pop3_transport::connect).
    let error = last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address"));
    if error.kind() == io::ErrorKind::TimedOut {
        return Err(Error::Timeout(Phase::Connect));
    }
    Err(Error::Io(error))
}

/// Connects without TLS (POP3 port 110) and reads the greeting. Credentials
/// are then refused unless [`Options::allow_plaintext_credentials`]; use
/// [`connect_tls`] or [`connect_starttls`] for real servers.
///
/// With [`Options::proxy`] set, the connection goes through that SOCKS5
/// proxy, which resolves `host`.
///
/// Like every operation, it is run with `.wait()`:
/// `let mut pop3 = connect_plain(host, 110, &options).wait()?;`.
#[must_use = "no connection is made until this is run: add `.wait()` (or `.await`)"]
pub async fn connect_plain(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Blocking, _>(host, port, options, Security::Plain, async |h, p| {
        tcp(h, p, options)
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
/// Like every operation, it is run with `.wait()`:
/// `let mut pop3 = connect_tls(host, 995, &options).wait()?;`.
#[must_use = "no connection is made until this is run: add `.wait()` (or `.await`)"]
pub async fn connect_tls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Blocking, _>(host, port, options, Security::ImplicitTls, async |h, p| {
        tcp(h, p, options)
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
/// Like every operation, it is run with `.wait()`:
/// `let mut pop3 = connect_starttls(host, 110, &options).wait()?;`.
#[must_use = "no connection is made until this is run: add `.wait()` (or `.await`)"]
pub async fn connect_starttls(host: &str, port: u16, options: &Options) -> Result<Connection> {
    connect::<Blocking, _>(host, port, options, Security::StartTls, async |h, p| {
        tcp(h, p, options)
    })
    .await
}

/// The transport's own part: a TCP connection, each address tried within the
/// connect limit.
fn tcp(host: &str, port: u16, options: &Options) -> Result<MaybeTls<TcpStream>> {
    let socket = tcp_connect(host, port, &options.timeouts)?;
    tracing::debug!("connected");
    Ok(MaybeTls::Plain(socket))
}
