//! POP3 through a SOCKS5 proxy: the client handshake of
//! `pop3_transport::socks5` against the loopback proxy of
//! `test_support::socks5`, to the real Dovecot, in plain and implicit TLS,
//! with and without proxy authentication; and proxies that fail.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use pop3_transport::socks5::{
    BoundAddress, Next, ReplyCode, Socks5ConnectError, Socks5Error, Socks5Handshake, Socks5Proxy,
    Stage,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use test_support::dovecot::{unique_user, Dovecot, Mailbox};
use test_support::socks5::{Behaviour, ProxyRequest, Socks5Config, Socks5Server};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the tunnel over a blocking stream: a small pump around the sans-IO
/// [`Socks5Handshake`] (the library's pump runs over its runtimes' streams).
fn socks5_connect(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    credentials: Option<(&str, &str)>,
) -> Result<BoundAddress, Socks5ConnectError> {
    let mut handshake = Socks5Handshake::new(host, port, credentials)?;
    let mut buf = [0u8; 512];
    loop {
        match handshake.next() {
            Next::Send(bytes) => {
                stream.write_all(bytes)?;
                let n = bytes.len();
                handshake.sent(n);
            }
            Next::Receive { max } => {
                let n = stream.read(&mut buf[..max.min(512)])?;
                if n == 0 {
                    let error = handshake.receive_eof();
                    return Err(error
                        .unwrap_or(Socks5Error::Truncated(Stage::Connect))
                        .into());
                }
                handshake.receive(&buf[..n])?;
            }
            Next::Connected(bound) => return Ok(bound.clone()),
            Next::Failed => return Err(handshake.error().cloned().unwrap().into()),
        }
    }
}

fn connect_to(proxy: &Socks5Server) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A line-at-a-time POP3 exchange over any stream.
struct Pop3<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Pop3<S> {
    fn new(stream: S) -> Self {
        Pop3 {
            r: BufReader::new(stream),
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        line
    }

    fn cmd(&mut self, cmd: &str) -> String {
        self.r
            .get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .unwrap();
        self.r.get_mut().flush().unwrap();
        self.line()
    }

    /// Greeting, login, STAT, QUIT; returns the STAT reply.
    fn session(&mut self, mailbox: &Mailbox) -> String {
        let greeting = self.line();
        assert!(greeting.starts_with("+OK"), "greeting: {greeting:?}");
        assert!(self
            .cmd(&format!("USER {}", mailbox.user()))
            .starts_with("+OK"));
        let pass = self.cmd(&format!("PASS {}", mailbox.password()));
        assert!(pass.starts_with("+OK"), "PASS: {pass}");
        let stat = self.cmd("STAT");
        assert!(self.cmd("QUIT").starts_with("+OK"));
        stat
    }
}

fn mailbox_with_one_message(dovecot: &Dovecot) -> Mailbox {
    let mailbox = dovecot.add_user(&unique_user("socks"), "pw-through-proxy");
    mailbox.add_message(b"Subject: via SOCKS5\r\n\r\nhello\r\n");
    mailbox
}

/// Connects through the proxy to Dovecot by host name and runs a session.
fn session_through(proxy: &Socks5Server, tls: bool, credentials: Option<(&str, &str)>) {
    let dovecot = Dovecot::shared();
    let mailbox = mailbox_with_one_message(dovecot);
    let port = if tls {
        dovecot.tls_addr().port()
    } else {
        dovecot.plain_addr().port()
    };
    let mut stream = connect_to(proxy);
    // "localhost" goes to the proxy unresolved; it resolves it.
    let bound = socks5_connect(&mut stream, "localhost", port, credentials).unwrap();
    assert!(
        matches!(bound, BoundAddress::Ip(a) if a.ip().is_loopback()),
        "{bound:?}"
    );
    let stat = if tls {
        // The TLS name is the mail server's, not the proxy's.
        let conn = ClientConnection::new(
            dovecot.rustls_client_config(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tls_stream = StreamOwned::new(conn, stream);
        let mut pop3 = Pop3::new(tls_stream);
        let stat = pop3.session(&mailbox);
        let conn = &pop3.r.get_ref().conn;
        assert!(conn.peer_certificates().is_some_and(|c| !c.is_empty()));
        stat
    } else {
        Pop3::new(stream).session(&mailbox)
    };
    assert!(stat.starts_with("+OK 1 "), "STAT: {stat}");

    let requests = proxy.requests();
    let last = requests.last().unwrap();
    assert_eq!(
        (last.address_type, last.host.as_str(), last.port),
        (3, "localhost", port),
        "the host name is resolved by the proxy"
    );
    assert_eq!(
        last.credentials,
        credentials.map(|(u, p)| (u.to_owned(), p.to_owned()))
    );
}

#[test]
fn plain_without_proxy_auth() {
    let proxy = Socks5Server::start(Socks5Config::relay());
    session_through(&proxy, false, None);
    assert_eq!(proxy.requests()[0].methods, [0]);
}

#[test]
fn plain_with_proxy_auth() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("proxyuser", "proxypw"));
    session_through(&proxy, false, Some(("proxyuser", "proxypw")));
    assert_eq!(proxy.requests()[0].methods, [0, 2]);
}

#[test]
fn implicit_tls_without_proxy_auth() {
    let proxy = Socks5Server::start(Socks5Config::relay());
    session_through(&proxy, true, None);
}

#[test]
fn implicit_tls_with_proxy_auth() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("tor-user", "circuit-7"));
    session_through(&proxy, true, Some(("tor-user", "circuit-7")));
}

