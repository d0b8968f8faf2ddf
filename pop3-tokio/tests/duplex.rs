//! The tokio transport against scripted servers over in-memory pipes.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use pop3_tokio::pop3_proto::{ProtocolError, ResponseCode, UsageError};
use pop3_tokio::{
    AuthMethod, Connection, Error, MaybeTls, MsgNum, Options, Phase, Timeouts, TlsOptions,
};
use test_support::{rustls_server_config, TestPki};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::task::JoinHandle;

/// The server end of a pipe: expects client lines, sends replies.
struct Server<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Server<S> {
    fn new(io: S) -> Self {
        Server {
            io: BufReader::new(io),
        }
    }

    async fn send(&mut self, text: &str) {
        self.io.get_mut().write_all(text.as_bytes()).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    async fn expect(&mut self, line: &str) {
        let mut got = String::new();
        self.io.read_line(&mut got).await.unwrap();
        assert_eq!(got, format!("{line}\r\n"));
    }

    async fn expect_eof(&mut self) {
        let mut got = String::new();
        let n = self.io.read_line(&mut got).await.unwrap();
        assert_eq!(n, 0, "expected end of stream, got {got:?}");
    }

    /// `cmd` then `reply`, for each pair.
    async fn dialog(&mut self, pairs: &[(&str, &str)]) {
        for (cmd, reply) in pairs {
            self.expect(cmd).await;
            self.send(reply).await;
        }
    }
}

fn pipe() -> (DuplexStream, Server<DuplexStream>) {
    let (client, server) = tokio::io::duplex(1 << 16);
    (client, Server::new(server))
}

fn serve<F>(
    server: Server<DuplexStream>,
    script: impl FnOnce(Server<DuplexStream>) -> F,
) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(script(server))
}

fn n(n: u32) -> MsgNum {
    MsgNum::new(n).unwrap()
}

fn trusted() -> Options {
    Options::new().encrypted(true)
}

const LOGIN: &[(&str, &str)] = &[
    ("USER alice", "+OK\r\n"),
    ("PASS secret", "+OK welcome\r\n"),
];

#[tokio::test]
async fn a_whole_session() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK ready <1.2@host>\r\n").await;
        s.dialog(&[
            ("CAPA", "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"),
            ("USER alice", "+OK\r\n"),
            ("PASS secret", "+OK logged in\r\n"),
            ("CAPA", "+OK\r\nTOP\r\nUIDL\r\nEXPIRE NEVER\r\n.\r\n"),
            ("STAT", "+OK 2 300\r\n"),
            ("LIST", "+OK\r\n1 100\r\n2 200\r\n.\r\n"),
            ("LIST 2", "+OK 2 200\r\n"),
            ("UIDL", "+OK\r\n1 abc\r\n2 xyz\r\n.\r\n"),
            ("UIDL 2", "+OK 2 xyz\r\n"),
            ("RETR 1", "+OK\r\nHello\r\n..dot\r\n.\r\n"),
            ("TOP 2 0", "+OK\r\nSubject: x\r\n\r\n.\r\n"),
            ("DELE 1", "+OK\r\n"),
            ("RSET", "+OK\r\n"),
            ("NOOP", "+OK\r\n"),
            ("QUIT", "+OK bye\r\n"),
        ])
        .await;
        s.expect_eof().await;
    });
    let mut conn = Connection::new(
        MaybeTls::Plain(client),
        &Options::new().allow_plaintext_credentials(true),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.greeting().apop_timestamp.as_deref(),
        Some("<1.2@host>")
    );
    assert!(conn.capa().await.unwrap().user());
    conn.login("alice", "secret").await.unwrap();
    let caps = conn.capabilities().expect("re-read after login");
    assert!(!caps.user() && caps.top());
    let stat = conn.stat().await.unwrap();
    assert_eq!((stat.count, stat.size), (2, 300));
    assert_eq!(conn.list().await.unwrap().len(), 2);
    assert_eq!(conn.list_one(n(2)).await.unwrap().size, 200);
    assert_eq!(conn.uidl().await.unwrap()[1].uid, "xyz");
    assert_eq!(conn.uidl_one(n(2)).await.unwrap().uid, "xyz");
    let mut message = Vec::new();
    conn.retr(n(1))
        .await
        .unwrap()
        .read_to_end(&mut message)
        .await
        .unwrap();
    assert_eq!(message, b"Hello\r\n.dot\r\n");
    let mut top = Vec::new();
    assert_eq!(conn.top_to(n(2), 0, &mut top).await.unwrap(), 14);
    assert_eq!(top, b"Subject: x\r\n\r\n");
    conn.dele(n(1)).await.unwrap();
    conn.rset().await.unwrap();
    conn.noop().await.unwrap();
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn credentials_are_refused_in_plaintext() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK ready <1.2@host>\r\n").await;
        s.dialog(&[("QUIT", "+OK\r\n")]).await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &Options::new())
        .await
        .unwrap();
    for result in [
        conn.login("alice", "secret").await,
        conn.apop("alice", "secret").await,
        conn.login_with("alice", "secret", AuthMethod::Plain).await,
    ] {
        assert!(
            matches!(result, Err(Error::Usage(UsageError::PlaintextCredentials))),
            "{result:?}"
        );
    }
    assert!(!conn.is_poisoned());
    conn.quit().await.unwrap();
    script.await.unwrap();
}

