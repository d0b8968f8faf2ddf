//! The generic connection over an in-memory server and fake timers, polled
//! with a no-op waker: no runtime at all.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pop3_proto::MsgNum;

use crate::connection::SessionDeadline;
use crate::runtime::with_timeout;
use crate::runtime::{IoStream, Runtime, StartTls};
use crate::{Connection, Error, MessageReader, Phase};
use crate::{Options, Timeouts};

/// A server that answers each expected command once it has been written in
/// full, and otherwise has nothing to say (`Pending`).
struct Server {
    readable: Vec<u8>,
    steps: VecDeque<(&'static str, String)>,
    written: Vec<u8>,
    step_start: usize,
}

impl Server {
    fn new(greeting: &str, steps: Vec<(&'static str, String)>) -> Server {
        Server {
            readable: greeting.as_bytes().to_vec(),
            steps: steps.into(),
            written: Vec::new(),
            step_start: 0,
        }
    }
}

impl IoStream for Server {
    fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.readable.is_empty() {
            return Poll::Pending;
        }
        let n = buf.len().min(self.readable.len());
        buf[..n].copy_from_slice(&self.readable[..n]);
        self.readable.drain(..n);
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        while let Some((expect, reply)) = self.steps.front() {
            if !self.written[self.step_start..].starts_with(expect.as_bytes()) {
                break;
            }
            self.step_start += expect.len();
            self.readable.extend_from_slice(reply.as_bytes());
            self.steps.pop_front();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Never fires.
struct Never;

impl Runtime for Never {
    fn never() -> Never {
        Never
    }

    fn reset(&mut self, _: Duration) {}

    fn poll_elapsed(&mut self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Fires as soon as it is armed.
struct Instant(bool);

impl Runtime for Instant {
    fn never() -> Instant {
        Instant(false)
    }

    fn reset(&mut self, _: Duration) {
        self.0 = true;
    }

    fn poll_elapsed(&mut self, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Polls `future` to completion; panics if it stays pending (nothing else
/// could wake it).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future never completed");
}

fn options() -> Options {
    Options::new().allow_plaintext_credentials(true)
}

fn login_steps() -> Vec<(&'static str, String)> {
    vec![
        ("USER u\r\n", "+OK\r\n".into()),
        ("PASS p\r\n", "+OK in\r\n".into()),
    ]
}

fn n(msg: u32) -> MsgNum {
    MsgNum::new(msg).expect("message numbers start at 1")
}

#[test]
fn a_session_without_a_runtime() {
    let mut steps = login_steps();
    steps.push(("STAT\r\n", "+OK 2 320\r\n".into()));
    steps.push(("QUIT\r\n", "+OK bye\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    let result = run(async {
        let mut conn = Connection::<_, Never>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await?;
        // The string types people hold all work as passwords: `&String` here.
        let (user, password) = (String::from("u"), String::from("p"));
        conn.login(&user, &password).await?;
        let stat = conn.stat().await?;
        conn.quit().await?;
        Ok::<_, Error>(stat)
    });
    let stat = result.expect("the session succeeds");
    assert_eq!((stat.count, stat.size), (2, 320));
}

#[test]
fn a_stalled_read_times_out_and_poisons() {
    let mut steps = login_steps();
    steps.push(("NOOP\r\n", String::new()));
    let server = Server::new("+OK ready\r\n", steps);
    let options = options().timeouts(Timeouts {
        read: Some(Duration::from_secs(1)),
        ..Timeouts::none()
    });
    run(async {
        let mut conn = Connection::<_, Instant>::start(
            server,
            &options,
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        assert!(matches!(
            conn.noop().await,
            Err(Error::Timeout(Phase::Read))
        ));
        assert!(conn.is_poisoned());
        assert!(matches!(conn.noop().await, Err(Error::Closed)));
    });
}

#[test]
fn a_stall_shorter_than_the_read_limit_fails_on_the_session_deadline() {
    let mut steps = login_steps();
    steps.push(("NOOP\r\n", String::new()));
    let server = Server::new("+OK ready\r\n", steps);
    // An hour per read, a minute for the whole session: the timer is armed
    // for what remains of the session, so that is the limit that fires.
    let options = options().timeouts(Timeouts {
        read: Some(Duration::from_secs(3600)),
        session: Some(Duration::from_secs(60)),
        ..Timeouts::none()
    });
    run(async {
        let session = SessionDeadline::starting_now(options.timeouts.session);
        let mut conn = Connection::<_, Instant>::start(server, &options, false, session)
            .await
            .expect("greeting");
        conn.login("u", "p").await.expect("login");
        assert!(matches!(
            conn.noop().await,
            Err(Error::Timeout(Phase::Session))
        ));
        assert!(conn.is_poisoned());
    });
}

#[test]
fn a_session_past_its_deadline_sends_nothing_more() {
    let mut steps = login_steps();
    steps.push(("NOOP\r\n", "+OK\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    let options = options().timeouts(Timeouts::none());
    run(async {
        let mut conn = Connection::<_, Never>::start(
            server,
            &options,
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        // The server answers at once, but the session's time is up: a
        // server that never pauses is stopped before the next write.
        conn.set_timeouts(Timeouts {
            session: Some(Duration::ZERO),
            ..Timeouts::none()
        })
        .expect("limits");
        assert!(matches!(
            conn.noop().await,
            Err(Error::Timeout(Phase::Session))
        ));
        assert!(matches!(conn.noop().await, Err(Error::Closed)));
        // Neither NOOP (nor a QUIT) went out: only the login did.
        assert_eq!(
            String::from_utf8_lossy(&conn.get_ref().written),
            "USER u\r\nPASS p\r\n"
        );
    });
}

#[test]
fn with_timeout_races_the_timer() {
    let pending = std::future::pending::<io::Result<()>>();
    let result = run(with_timeout::<Instant, _>(
        Some(Duration::from_secs(1)),
        Phase::Connect,
        pending,
    ));
    assert!(matches!(result, Err(Error::Timeout(Phase::Connect))));
    let ready = async { Ok(7) };
    let result = run(with_timeout::<Instant, _>(None, Phase::Connect, ready));
    assert!(matches!(result, Ok(7)));
}

#[test]
fn a_dropped_reader_is_drained_by_the_next_operation() {
    let line = "0123456789".repeat(10);
    let body: String = (0..20).map(|_| format!("{line}\r\n")).collect();
    let mut steps = login_steps();
    steps.push(("RETR 1\r\n", format!("+OK\r\n{body}.\r\n")));
    steps.push(("NOOP\r\n", "+OK\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    let server = run(async {
        let mut conn = Connection::<_, Never>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        let mut reader = conn.retr(n(1)).await.expect("retr");
        let mut buf = [0u8; 4];
        assert_eq!(reader.read_chunk(&mut buf).await.expect("read"), 4);
        assert_eq!(&buf, b"0123");
        assert!(!reader.is_finished());
        drop(reader);
        conn.noop().await.expect("noop after the drained message");
        conn.into_inner()
    });
    assert!(server.written.ends_with(b"RETR 1\r\nNOOP\r\n"));
}

/// Compile-time check: every future is `Send` when the stream and the timer
/// are, so that the runtime crates' futures can be spawned on any thread.
#[allow(dead_code)]
fn futures_are_send<S: StartTls + Send, T: Runtime + Send>(
    stream: S,
    mut conn: Connection<S, T>,
    reader: &mut MessageReader<'_, S, T>,
    mechanism: Box<dyn pop3_proto::sasl::Mechanism>,
) {
    fn send<F: Send>(_: F) {}
    send(reader.read_chunk(&mut []));
    send(Connection::<S, T>::start(
        stream,
        &Options::new(),
        false,
        SessionDeadline::starting_now(None),
    ));
    send(conn.capa());
    send(conn.login("u", "p"));
    send(conn.login("u", String::from("p")));
    send(conn.login("u", pop3_proto::Secret::new(String::from("p"))));
    send(conn.login_with("u", "p", pop3_proto::AuthMethod::Auto));
    send(conn.apop("u", "p"));
    send(conn.auth(mechanism));
    send(conn.stat());
    send(conn.lang(None));
    send(conn.retr(n(1)));
    send(conn.retr_many(&[], &mut |_: MsgNum, _: &[u8]| {}));
    send(conn.retr_vec(n(1), 1));
    send(conn.dele_many(&[]));
    send(conn.start_tls("localhost"));
    send(conn.quit());
}

/// Per writer opened: its message, what it was given, whether it was flushed.
type Written = std::rc::Rc<std::cell::RefCell<Vec<(MsgNum, Vec<u8>, bool)>>>;

/// A writer that keeps what it is given in a list shared with the test, so
/// that what `retr_many_to` wrote can be seen after it dropped the writer.
struct Shared {
    list: Written,
    index: usize,
}

impl io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.list.borrow_mut()[self.index].1.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.list.borrow_mut()[self.index].2 = true;
        Ok(())
    }
}

/// Login, then the `CAPA` the core asks before a burst (no PIPELINING, so
/// the commands go out one by one).
fn burst_steps() -> Vec<(&'static str, String)> {
    let mut steps = login_steps();
    steps.push(("CAPA\r\n", "+OK\r\nUSER\r\nUIDL\r\n.\r\n".into()));
    steps
}

#[test]
fn retr_many_to_opens_a_writer_per_message() {
    use crate::runtime::blocking::Blocking;
    let mut steps = burst_steps();
    steps.push((
        "RETR 1\r\n",
        "+OK\r\nSubject: a\r\n\r\n..one\r\n.\r\n".into(),
    ));
    steps.push(("RETR 2\r\n", "-ERR [SYS/TEMP] busy\r\n".into()));
    steps.push(("RETR 3\r\n", "+OK\r\n.\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    let list = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let results = run(async {
        let mut conn = Connection::<_, Blocking>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await?;
        conn.login("u", "p").await?;
        conn.retr_many_to(&[n(1), n(2), n(3)], |msg| {
            let mut all = list.borrow_mut();
            all.push((msg, Vec::new(), false));
            Ok(Shared {
                list: list.clone(),
                index: all.len() - 1,
            })
        })
        .await
    })
    .expect("the retrieval runs");
    assert!(matches!(results[0], Ok(20)));
    assert!(matches!(&results[1], Err(Error::Server(e)) if e.text.as_str() == "busy"));
    assert!(matches!(results[2], Ok(0)));
    let written = list.borrow();
    // The refused message never got a writer; the empty one got one.
    assert_eq!(written.len(), 2);
    assert_eq!(
        written[0],
        (n(1), b"Subject: a\r\n\r\n.one\r\n".to_vec(), true)
    );
    assert_eq!(written[1], (n(3), Vec::new(), true));
}

#[test]
fn a_failing_writer_stops_retr_many_to_cleanly() {
    use crate::runtime::blocking::Blocking;
    let mut steps = burst_steps();
    steps.push(("RETR 1\r\n", "+OK\r\nfirst\r\n.\r\n".into()));
    steps.push(("RETR 2\r\n", "+OK\r\nsecond\r\n.\r\n".into()));
    steps.push(("NOOP\r\n", "+OK\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    run(async {
        let mut conn = Connection::<_, Blocking>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        let result = conn
            .retr_many_to(&[n(1), n(2)], |_| {
                Err::<Vec<u8>, _>(io::Error::other("disk full"))
            })
            .await;
        assert!(matches!(&result, Err(Error::Sink(e)) if e.to_string() == "disk full"));
        assert!(result.is_err_and(|e| !e.is_fatal()));
        assert!(!conn.is_poisoned());
        conn.noop().await.expect("the connection is still in step");
    });
}

#[test]
fn retr_vec_bounds_memory_and_stays_in_step() {
    let mut steps = login_steps();
    steps.push(("RETR 1\r\n", "+OK\r\n0123456789\r\n.\r\n".into()));
    steps.push(("RETR 1\r\n", "+OK\r\n0123456789\r\n.\r\n".into()));
    steps.push(("NOOP\r\n", "+OK\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    run(async {
        let mut conn = Connection::<_, Never>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        let exact = conn.retr_vec(n(1), 12).await.expect("exactly at the limit");
        assert_eq!(exact, b"0123456789\r\n");
        let over = conn.retr_vec(n(1), 11).await;
        assert!(matches!(over, Err(Error::MessageTooLarge { limit: 11 })));
        assert!(over.is_err_and(|e| !e.is_fatal()));
        conn.noop().await.expect("the rest was drained");
    });
}

#[test]
fn retr_to_takes_a_dyn_writer() {
    use crate::runtime::blocking::Blocking;
    let mut steps = login_steps();
    steps.push(("RETR 1\r\n", "+OK\r\nhello\r\n.\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    let mut out = Vec::new();
    run(async {
        let mut conn = Connection::<_, Blocking>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await
        .expect("greeting");
        conn.login("u", "p").await.expect("login");
        let writer: &mut dyn io::Write = &mut out;
        let size = conn.retr_to(n(1), writer).await.expect("retr_to");
        assert_eq!(size, 7);
    });
    assert_eq!(out, b"hello\r\n");
}

/// Compile-time check: the async runtimes' `retr_to` takes their `dyn`
/// writers too.
#[cfg(feature = "tokio")]
#[allow(dead_code)]
async fn tokio_retr_to_takes_a_dyn_writer<S: IoStream>(
    conn: &mut Connection<S, crate::runtime::tokio::Tokio>,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin),
) -> crate::Result<u64> {
    conn.retr_to(n(1), out).await
}

#[cfg(feature = "smol")]
#[allow(dead_code)]
async fn smol_retr_to_takes_a_dyn_writer<S: IoStream>(
    conn: &mut Connection<S, crate::runtime::smol::Smol>,
    out: &mut (dyn futures_io::AsyncWrite + Unpin),
) -> crate::Result<u64> {
    conn.retr_to(n(1), out).await
}

#[test]
fn uidl_and_list_report_each_result() {
    let mut steps = login_steps();
    steps.push(("UIDL\r\n", "-ERR no UIDL here\r\n".into()));
    steps.push(("LIST\r\n", "+OK\r\n1 120\r\n2 200\r\n.\r\n".into()));
    steps.push(("NOOP\r\n", "+OK\r\n".into()));
    let server = Server::new("+OK ready\r\n", steps);
    run(async {
        let mut conn = Connection::<_, Never>::start(
            server,
            &options(),
            false,
            SessionDeadline::starting_now(None),
        )
        .await?;
        conn.login("u", "p").await?;
        let (uidl, list) = conn.uidl_and_list().await?;
        // A refused UIDL is that command's own, non-fatal result.
        assert!(matches!(uidl, Err(Error::Server(_))));
        let sizes: Vec<u64> = list?.iter().map(|e| e.size).collect();
        assert_eq!(sizes, [120, 200]);
        conn.noop().await?;
        Ok::<_, Error>(())
    })
    .expect("the session goes on");
}

/// The in-memory server cannot do TLS: enough for a connect that must fail
/// before it ever gets there.
impl StartTls for Server {
    fn start_tls(
        &mut self,
        _: std::sync::Arc<rustls::ClientConfig>,
        _: rustls::pki_types::ServerName<'static>,
        _: Option<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// In STARTTLS mode the TLS configuration and server name are made before
/// the TCP connect, as for implicit TLS: a setting that cannot work (here
/// a server name that is no name) fails with nothing connected, not after
/// the greeting and CAPA.
#[test]
fn starttls_settings_fail_before_anything_is_connected() {
    use crate::connect::{connect, Security};
    let options = options().server_name("not a host name");
    let mut connected = false;
    let result = run(connect::<Never, Server>(
        "mail.example.org",
        110,
        &options,
        Security::StartTls,
        async |_, _| {
            connected = true;
            Ok(Server::new("+OK ready\r\n", Vec::new()))
        },
    ));
    assert!(matches!(result, Err(Error::Io(ref e)) if e.kind() == io::ErrorKind::InvalidInput));
    assert!(!connected, "it connected before failing");
}
