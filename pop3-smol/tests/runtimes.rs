//! The smol transport against scripted servers on loopback, under smol,
//! async-std and futures-lite executors.

#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use pop3_smol::pop3_proto::{ProtocolError, ResponseCode, UsageError};
use pop3_smol::{
    connect_plain, connect_starttls, connect_tls, AuthMethod, Connection, Error, MaybeTls, MsgNum,
    Options, Phase, Timeouts, TlsOptions,
};
use test_support::{rustls_server_config, ScriptConfig, ScriptedServer, Step, TestPki};

fn n(n: u32) -> MsgNum {
    MsgNum::new(n).unwrap()
}

fn server(steps: Vec<Step>) -> ScriptedServer {
    ScriptedServer::start_with(steps, ScriptConfig::with_timeout(Duration::from_secs(5)))
}

fn send(text: &str) -> Step {
    Step::Send(text.as_bytes().to_vec())
}

fn plaintext() -> Options {
    Options::new().allow_plaintext_credentials(true)
}

fn tls_options() -> Options {
    let pki = TestPki::shared();
    let tls = TlsOptions::new()
        .webpki_roots(false)
        .add_root_pem(pki.ca_pem.as_bytes())
        .unwrap();
    Options::new().tls(tls)
}

fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line("+OK ready <9.9@test>"),
        Step::expect_line("CAPA"),
        send("+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        send("+OK\r\nTOP\r\nPIPELINING\r\n.\r\n"),
    ]
}

/// A whole session; the same future runs on every executor.
fn session() -> impl Future<Output = ()> {
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("STAT"),
        Step::send_line("+OK 3 60"),
        Step::expect_line("RETR 1"),
        send("+OK\r\nSubject: one\r\n\r\n..dotted\r\n.\r\n"),
        Step::expect_line("RETR 1"),
        send("+OK\r\nSubject: one\r\n\r\n..dotted\r\n.\r\n"),
        Step::expect_line("RETR 2"),
        Step::expect_line("RETR 3"),
        send("+OK\r\ntwo\r\n.\r\n-ERR [SYS/PERM] broken\r\n"),
        Step::expect_line("DELE 1"),
        Step::expect_line("DELE 2"),
        send("+OK\r\n+OK\r\n"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectClose,
    ]);
    let server = server(steps);
    let port = server.addr().port();
    async move {
        let mut conn = connect_plain("127.0.0.1", port, &plaintext())
            .await
            .unwrap();
        assert_eq!(
            conn.greeting().apop_timestamp.as_deref(),
            Some("<9.9@test>")
        );
        conn.capa().await.unwrap();
        conn.login("alice", "secret").await.unwrap();
        assert!(conn.capabilities().unwrap().top());
        assert_eq!(conn.stat().await.unwrap().count, 3);
        let mut message = Vec::new();
        conn.retr(n(1))
            .await
            .unwrap()
            .read_to_end(&mut message)
            .await
            .unwrap();
        assert_eq!(message, b"Subject: one\r\n\r\n.dotted\r\n");
        let mut streamed = Vec::new();
        {
            let mut reader = conn.retr(n(1)).await.unwrap();
            let mut buf = [0u8; 3];
            loop {
                let k = reader.read_chunk(&mut buf).await.unwrap();
                if k == 0 {
                    break;
                }
                streamed.extend_from_slice(&buf[..k]);
            }
        }
        assert_eq!(streamed, message);
        let mut got = Vec::new();
        let results = conn
            .retr_many(&[n(2), n(3)], &mut |_: MsgNum, chunk: &[u8]| {
                got.extend_from_slice(chunk)
            })
            .await;
        let results = results.unwrap();
        assert!(
            matches!(&results[..], [Ok(5), Err(Error::Server(e))] if e.code == Some(ResponseCode::SysPerm))
        );
        assert_eq!(got, b"two\r\n");
        assert!(conn
            .dele_many(&[n(1), n(2)])
            .await
            .unwrap()
            .iter()
            .all(Result::is_ok));
        conn.quit().await.unwrap();
        let received = server.join().unwrap();
        assert!(String::from_utf8(received).unwrap().ends_with("QUIT\r\n"));
    }
}

#[test]
fn runs_on_smol() {
    smol::block_on(session());
}

#[test]
fn runs_on_async_std() {
    async_std::task::block_on(session());
}

#[test]
fn runs_on_futures_lite() {
    futures_lite::future::block_on(session());
}

#[test]
fn runs_on_the_smol_executor_from_a_spawned_task() {
    let ex = smol::Executor::new();
    futures_lite::future::block_on(ex.run(async { ex.spawn(session()).await }));
}

