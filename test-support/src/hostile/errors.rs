//! What each failure says and which kind it is (`Error::kind`): a refused
//! login told from other refusals with or without a response code, a busy
//! mailbox as temporary, connect errors naming `host:port`, and a port that
//! expects implicit TLS named as such when it stays silent.

use super::*;
use pop3_proto::ResponseCode;
use pop3_transport::{ErrorKind, IoSubject, Phase};

/// Logs in with USER/PASS against a server that refuses `PASS` with
/// `refusal`, and returns the error.
async fn refused_pass<T: Transport>(t: &T, refusal: &str) -> Error {
    let server = script(vec![
        Step::send_line(GREETING),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line(refusal),
        Step::ExpectClose,
    ]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &plain_opts())
            .await,
        "connect_plain",
    );
    let e = expect_err(s.login(USER, PASSWORD).await, refusal);
    drop(s);
    let (_, script) = finish(server);
    assert_eq!(script, Ok(()), "{refusal}");
    e
}

/// Microsoft's refusal of a bad password carries no response code: the
/// login step it answered is what makes it an authentication refusal.
pub async fn refused_login_without_a_code_is_an_authentication_refusal<T: Transport>(t: &T) {
    let e = refused_pass(t, "-ERR Logon failure: unknown user name or bad password.").await;
    assert!(matches!(&e, Error::Server(s) if s.code.is_none()), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::AuthenticationRefused, "{e:?}");
    assert!(!e.kind().is_transient());
}

/// Dovecot's and Gmail's refusal carries `[AUTH]`.
pub async fn refused_login_with_auth_is_an_authentication_refusal<T: Transport>(t: &T) {
    let e = refused_pass(t, "-ERR [AUTH] Authentication failed.").await;
    assert!(
        matches!(&e, Error::Server(s) if s.code == Some(ResponseCode::Auth)),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::AuthenticationRefused, "{e:?}");
}

/// A mailbox locked by another session is no wrong password: try later.
pub async fn mailbox_in_use_at_login_is_temporary<T: Transport>(t: &T) {
    let e = refused_pass(t, "-ERR [IN-USE] Mailbox is locked by another POP3 session").await;
    assert_eq!(e.kind(), ErrorKind::TemporarilyUnavailable, "{e:?}");
    assert!(e.kind().is_transient());
}

/// A refused connection names the host and port it was for, once, and is
/// a network failure.
pub async fn refused_port_names_host_and_port_once<T: Transport>(t: &T) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    for connect in 0..3 {
        let result = match connect {
            0 => t.connect_plain("127.0.0.1", port, &opts()).await,
            1 => t.connect_starttls("127.0.0.1", port, &opts()).await,
            _ => t.connect_tls("127.0.0.1", port, &opts()).await,
        };
        let e = expect_connect_err(result, "a closed port");
        let shown = e.to_string();
        let endpoint = format!("127.0.0.1:{port}");
        assert!(shown.starts_with(&format!("{endpoint}: ")), "{shown}");
        assert_eq!(shown.matches(&endpoint).count(), 1, "{shown}");
        assert_eq!(e.kind(), ErrorKind::Network, "{e:?}");
        let subject = e.io_context().map(|c| c.subject.clone());
        assert_eq!(
            subject,
            Some(IoSubject::Server {
                host: "127.0.0.1".to_owned(),
                port
            })
        );
    }
}

/// Credentials refused in the clear: the error says how to allow them and
/// suggests TLS, and nothing is sent.
pub async fn plaintext_refusal_says_how_to_allow_it<T: Transport>(t: &T) {
    let server = script(vec![Step::send_line(GREETING), Step::ExpectClose]);
    let mut s = expect_ok(
        t.connect_plain("127.0.0.1", port(&server), &opts()).await,
        "connect_plain",
    );
    let e = expect_err(s.login(USER, PASSWORD).await, "a login in the clear");
    assert_eq!(e.kind(), ErrorKind::Usage, "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.contains("allow_plaintext_credentials") && shown.contains("TLS"),
        "{shown}"
    );
    drop(s);
    let (received, _) = finish(server);
    assert_no_credentials(&received, "a login in the clear");
}

/// A listener on port 995 (the implicit TLS port), on the first loopback
/// address where that port is free: each test binary gets its own.
/// `None` where binding a port below 1024 is not allowed.
fn implicit_tls_port_listener() -> Option<std::net::TcpListener> {
    for last in 1..=250u8 {
        match std::net::TcpListener::bind(("127.0.95.".to_owned() + &last.to_string(), 995)) {
            Ok(listener) => return Some(listener),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!(
                    "cannot bind port 995 ({e}): the case needs root or CAP_NET_BIND_SERVICE"
                );
                return None;
            }
            Err(_) => continue,
        }
    }
    None
}

/// A port that speaks implicit TLS waits for the client's TLS hello and
/// never greets. `connect_plain` and `connect_starttls` to port 995 say
/// that the port may expect TLS after about ten seconds of silence, though
/// the read limit is a minute; elsewhere a slow greeting is waited for.
pub async fn silent_implicit_tls_port_is_named_within_seconds<T: Transport>(t: &T) {
    let Some(listener) = implicit_tls_port_listener() else {
        return;
    };
    let host = listener.local_addr().expect("addr").ip().to_string();
    let config = ScriptConfig {
        timeout: Duration::from_secs(5),
        stall_limit: Duration::from_secs(30),
    };
    let server =
        ScriptedServer::start_on(listener, vec![vec![Step::Stall], vec![Step::Stall]], config);
    let minute = trusting(&TestPki::shared().ca_pem).timeouts(timeouts(Duration::from_secs(60)));
    for starttls in [false, true] {
        let started = Instant::now();
        let result = if starttls {
            t.connect_starttls(&host, 995, &minute).await
        } else {
            t.connect_plain(&host, 995, &minute).await
        };
        let e = expect_connect_err(result, "a silent port 995");
        let took = started.elapsed();
        assert!(
            matches!(e, Error::Timeout(Phase::GreetingOnImplicitTlsPort)),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Tls);
        let shown = e.to_string();
        assert!(
            shown.contains("this port may expect TLS (implicit TLS, 995)"),
            "{shown}"
        );
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(12),
            "starttls {starttls}: said after {took:?}"
        );
    }
    drop(server);
}