#[test]
fn proxy_url_round_trip_and_credentials() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("u", "p@ss"));
    let url = proxy.url(Some(("u", "p%40ss")));
    let parsed: Socks5Proxy = url.parse().unwrap();
    assert_eq!(
        (parsed.host.as_str(), parsed.port),
        ("127.0.0.1", proxy.addr().port())
    );
    session_through(&proxy, true, parsed.credentials());
}

#[test]
fn wrong_proxy_password_is_refused() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("user", "right"));
    let mut stream = connect_to(&proxy);
    let result = socks5_connect(&mut stream, "localhost", 110, Some(("user", "wrong")));
    assert!(
        matches!(
            result,
            Err(Socks5ConnectError::Socks5(Socks5Error::AuthRefused {
                status: 1
            }))
        ),
        "{result:?}"
    );
}

#[test]
fn proxy_that_needs_credentials_we_do_not_have() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("user", "pw"));
    let mut stream = connect_to(&proxy);
    let error = socks5_connect(&mut stream, "localhost", 110, None).unwrap_err();
    assert!(
        matches!(
            error,
            Socks5ConnectError::Socks5(Socks5Error::NoAcceptableMethod)
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("user name and password"),
        "{error}"
    );
}

/// Runs the handshake against a faulty proxy; it must fail fast, typed.
fn fails_fast(behaviour: Behaviour, port: u16) -> Socks5Error {
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(behaviour));
    let mut stream = connect_to(&proxy);
    let started = Instant::now();
    let error = socks5_connect(&mut stream, "localhost", port, None).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    match error {
        Socks5ConnectError::Socks5(e) => e,
        other => panic!("expected a SOCKS5 error, got {other:?}"),
    }
}

#[test]
fn proxy_answering_garbage() {
    let e = fails_fast(
        Behaviour::Garbage(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
        110,
    );
    assert_eq!(
        e,
        Socks5Error::NotSocks5 {
            stage: Stage::MethodSelection,
            version: b'H'
        }
    );
    // A SOCKS4 reply, or a lone version byte and then nothing.
    let e = fails_fast(Behaviour::Garbage(vec![0, 0x5a, 0, 0, 0, 0, 0, 0]), 110);
    assert!(
        matches!(e, Socks5Error::NotSocks5 { version: 0, .. }),
        "{e:?}"
    );
    let e = fails_fast(Behaviour::Garbage(vec![5]), 110);
    assert_eq!(e, Socks5Error::Truncated(Stage::MethodSelection));
    let e = fails_fast(Behaviour::Garbage(vec![5, 0x42]), 110);
    assert_eq!(e, Socks5Error::UnexpectedMethod(0x42));
}

#[test]
fn proxy_refusing_with_each_code() {
    for (code, expected) in [
        (1, ReplyCode::GeneralFailure),
        (2, ReplyCode::NotAllowed),
        (4, ReplyCode::HostUnreachable),
        (5, ReplyCode::ConnectionRefused),
        (8, ReplyCode::AddressTypeNotSupported),
    ] {
        let e = fails_fast(Behaviour::Refuse(code), 110);
        assert_eq!(e, Socks5Error::ConnectFailed(expected));
    }
}

#[test]
fn proxy_cutting_its_reply_short() {
    let e = fails_fast(Behaviour::TruncatedReply, 110);
    assert_eq!(e, Socks5Error::Truncated(Stage::Connect));
}

#[test]
fn destination_refusing_the_proxy() {
    // A port nothing listens on: the proxy's own connect is refused.
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let e = fails_fast(Behaviour::Relay, closed_port);
    assert_eq!(e, Socks5Error::ConnectFailed(ReplyCode::ConnectionRefused));
}

#[test]
fn silent_proxy_is_cut_off_by_the_read_timeout() {
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Silent));
    let mut stream = connect_to(&proxy);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let error = socks5_connect(&mut stream, "localhost", 110, None).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(&error, Socks5ConnectError::Io(e)
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "{error:?}"
    );
    assert_eq!(
        proxy.requests(),
        vec![ProxyRequest {
            methods: vec![0],
            ..ProxyRequest::default()
        }]
    );
}

#[test]
fn ip_literal_destination_is_sent_as_an_address() {
    let dovecot = Dovecot::shared();
    let proxy = Socks5Server::start(Socks5Config::relay());
    let mut stream = connect_to(&proxy);
    let addr: SocketAddr = dovecot.plain_addr();
    socks5_connect(&mut stream, &addr.ip().to_string(), addr.port(), None).unwrap();
    let mut pop3 = Pop3::new(stream);
    assert!(pop3.line().starts_with("+OK"));
    assert!(pop3.cmd("QUIT").starts_with("+OK"));
    let request = &proxy.requests()[0];
    assert_eq!(request.address_type, if addr.is_ipv4() { 1 } else { 4 });
    assert_eq!(request.host, addr.ip().to_string());
}
