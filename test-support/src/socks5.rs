//! A small SOCKS5 proxy (RFC 1928, with RFC 1929 user name and password) on
//! loopback, for tests that connect through a proxy, including broken ones.
//!
//! [`Socks5Server::start`] binds `127.0.0.1:0` and serves every connection on
//! its own thread. With [`Behaviour::Relay`] it is a real proxy: it resolves
//! the requested host name itself (as Tor does) and relays bytes both ways.
//! The other behaviours are faults: garbage instead of a SOCKS reply, a
//! refusal with a chosen reply code, a reply cut short, or silence. Every
//! read has a time limit ([`Socks5Config::timeout`]), so a misbehaving client
//! cannot hang a test, and every request is recorded
//! ([`Socks5Server::requests`]) so tests can check what the client asked for.
//!
//! ```no_run
//! use test_support::socks5::{Socks5Config, Socks5Server};
//!
//! let proxy = Socks5Server::start(Socks5Config::relay().require_auth("user", "pass"));
//! // ... connect the client under test to proxy.addr() ...
//! let requests = proxy.requests();
//! assert_eq!(requests[0].host, "localhost");
//! ```

use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the proxy does with a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Be a working proxy: connect to the destination and relay.
    Relay,
    /// Answer the client's method offer with these bytes, then close.
    Garbage(Vec<u8>),
    /// Answer the CONNECT request with this reply code (non-zero), then close.
    Refuse(u8),
    /// Answer the CONNECT request with the first few bytes of a success
    /// reply, then close.
    TruncatedReply,
    /// Read the method offer and say nothing until the client closes (or the
    /// time limit passes).
    Silent,
}

/// How a [`Socks5Server`] behaves.
#[derive(Debug, Clone)]
pub struct Socks5Config {
    /// Required user name and password; `None` accepts "no authentication".
    pub credentials: Option<(String, String)>,
    /// What to do with each connection.
    pub behaviour: Behaviour,
    /// Time limit of every read during the handshake, and of idle relaying.
    pub timeout: Duration,
    /// Names only this proxy can resolve, and their addresses: as Tor
    /// resolves names the client's own resolver does not know.
    pub hosts: Vec<(String, IpAddr)>,
}

impl Socks5Config {
    /// A working proxy without authentication.
    pub fn relay() -> Self {
        Socks5Config {
            credentials: None,
            behaviour: Behaviour::Relay,
            timeout: Duration::from_secs(10),
            hosts: Vec::new(),
        }
    }

    /// A proxy with the given behaviour, without authentication.
    pub fn with_behaviour(behaviour: Behaviour) -> Self {
        Socks5Config {
            behaviour,
            ..Socks5Config::relay()
        }
    }

    /// Makes the proxy resolve `name` to `address` (and no one else: the
    /// client's resolver still fails on it).
    #[must_use]
    pub fn resolve(mut self, name: &str, address: IpAddr) -> Self {
        self.hosts.push((name.to_owned(), address));
        self
    }

    /// Requires RFC 1929 authentication with exactly these credentials.
    #[must_use]
    pub fn require_auth(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }
}

/// What one client asked the proxy for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The authentication methods the client offered.
    pub methods: Vec<u8>,
    /// The user name and password the client sent, if it authenticated.
    pub credentials: Option<(String, String)>,
    /// The CONNECT request's address type: 1 IPv4, 3 host name, 4 IPv6
    /// (0 if the client never sent one).
    pub address_type: u8,
    /// The requested host: the name as sent, or the address as text.
    pub host: String,
    /// The requested port.
    pub port: u16,
}

/// A SOCKS5 proxy on loopback; stops accepting when dropped.
pub struct Socks5Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Socks5Server {
    /// Starts the proxy. Panics if loopback cannot be bound.
    pub fn start(config: Socks5Config) -> Socks5Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, requests) = (config.clone(), Arc::clone(&requests));
                    thread::spawn(move || {
                        // A client that gives up mid-handshake is not the
                        // proxy's failure; the test sees its own error.
                        let _ = serve(stream, &config, &requests);
                    });
                }
            })
        };
        Socks5Server {
            addr,
            requests,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy as a URL, `socks5://[user:password@]127.0.0.1:port`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => format!("socks5://{user}:{password}@{}", self.addr),
            None => format!("socks5://{}", self.addr),
        }
    }

    /// What clients asked for so far, in order of arrival.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn read_exact(stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_u8(stream: &mut TcpStream) -> io::Result<u8> {
    Ok(read_exact(stream, 1)?[0])
}

