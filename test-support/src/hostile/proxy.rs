//! SOCKS5 proxies that fail: garbage, refusals, silence. The mail server is
//! never reached.

use std::net::TcpListener;

use pop3_transport::socks5::{ReplyCode, Socks5ConnectError, Socks5Error, Stage};
use pop3_transport::Phase;

use super::*;
use crate::scenarios::{connect_in, proxy_url, Mode};
use crate::socks5::{Behaviour, Socks5Config, Socks5Server};

/// Where the mail server would be: a listener that only tells whether anyone
/// connected. A proxy that fails must leave it untouched.
struct MailPort(TcpListener);

impl MailPort {
    fn new() -> MailPort {
        MailPort(TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
    }

    fn port(&self) -> u16 {
        self.0.local_addr().expect("local address").port()
    }

    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        self.0.set_nonblocking(true).expect("non-blocking listener");
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{what}: the mail server was reached (from {from})"),
            Err(e) => panic!("{what}: accept: {e}"),
        }
    }
}

/// Connects in every mode through `proxy` (with `credentials` for it) to a
/// mail port nobody may reach, expecting each attempt to fail fast with
/// `Error::Proxy` holding `want`, naming SOCKS5 in its text.
async fn through_failing_proxy<T: Transport>(
    t: &T,
    proxy: &Socks5Server,
    credentials: Option<(&str, &str)>,
    want: &Socks5Error,
    what: &str,
) {
    let mail = MailPort::new();
    let options = opts().proxy(proxy_url(&proxy.url(credentials)));
    for mode in Mode::ALL {
        let what = format!("{what}, {mode:?}");
        let started = Instant::now();
        let e = expect_connect_err(
            connect_in(t, mode, "localhost", mail.port(), &options).await,
            &what,
        );
        assert!(
            started.elapsed() < LIMIT,
            "{what}: took {:?}",
            started.elapsed()
        );
        match &e {
            Error::Proxy(Socks5ConnectError::Socks5(got)) if got == want => {}
            other => panic!("{what}: expected Proxy({want:?}), got {other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains("SOCKS5"), "{what}: {text}");
        assert_clean(&text, &what);
    }
    mail.assert_untouched(what);
}

/// A proxy that answers the method offer with something that is not SOCKS5
/// (an HTTP error, a POP3 greeting, a SOCKS4 reply), a method that was not
/// offered, or one byte and a close: a typed `Proxy` error at once in every
/// mode, with nothing sent toward the mail server.
pub async fn proxy_answers_garbage<T: Transport>(t: &T) {
    let cases: [(&[u8], Socks5Error); 5] = [
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: b'H',
            },
        ),
        (
            b"+OK POP3 server ready\r\n",
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: b'+',
            },
        ),
        (
            &[0, 0x5a, 0, 0, 0, 0, 0, 0],
            Socks5Error::NotSocks5 {
                stage: Stage::MethodSelection,
                version: 0,
            },
        ),
        (&[5, 0x42], Socks5Error::UnexpectedMethod(0x42)),
        (&[5], Socks5Error::Truncated(Stage::MethodSelection)),
    ];
    for (garbage, want) in cases {
        let what = format!("proxy answering {}", show(garbage));
        let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Garbage(
            garbage.to_vec(),
        )));
        // With credentials for the proxy, as the more exposed case.
        through_failing_proxy(t, &proxy, Some(("proxy-user", "proxy-pw")), &want, &what).await;
        for request in proxy.requests() {
            assert_eq!(request.methods, [0, 2], "{what}");
        }
    }
}

/// A proxy that refuses: the CONNECT refused with each of several reply
/// codes, its reply cut short, the proxy password refused, a proxy that
/// wants credentials the client does not have, and no proxy listening. A
/// typed `Proxy` error in every mode; the mail server is never reached.
pub async fn proxy_refuses<T: Transport>(t: &T) {
    for (code, reply) in [
        (1, ReplyCode::GeneralFailure),
        (2, ReplyCode::NotAllowed),
        (4, ReplyCode::HostUnreachable),
        (5, ReplyCode::ConnectionRefused),
    ] {
        let what = format!("proxy refusing with code {code}");
        let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Refuse(code)));
        let want = Socks5Error::ConnectFailed(reply);
        through_failing_proxy(t, &proxy, None, &want, &what).await;
        for request in proxy.requests() {
            assert_eq!(
                (request.address_type, request.host.as_str()),
                (3, "localhost"),
                "{what}: the proxy is asked by name"
            );
        }
    }
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::TruncatedReply));
    let want = Socks5Error::Truncated(Stage::Connect);
    through_failing_proxy(t, &proxy, None, &want, "proxy cutting its reply short").await;

    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("proxy-user", "right"));
    let want = Socks5Error::AuthRefused { status: 1 };
    let what = "proxy refusing the password";
    through_failing_proxy(t, &proxy, Some(("proxy-user", "wrong")), &want, what).await;
    let want = Socks5Error::NoAcceptableMethod;
    let what = "proxy wanting credentials";
    through_failing_proxy(t, &proxy, None, &want, what).await;

    // No proxy listening at all: an I/O error, still named as the proxy's.
    let closed = MailPort::new();
    let url = format!("socks5://127.0.0.1:{}", closed.port());
    drop(closed);
    let mail = MailPort::new();
    for mode in Mode::ALL {
        let what = format!("no proxy listening, {mode:?}");
        let options = opts().proxy(proxy_url(&url));
        let e = expect_connect_err(
            connect_in(t, mode, "localhost", mail.port(), &options).await,
            &what,
        );
        match &e {
            Error::Proxy(Socks5ConnectError::Io(io))
                if io.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => panic!("{what}: expected Proxy(Io(ConnectionRefused)), got {other:?}"),
        }
        assert!(e.to_string().contains("proxy"), "{what}: {e}");
    }
    mail.assert_untouched("no proxy listening");
}

/// A proxy that reads the method offer and then says nothing: `Timeout` in
/// the proxy phase after the connect limit, not a hang.
pub async fn proxy_stalls<T: Transport>(t: &T) {
    let proxy = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Silent));
    let mail = MailPort::new();
    let options = opts()
        .timeouts(timeouts(SHORT))
        .proxy(proxy_url(&proxy.url(None)));
    let started = Instant::now();
    let e = expect_connect_err(
        t.connect_tls("localhost", mail.port(), &options).await,
        "silent proxy",
    );
    assert_timed_out(&e, started, SHORT, "silent proxy");
    assert!(
        matches!(e, Error::Timeout(Phase::Proxy)),
        "the time-out names the proxy: {e:?}"
    );
    mail.assert_untouched("silent proxy");
}