#[test]
fn credentials_are_refused_in_plaintext() {
    let server = server(vec![
        Step::send_line("+OK ready <1.2@x>"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK"),
        Step::ExpectClose,
    ]);
    smol::block_on(async {
        let mut conn = connect_plain("127.0.0.1", server.addr().port(), &Options::new())
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
        conn.quit().await.unwrap();
    });
    assert_eq!(server.join().unwrap(), b"QUIT\r\n");
}

#[test]
fn a_dropped_reader_is_drained() {
    let mut body = String::from("+OK\r\n");
    for i in 0..2000 {
        body.push_str(&format!("line {i}\r\n"));
    }
    body.push_str(".\r\n");
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send(body.into_bytes()),
        Step::expect_line("NOOP"),
        Step::send_line("+OK"),
        Step::ExpectClose,
    ]);
    let server = server(steps);
    async_std::task::block_on(async {
        let mut conn = connect_plain("127.0.0.1", server.addr().port(), &plaintext())
            .await
            .unwrap();
        conn.capa().await.unwrap();
        conn.login("alice", "secret").await.unwrap();
        let mut reader = conn.retr(n(1)).await.unwrap();
        let mut buf = [0u8; 6];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"line 0");
        drop(reader);
        conn.noop().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn a_stalled_server_times_out() {
    let server = server(vec![
        Step::send_line("+OK"),
        Step::expect_line("CAPA"),
        send("+OK\r\nUSER"),
        Step::Stall,
    ]);
    let timeouts = Timeouts {
        read: Some(Duration::from_millis(300)),
        ..Timeouts::default()
    };
    smol::block_on(async {
        let mut conn = connect_plain(
            "127.0.0.1",
            server.addr().port(),
            &Options::new().timeouts(timeouts),
        )
        .await
        .unwrap();
        let started = Instant::now();
        assert!(matches!(
            conn.capa().await,
            Err(Error::Timeout(Phase::Read))
        ));
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(conn.is_poisoned());
        assert!(matches!(conn.noop().await, Err(Error::Closed)));
    });
    server.join().unwrap();
}

#[test]
fn a_dropped_future_poisons_the_connection() {
    let server = server(vec![
        Step::send_line("+OK"),
        Step::expect_line("CAPA"),
        Step::Stall,
    ]);
    smol::block_on(async {
        let mut conn = connect_plain("127.0.0.1", server.addr().port(), &Options::new())
            .await
            .unwrap();
        let capa = async { Some(conn.capa().await) };
        let timeout = async {
            async_io::Timer::after(Duration::from_millis(50)).await;
            None
        };
        assert!(futures_lite::future::or(capa, timeout).await.is_none());
        assert!(conn.is_poisoned());
        assert!(matches!(conn.capa().await, Err(Error::Closed)));
    });
    server.join().unwrap();
}

#[test]
fn connect_to_a_closed_port_fails_fast() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let result = smol::block_on(connect_plain("127.0.0.1", port, &Options::new()));
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
}

#[test]
fn stls_upgrades_in_place() {
    let pki = TestPki::shared();
    let server = server(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        send("+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin"),
        Step::StartTls(rustls_server_config(&pki.server)),
        Step::expect_line("CAPA"),
        send("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("+OK"),
        Step::expect_line("CAPA"),
        send("+OK\r\nTOP\r\n.\r\n"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK"),
        Step::ExpectClose,
    ]);
    smol::block_on(async {
        let mut conn = connect_starttls("localhost", server.addr().port(), &tls_options())
            .await
            .unwrap();
        assert!(conn.get_ref().is_tls() && conn.client().is_encrypted());
        assert!(conn.capabilities().unwrap().has_sasl("PLAIN"));
        conn.login("alice", "secret").await.unwrap();
        conn.quit().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn stls_missing_sends_nothing_more() {
    let server = server(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        send("+OK\r\nUSER\r\n.\r\n"),
        Step::ExpectClose,
    ]);
    let result = smol::block_on(connect_starttls(
        "localhost",
        server.addr().port(),
        &tls_options(),
    ));
    assert!(matches!(result, Err(Error::StlsUnavailable)), "{result:?}");
    assert_eq!(server.join().unwrap(), b"CAPA\r\n");
}

#[test]
fn data_after_stls_is_refused() {
    let server = server(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        send("+OK\r\nSTLS\r\n.\r\n"),
        Step::expect_line("STLS"),
        send("+OK begin\r\n+OK injected\r\n"),
        Step::ExpectClose,
    ]);
    let result = smol::block_on(connect_starttls(
        "localhost",
        server.addr().port(),
        &tls_options(),
    ));
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::DataAfterStls))),
        "{result:?}"
    );
    server.join().unwrap();
}

#[test]
fn implicit_tls_verifies_the_certificate() {
    let pki = TestPki::shared();
    for cert in [
        &pki.server,
        &pki.wrong_host,
        &pki.expired,
        &pki.unknown_ca,
        &pki.self_signed,
    ] {
        let good = std::ptr::eq(cert, &pki.server);
        let mut steps = vec![Step::StartTls(rustls_server_config(cert))];
        if good {
            steps.extend([
                Step::send_line("+OK over TLS"),
                Step::expect_line("QUIT"),
                Step::send_line("+OK"),
            ]);
        }
        steps.push(Step::ExpectClose);
        let server = server(steps);
        let result = smol::block_on(async {
            let conn = connect_tls("localhost", server.addr().port(), &tls_options()).await?;
            assert!(conn.client().is_encrypted());
            conn.quit().await
        });
        if good {
            result.unwrap();
            server.join().unwrap();
        } else {
            assert!(
                matches!(
                    result,
                    Err(Error::Tls(rustls::Error::InvalidCertificate(_)))
                ),
                "{result:?}"
            );
            assert!(server.join().is_err());
        }
    }
}

#[test]
fn any_futures_io_stream_works() {
    let server = server(vec![
        Step::send_line("+OK hi"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK"),
    ]);
    smol::block_on(async {
        let stream = async_io::Async::<std::net::TcpStream>::connect(server.addr())
            .await
            .unwrap();
        let mut conn = Connection::new(MaybeTls::Plain(stream), &Options::new())
            .await
            .unwrap();
        // NOOP before login is refused by the core; nothing is sent.
        assert!(matches!(
            conn.noop().await,
            Err(Error::Usage(UsageError::WrongState { .. }))
        ));
        conn.quit().await.unwrap();
    });
    server.join().unwrap();
}