fn long_body() -> (String, Vec<u8>) {
    let mut wire = String::from("+OK\r\n");
    let mut plain = Vec::new();
    for i in 0..200 {
        let line = format!(".line {i} with some text to make it longer\r\n");
        wire.push('.');
        wire.push_str(&line);
        plain.extend_from_slice(line.as_bytes());
    }
    wire.push_str(".\r\n");
    (wire, plain)
}

#[tokio::test]
async fn reads_fit_the_callers_buffer() {
    let (wire, plain) = long_body();
    let (client, server) = pipe();
    let script = serve(server, move |mut s| async move {
        s.send("+OK\r\n").await;
        s.dialog(LOGIN).await;
        s.dialog(&[("RETR 1", &wire), ("QUIT", "+OK\r\n")]).await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &trusted())
        .await
        .unwrap();
    conn.login("alice", "secret").await.unwrap();
    let mut reader = conn.retr(n(1)).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let k = reader.read_chunk(&mut buf).await.unwrap();
        if k == 0 {
            break;
        }
        assert!(k <= 7);
        got.extend_from_slice(&buf[..k]);
    }
    assert!(reader.is_finished());
    drop(reader);
    assert_eq!(got, plain);
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn a_dropped_reader_is_drained() {
    let (wire, _) = long_body();
    let (client, server) = pipe();
    let script = serve(server, move |mut s| async move {
        s.send("+OK\r\n").await;
        s.dialog(LOGIN).await;
        s.dialog(&[
            ("RETR 1", &wire),
            ("STAT", "+OK 1 5\r\n"),
            ("QUIT", "+OK\r\n"),
        ])
        .await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &trusted())
        .await
        .unwrap();
    conn.login("alice", "secret").await.unwrap();
    let mut reader = conn.retr(n(1)).await.unwrap();
    let mut buf = [0u8; 10];
    reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b".line 0 wi");
    drop(reader);
    assert_eq!(conn.stat().await.unwrap().count, 1);
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn refusals_keep_the_connection_usable() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.dialog(LOGIN).await;
        s.dialog(&[
            ("RETR 9", "-ERR [SYS/TEMP] no such message\r\n"),
            ("LIST 9", "-ERR no such message\r\n"),
            ("NOOP", "+OK\r\n"),
            ("QUIT", "+OK\r\n"),
        ])
        .await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &trusted())
        .await
        .unwrap();
    conn.login("alice", "secret").await.unwrap();
    match conn.retr(n(9)).await {
        Err(Error::Server(e)) => assert_eq!(e.code, Some(ResponseCode::SysTemp)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(conn.list_one(n(9)).await, Err(Error::Server(_))));
    conn.noop().await.unwrap();
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_a_server_error() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.dialog(&[
            ("USER alice", "+OK\r\n"),
            ("PASS wrong", "-ERR [AUTH] invalid\r\n"),
            ("QUIT", "+OK\r\n"),
        ])
        .await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &trusted())
        .await
        .unwrap();
    match conn.login("alice", "wrong").await {
        Err(Error::Server(e)) => assert_eq!(e.code, Some(ResponseCode::Auth)),
        other => panic!("{other:?}"),
    }
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn many_commands_are_pipelined() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.dialog(&[("CAPA", "+OK\r\nPIPELINING\r\n.\r\n")]).await;
        s.dialog(LOGIN).await;
        s.dialog(&[("CAPA", "+OK\r\nPIPELINING\r\n.\r\n")]).await;
        // All three before any reply: a non-pipelining client would hang here.
        s.expect("RETR 1").await;
        s.expect("RETR 2").await;
        s.expect("RETR 3").await;
        s.send("+OK\r\none\r\n.\r\n-ERR gone\r\n+OK\r\nthree\r\n.\r\n")
            .await;
        s.expect("DELE 1").await;
        s.expect("DELE 3").await;
        s.send("+OK\r\n-ERR no\r\n").await;
        s.dialog(&[("QUIT", "+OK\r\n")]).await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &trusted())
        .await
        .unwrap();
    conn.capa().await.unwrap();
    conn.login("alice", "secret").await.unwrap();
    assert!(conn.client().is_pipelining());
    let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
    let results = tokio::time::timeout(
        Duration::from_secs(10),
        conn.retr_many(
            &[n(1), n(2), n(3)],
            &mut |msg: MsgNum, chunk: &[u8]| match got.last_mut() {
                Some((m, data)) if *m == msg.get() => data.extend_from_slice(chunk),
                _ => got.push((msg.get(), chunk.to_vec())),
            },
        ),
    )
    .await
    .expect("pipelined")
    .unwrap();
    assert!(matches!(results[..], [Ok(5), Err(Error::Server(_)), Ok(7)]));
    assert_eq!(
        got,
        vec![(1, b"one\r\n".to_vec()), (3, b"three\r\n".to_vec())]
    );
    let deleted = conn.dele_many(&[n(1), n(3)]).await.unwrap();
    assert!(matches!(deleted[..], [Ok(()), Err(Error::Server(_))]));
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out_and_poisons() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.expect("CAPA").await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let timeouts = Timeouts {
        read: Some(Duration::from_secs(5)),
        ..Timeouts::default()
    };
    let mut conn = Connection::new(MaybeTls::Plain(client), &Options::new().timeouts(timeouts))
        .await
        .unwrap();
    assert!(matches!(
        conn.capa().await,
        Err(Error::Timeout(Phase::Read))
    ));
    assert!(conn.is_poisoned());
    assert!(matches!(conn.noop().await, Err(Error::Closed)));
    script.abort();
}

