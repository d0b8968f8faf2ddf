//! Opening TCP connections: plaintext, implicit TLS, and STLS.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::connection::Connection;
use crate::error::from_io;
use crate::stream::MaybeTls;
use crate::{Error, Phase, Result};
use crate::{Options, Timeouts};

/// A connection opened by one of the connect helpers.
pub type TcpConnection = Connection<MaybeTls<TcpStream>>;

fn set_socket_timeouts(
    socket: &TcpStream,
    read: Option<Duration>,
    write: Option<Duration>,
) -> io::Result<()> {
    socket.set_read_timeout(read)?;
    socket.set_write_timeout(write)
}

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
    let error = last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no address to connect to"),
        )
    });
    Err(from_io(error, Phase::Connect))
}

/// Connects without TLS (POP3 port 110) and reads the greeting.
///
/// Credentials are refused on this connection unless
/// [`Options::allow_plaintext_auth`] is set: use [`connect_tls`] or
/// [`connect_starttls`] for real servers.
pub fn connect_plain(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let socket = tcp_connect(host, port, &options.timeouts)?;
    set_socket_timeouts(&socket, options.timeouts.read, options.timeouts.write)
        .map_err(Error::Io)?;
    Connection::start(MaybeTls::Plain(socket), options, false)
}

/// Connects with implicit TLS (POP3S, port 995): the TLS handshake comes
/// first, verifying the server's certificate for [`Options::server_name`]
/// (default `host`), then the greeting is read.
pub fn connect_tls(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let config = options.tls.client_config()?;
    let name = options.tls_server_name(host)?;
    let socket = tcp_connect(host, port, &options.timeouts)?;
    let mut stream = MaybeTls::Plain(socket);
    let timeouts = options.timeouts;
    stream.start_tls(config, name, &mut |socket, handshaking| {
        if handshaking {
            set_socket_timeouts(socket, timeouts.tls_handshake, timeouts.tls_handshake)
        } else {
            set_socket_timeouts(socket, timeouts.read, timeouts.write)
        }
    })?;
    Connection::start(stream, options, true)
}

/// Connects without TLS, then upgrades with `STLS` (RFC 2595) before anything
/// else: reads the greeting, sends `CAPA`, and fails with
/// [`Error::StlsUnavailable`] if `STLS` is not listed (nothing else is sent,
/// and there is never a fallback to plaintext); a `-ERR` to `STLS` is
/// [`Error::Server`]. Then the TLS handshake verifies the server's certificate
/// for [`Options::server_name`] (default `host`), and the core asks for the
/// capabilities again over TLS.
pub fn connect_starttls(host: &str, port: u16, options: &Options) -> Result<TcpConnection> {
    let socket = tcp_connect(host, port, &options.timeouts)?;
    set_socket_timeouts(&socket, options.timeouts.read, options.timeouts.write)
        .map_err(Error::Io)?;
    let mut connection = Connection::start(MaybeTls::Plain(socket), options, false)?;
    match connection.capa() {
        Ok(capabilities) if capabilities.stls() => {}
        Ok(_) | Err(Error::Server(_)) => return Err(Error::StlsUnavailable),
        Err(error) => return Err(error),
    }
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    let timeouts = options.timeouts;
    connection.stls_with(&name, &mut |socket, handshaking| {
        if handshaking {
            set_socket_timeouts(socket, timeouts.tls_handshake, timeouts.tls_handshake)
        } else {
            set_socket_timeouts(socket, timeouts.read, timeouts.write)
        }
    })?;
    Ok(connection)
}