fn serve(
    mut client: TcpStream,
    config: &Socks5Config,
    requests: &Mutex<Vec<ProxyRequest>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(config.timeout))?;
    let mut request = ProxyRequest::default();
    let record = |request: &ProxyRequest| {
        requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
    };

    // Method offer: VER NMETHODS METHODS.
    let header = read_exact(&mut client, 2)?;
    request.methods = read_exact(&mut client, usize::from(header[1]))?;
    match &config.behaviour {
        Behaviour::Garbage(bytes) => {
            record(&request);
            client.write_all(bytes)?;
            return close(client);
        }
        Behaviour::Silent => {
            record(&request);
            // Until the client closes or the time limit passes.
            let mut sink = [0u8; 256];
            while client.read(&mut sink)? > 0 {}
            return Ok(());
        }
        _ => {}
    }
    let wanted = if config.credentials.is_some() { 2 } else { 0 };
    if header[0] != 5 || !request.methods.contains(&wanted) {
        record(&request);
        client.write_all(&[5, 0xFF])?;
        return close(client);
    }
    client.write_all(&[5, wanted])?;

    if let Some((user, password)) = &config.credentials {
        // VER ULEN UNAME PLEN PASSWD.
        let _version = read_u8(&mut client)?;
        let ulen = read_u8(&mut client)?;
        let got_user = String::from_utf8_lossy(&read_exact(&mut client, ulen.into())?).into_owned();
        let plen = read_u8(&mut client)?;
        let got_password =
            String::from_utf8_lossy(&read_exact(&mut client, plen.into())?).into_owned();
        let accepted = (&got_user, &got_password) == (user, password);
        request.credentials = Some((got_user, got_password));
        if !accepted {
            record(&request);
            client.write_all(&[1, 1])?;
            return close(client);
        }
        client.write_all(&[1, 0])?;
    }

    // VER CMD RSV ATYP DST.ADDR DST.PORT.
    let head = read_exact(&mut client, 4)?;
    request.address_type = head[3];
    request.host = match head[3] {
        1 => {
            let octets: [u8; 4] = read_exact(&mut client, 4)?
                .try_into()
                .map_err(|_| io::Error::other("short address"))?;
            Ipv4Addr::from(octets).to_string()
        }
        4 => {
            let octets: [u8; 16] = read_exact(&mut client, 16)?
                .try_into()
                .map_err(|_| io::Error::other("short address"))?;
            Ipv6Addr::from(octets).to_string()
        }
        3 => {
            let len = read_u8(&mut client)?;
            String::from_utf8_lossy(&read_exact(&mut client, len.into())?).into_owned()
        }
        _ => {
            record(&request);
            client.write_all(&reply(8, None))?;
            return close(client);
        }
    };
    let port = read_exact(&mut client, 2)?;
    request.port = u16::from_be_bytes([port[0], port[1]]);
    record(&request);
    if head[1] != 1 {
        client.write_all(&reply(7, None))?;
        return close(client);
    }

    match &config.behaviour {
        Behaviour::Refuse(code) => {
            client.write_all(&reply(*code, None))?;
            close(client)
        }
        Behaviour::TruncatedReply => {
            client.write_all(&[5, 0, 0, 1, 127])?;
            close(client)
        }
        Behaviour::Relay | Behaviour::Garbage(_) | Behaviour::Silent => {
            let upstream = match connect(&request, config) {
                Ok(upstream) => upstream,
                Err((code, _)) => {
                    client.write_all(&reply(code, None))?;
                    return close(client);
                }
            };
            client.write_all(&reply(0, upstream.local_addr().ok()))?;
            relay(client, upstream, config.timeout)
        }
    }
}

/// `VER REP RSV ATYP BND.ADDR BND.PORT`.
fn reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![5, code, 0];
    match bound {
        Some(SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    out
}

/// Resolves (here, at the proxy) and connects; on failure, the reply code.
fn connect(request: &ProxyRequest, config: &Socks5Config) -> Result<TcpStream, (u8, io::Error)> {
    let timeout = config.timeout;
    let own = config
        .hosts
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&request.host))
        .map(|(_, ip)| *ip);
    let addrs: Vec<SocketAddr> = match own.map_or_else(|| request.host.parse::<IpAddr>(), Ok) {
        Ok(ip) => vec![SocketAddr::new(ip, request.port)],
        Err(_) => (request.host.as_str(), request.port)
            .to_socket_addrs()
            .map_err(|e| (4, e))?
            .collect(),
    };
    let mut last = io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    let code = match last.kind() {
        io::ErrorKind::ConnectionRefused => 5,
        io::ErrorKind::TimedOut => 4,
        _ => 1,
    };
    Err((code, last))
}

/// Copies both ways until each side has closed its half.
fn relay(client: TcpStream, upstream: TcpStream, timeout: Duration) -> io::Result<()> {
    client.set_read_timeout(Some(timeout))?;
    upstream.set_read_timeout(Some(timeout))?;
    let (mut client_r, mut upstream_w) = (client.try_clone()?, upstream.try_clone()?);
    let up = thread::spawn(move || {
        let _ = io::copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(Shutdown::Write);
    });
    let (mut upstream_r, mut client_w) = (upstream, client);
    let _ = io::copy(&mut upstream_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Closes after draining what the client already sent, so the close is a FIN
/// and the client reads our last bytes rather than a reset.
fn close(client: TcpStream) -> io::Result<()> {
    client.shutdown(Shutdown::Write)?;
    client.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut sink = [0u8; 256];
    let mut client = client;
    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}