#[tokio::test(start_paused = true)]
async fn no_greeting_times_out() {
    let (client, _server) = pipe();
    let timeouts = Timeouts {
        read: Some(Duration::from_secs(5)),
        ..Timeouts::default()
    };
    let result = Connection::new(MaybeTls::Plain(client), &Options::new().timeouts(timeouts)).await;
    assert!(matches!(result, Err(Error::Timeout(Phase::Greeting))));
}

#[tokio::test]
async fn a_dropped_future_poisons_the_connection() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.expect("CAPA").await;
        s.expect_eof().await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &Options::new())
        .await
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(20), conn.capa())
        .await
        .is_err());
    assert!(conn.is_poisoned());
    assert!(matches!(conn.capa().await, Err(Error::Closed)));
    drop(conn);
    script.await.unwrap();
}

#[tokio::test]
async fn hanging_up_mid_reply_is_fatal() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK\r\n").await;
        s.expect("CAPA").await;
        s.send("+OK\r\nUSER\r\n").await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &Options::new())
        .await
        .unwrap();
    let result = conn.capa().await;
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::UnexpectedEof))),
        "{result:?}"
    );
    assert!(matches!(conn.noop().await, Err(Error::Closed)));
    script.await.unwrap();
}

// ----- STLS over an in-memory pipe -----

fn tls_options() -> Options {
    let pki = TestPki::shared();
    let tls = TlsOptions::new()
        .webpki_roots(false)
        .add_root_pem(pki.ca_pem.as_bytes())
        .unwrap();
    Options::new().tls(tls)
}

async fn accept_tls(
    s: Server<DuplexStream>,
    cert: &test_support::CertKey,
) -> Option<Server<tokio_rustls::server::TlsStream<DuplexStream>>> {
    let io = s.io.into_inner();
    let acceptor = tokio_rustls::TlsAcceptor::from(rustls_server_config(cert));
    acceptor.accept(io).await.ok().map(Server::new)
}

#[tokio::test]
async fn stls_upgrades_in_place() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK ready\r\n").await;
        s.dialog(&[
            ("CAPA", "+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
            ("STLS", "+OK begin TLS\r\n"),
        ])
        .await;
        let mut s = accept_tls(s, &TestPki::shared().server)
            .await
            .expect("handshake");
        s.dialog(&[("CAPA", "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n")])
            .await;
        s.dialog(LOGIN).await;
        s.dialog(&[("CAPA", "+OK\r\nTOP\r\n.\r\n"), ("QUIT", "+OK\r\n")])
            .await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &tls_options())
        .await
        .unwrap();
    conn.start_tls("localhost").await.unwrap();
    assert!(conn.get_ref().is_tls());
    assert!(conn.client().is_encrypted());
    assert!(conn.capabilities().unwrap().has_sasl("PLAIN"));
    conn.login("alice", "secret").await.unwrap();
    conn.quit().await.unwrap();
    script.await.unwrap();
}

#[tokio::test]
async fn stls_not_offered_sends_nothing_more() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK ready\r\n").await;
        s.dialog(&[("CAPA", "+OK\r\nUSER\r\n.\r\n")]).await;
        s.expect_eof().await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &tls_options())
        .await
        .unwrap();
    assert!(matches!(
        conn.start_tls("localhost").await,
        Err(Error::StlsUnavailable)
    ));
    drop(conn);
    script.await.unwrap();
}

#[tokio::test]
async fn data_injected_after_stls_is_refused() {
    let (client, server) = pipe();
    let script = serve(server, |mut s| async move {
        s.send("+OK ready\r\n").await;
        s.dialog(&[
            ("CAPA", "+OK\r\nSTLS\r\n.\r\n"),
            ("STLS", "+OK begin\r\n+OK injected\r\n"),
        ])
        .await;
    });
    let mut conn = Connection::new(MaybeTls::Plain(client), &tls_options())
        .await
        .unwrap();
    let result = conn.start_tls("localhost").await;
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::DataAfterStls))),
        "{result:?}"
    );
    assert!(conn.is_poisoned());
    script.await.unwrap();
}

#[tokio::test]
async fn untrusted_certificates_are_refused_typed() {
    let pki = TestPki::shared();
    for (cert, name) in [
        (&pki.unknown_ca, "localhost"),
        (&pki.wrong_host, "localhost"),
        (&pki.expired, "localhost"),
    ] {
        let (client, server) = pipe();
        let cert = cert.clone();
        let script = serve(server, move |mut s| async move {
            s.send("+OK ready\r\n").await;
            s.dialog(&[("CAPA", "+OK\r\nSTLS\r\n.\r\n"), ("STLS", "+OK\r\n")])
                .await;
            assert!(accept_tls(s, &cert).await.is_none());
        });
        let mut conn = Connection::new(MaybeTls::Plain(client), &tls_options())
            .await
            .unwrap();
        let result = conn.start_tls(name).await;
        assert!(
            matches!(
                result,
                Err(Error::Tls(rustls::Error::InvalidCertificate(_)))
            ),
            "{result:?}"
        );
        assert!(conn.is_poisoned());
        drop(conn);
        script.await.unwrap();
    }
}

/// Compile-time check: the futures can be spawned on a multi-threaded runtime.
#[allow(dead_code)]
fn futures_are_send(conn: &mut Connection<DuplexStream>, options: &Options) {
    fn send<T: Send>(_: T) {}
    send(Connection::new(
        MaybeTls::Plain(tokio::io::duplex(16).0),
        options,
    ));
    send(pop3_tokio::connect_starttls("localhost", 110, options));
    send(pop3_tokio::connect_tls("localhost", 995, options));
    send(pop3_tokio::connect_plain("localhost", 110, options));
    send(conn.login("a", "b"));
    send(conn.start_tls("localhost"));
    send(conn.retr(n(1)));
    send(conn.retr_many(&[], &mut |_: MsgNum, _: &[u8]| {}));
}
