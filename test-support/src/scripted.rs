//! A scripted, thread-based POP3 server for fault-injection tests.
//!
//! [`ScriptedServer::start`] binds `127.0.0.1:0`, accepts exactly one
//! connection on a background thread and then executes a list of [`Step`]s:
//! sending canned bytes, checking what the client sends, sleeping, stalling,
//! closing, or upgrading the connection to TLS. Every read has a hard timeout
//! ([`ScriptConfig::timeout`], 10 s by default) so a misbehaving client can
//! never hang a test; [`ScriptedServer::join`] reports whether the client
//! followed the script.
//!
//! ```no_run
//! use test_support::scripted::{ScriptedServer, Step};
//!
//! let server = ScriptedServer::start(vec![
//!     Step::send_line("+OK ready"),
//!     Step::expect_line("QUIT"),
//!     Step::send_line("+OK bye"),
//!     Step::ExpectClose,
//! ]);
//! // ... point the client under test at server.addr() ...
//! let sent_by_client = server.join().expect("client followed the script");
//! assert_eq!(sent_by_client, b"QUIT\r\n");
//! ```
//!
//! Common fault scripts:
//!
//! * greeting only, then stall: `[send_line("+OK hi"), Stall]`
//! * `STLS` answered with `+OK`, then plain-text garbage instead of a TLS
//!   handshake: `[send_line("+OK hi"), expect_line("STLS"), send_line("+OK"),
//!   Send(b"this is not TLS\r\n"), Stall]` — the client's handshake must
//!   fail; `Stall` (not `ExpectClose`) because the binary ClientHello may
//!   contain a `\n`.
//! * `STLS` `+OK` with injected lines in the same write (the STARTTLS
//!   response-injection probe, cf. CVE-2011-0411):
//!   `[..., Send(b"+OK begin\r\n+OK injected\r\n"), StartTls(cfg), ...]` —
//!   the injected bytes normally sit in the client's read buffer when it
//!   starts TLS. A client that rejects unread data after the `STLS` response
//!   aborts (then `StartTls` fails with "TLS handshake failed: ..."); one
//!   that silently discards it completes the handshake; one that feeds it to
//!   its TLS layer fails the handshake; one that parses it as a response has
//!   the bug.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Longest client line the server accepts before failing the script.
const MAX_LINE: usize = 1 << 20;

/// One step of a server script.
#[derive(Clone)]
pub enum Step {
    /// Write these bytes (verbatim, in a single `write_all`).
    Send(Vec<u8>),
    /// Read exactly one client line (up to and including `\n`) and require
    /// it to equal these bytes (which should therefore end in `\r\n`).
    Expect(Vec<u8>),
    /// Read one client line and require it to start with these bytes.
    ExpectPrefix(Vec<u8>),
    /// Read and accept any one client line.
    ReadLine,
    /// Sleep before the next step.
    Sleep(Duration),
    /// Stop responding but keep the socket open until the client closes it
    /// or [`ScriptConfig::stall_limit`] (30 s by default) passes. Anything
    /// the client sends meanwhile is recorded, not checked. Never fails.
    Stall,
    /// Close the connection (TLS `close_notify` first when on TLS). Bytes the
    /// client already sent are drained (and recorded) first so the close is a
    /// FIN rather than a RST.
    Close,
    /// Run a rustls server handshake on the socket; following steps go over
    /// TLS. Client bytes that arrived after the last line read before this
    /// step (e.g. an eager ClientHello) are fed into the handshake.
    StartTls(Arc<ServerConfig>),
    /// Read until the client closes the connection; fails if the client
    /// sends a complete line (or does not close within the timeout).
    ExpectClose,
    /// [`Step::ExpectClose`] on a TLS connection, and the client must end TLS
    /// properly: a `close_notify` alert before the TCP close (rustls reports
    /// a close without it as an unexpected end of stream).
    ExpectCloseNotify,
}

impl Step {
    /// `Send(line + "\r\n")`.
    pub fn send_line(line: &str) -> Step {
        Step::Send(crlf(line))
    }

    /// `Expect(line + "\r\n")`.
    pub fn expect_line(line: &str) -> Step {
        Step::Expect(crlf(line))
    }

    /// `ExpectPrefix(prefix)`.
    pub fn expect_prefix(prefix: &str) -> Step {
        Step::ExpectPrefix(prefix.as_bytes().to_vec())
    }
}

fn crlf(line: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(line.len() + 2);
    v.extend_from_slice(line.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Send(b) => write!(f, "Send({})", show(b)),
            Step::Expect(b) => write!(f, "Expect({})", show(b)),
            Step::ExpectPrefix(b) => write!(f, "ExpectPrefix({})", show(b)),
            Step::ReadLine => f.write_str("ReadLine"),
            Step::Sleep(d) => write!(f, "Sleep({d:?})"),
            Step::Stall => f.write_str("Stall"),
            Step::Close => f.write_str("Close"),
            Step::StartTls(_) => f.write_str("StartTls(..)"),
            Step::ExpectClose => f.write_str("ExpectClose"),
            Step::ExpectCloseNotify => f.write_str("ExpectCloseNotify"),
        }
    }
}

/// Escapes bytes for error messages: `b"+OK\r\n"` becomes `"+OK\r\n"`.
pub fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// Timeouts of a [`ScriptedServer`].
#[derive(Debug, Clone, Copy)]
pub struct ScriptConfig {
    /// Hard limit for waiting for the client to connect, and for every read,
    /// write and TLS handshake. Default 10 s.
    pub timeout: Duration,
    /// How long [`Step::Stall`] keeps the connection open if the client does
    /// not close it. Default 30 s.
    pub stall_limit: Duration,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        ScriptConfig {
            timeout: Duration::from_secs(10),
            stall_limit: Duration::from_secs(30),
        }
    }
}

impl ScriptConfig {
    /// The default configuration with a different [`ScriptConfig::timeout`].
    pub fn with_timeout(timeout: Duration) -> ScriptConfig {
        ScriptConfig {
            timeout,
            ..ScriptConfig::default()
        }
    }
}

/// A running scripted server; see the [module docs](self).
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    handle: JoinHandle<Result<(), String>>,
}

impl ScriptedServer {
    /// Starts a server for one connection with the default [`ScriptConfig`].
    pub fn start(steps: Vec<Step>) -> ScriptedServer {
        ScriptedServer::start_with(steps, ScriptConfig::default())
    }

    /// Starts a server for one connection with the given timeouts.
    pub fn start_with(steps: Vec<Step>, config: ScriptConfig) -> ScriptedServer {
        ScriptedServer::start_sessions(vec![steps], config)
    }

    /// Starts a server that accepts `sessions.len()` connections one after
    /// the other and runs the n-th script on the n-th connection (useful for
    /// reconnect tests). [`ScriptedServer::received`] covers all sessions.
    pub fn start_sessions(sessions: Vec<Vec<Step>>, config: ScriptConfig) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        ScriptedServer::start_on(listener, sessions, config)
    }

    /// [`ScriptedServer::start_sessions`] on a socket of the caller's (a
    /// given port, such as 995).
    pub fn start_on(
        listener: TcpListener,
        sessions: Vec<Vec<Step>>,
        config: ScriptConfig,
    ) -> ScriptedServer {
        let addr = listener.local_addr().expect("local_addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&received);
        let handle = thread::Builder::new()
            .name(format!("scripted-pop3-{}", addr.port()))
            .spawn(move || {
                let many = sessions.len() > 1;
                for (n, steps) in sessions.into_iter().enumerate() {
                    let ctx = if many {
                        format!("session {n}: ")
                    } else {
                        String::new()
                    };
                    let stream = accept(&listener, config.timeout)
                        .map_err(|e| format!("{ctx}no client connection: {e}"))?;
                    let mut session = Session::new(stream, &rec, config)
                        .map_err(|e| format!("{ctx}socket setup: {e}"))?;
                    let result = session.run(&steps);
                    session.finish();
                    result.map_err(|e| format!("{ctx}{e}"))?;
                }
                Ok(())
            })
            .expect("spawn scripted server thread");
        ScriptedServer {
            addr,
            received,
            handle,
        }
    }

    /// The address to connect to (on 127.0.0.1, unless the caller bound it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte the client sent so far, in order: plain-text bytes before
    /// `StartTls` and decrypted application bytes after it (TLS records
    /// themselves are not included).
    pub fn received(&self) -> Vec<u8> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the script to finish. Returns everything the client sent
    /// (see [`ScriptedServer::received`]) or a description of how the script
    /// was not followed (unexpected line, timeout, closed connection, TLS
    /// failure, ...).
    pub fn join(self) -> Result<Vec<u8>, String> {
        let result = match self.handle.join() {
            Ok(r) => r,
            Err(_) => Err("scripted server thread panicked".to_string()),
        };
        let received = self
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        result.map(|()| received)
    }

    /// Waits for the script to finish like [`ScriptedServer::join`], and
    /// returns every byte the client sent whether or not the script was
    /// followed. Unlike calling [`ScriptedServer::received`] before `join`,
    /// this cannot miss bytes that the server thread had yet to read (for
    /// example during a [`Step::Stall`]).
    pub fn join_all(self) -> (Vec<u8>, Result<(), String>) {
        let result = match self.handle.join() {
            Ok(r) => r,
            Err(_) => Err("scripted server thread panicked".to_string()),
        };
        let received = self
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (received, result)
    }
}

fn accept(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("timed out after {timeout:?}"),
                    ));
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

enum Chunk {
    Data,
    /// The end of the stream: `clean` when the read said so (for TLS: after
    /// a `close_notify`), not when the connection broke.
    Eof {
        clean: bool,
    },
    TimedOut,
}

struct Session<'a> {
    conn: Option<Conn>,
    /// Bytes read from the connection but not consumed (and not yet recorded).
    pending: Vec<u8>,
    received: &'a Mutex<Vec<u8>>,
    config: ScriptConfig,
}

impl<'a> Session<'a> {
    fn new(
        stream: TcpStream,
        received: &'a Mutex<Vec<u8>>,
        config: ScriptConfig,
    ) -> io::Result<Session<'a>> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(config.timeout))?;
        Ok(Session {
            conn: Some(Conn::Plain(stream)),
            pending: Vec::new(),
            received,
            config,
        })
    }

    fn record(&self, bytes: &[u8]) {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
    }

    fn conn(&mut self) -> Result<&mut Conn, String> {
        self.conn
            .as_mut()
            .ok_or_else(|| "connection already closed by an earlier Close step".to_string())
    }

    /// Reads one chunk into `pending`, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<Chunk, String> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Chunk::TimedOut);
        }
        let conn = self.conn()?;
        conn.tcp()
            .set_read_timeout(Some(deadline - now))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let mut buf = [0u8; 16 * 1024];
        match conn.read(&mut buf) {
            Ok(0) => Ok(Chunk::Eof { clean: true }),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(Chunk::Data)
            }
            Err(e) if is_timeout(&e) => Ok(Chunk::TimedOut),
            Err(e) if is_disconnect(&e) => Ok(Chunk::Eof { clean: false }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Chunk::Data),
            Err(e) => Err(format!("read error: {e}")),
        }
    }

    /// Reads one line (through `\n`) and records it.
    fn read_line(&mut self) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                self.record(&line);
                return Ok(line);
            }
            if self.pending.len() > MAX_LINE {
                return Err(format!("client line longer than {MAX_LINE} bytes"));
            }
            match self.fill(deadline)? {
                Chunk::Data => {}
                Chunk::Eof { .. } => {
                    let partial = std::mem::take(&mut self.pending);
                    self.record(&partial);
                    return Err(format!(
                        "client closed the connection (partial line {})",
                        show(&partial)
                    ));
                }
                Chunk::TimedOut => {
                    return Err(format!(
                        "timed out after {:?} waiting for a client line (partial {})",
                        self.config.timeout,
                        show(&self.pending)
                    ))
                }
            }
        }
    }

    /// Reads until EOF or `deadline`, recording everything. Returns whether
    /// EOF was seen and whether a complete line arrived.
    /// Reads until the client closes: (closed, saw a line, closed cleanly).
    fn drain_until_close(&mut self, deadline: Instant) -> Result<(bool, bool, bool), String> {
        let mut saw_line = self.pending.contains(&b'\n');
        let pending = std::mem::take(&mut self.pending);
        self.record(&pending);
        loop {
            let chunk = self.fill(deadline)?;
            let got = std::mem::take(&mut self.pending);
            saw_line |= got.contains(&b'\n');
            self.record(&got);
            match chunk {
                Chunk::Data => {}
                Chunk::Eof { clean } => return Ok((true, saw_line, clean)),
                Chunk::TimedOut => return Ok((false, saw_line, false)),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let conn = self.conn()?;
        conn.write_all(bytes)
            .and_then(|()| conn.flush())
            .map_err(|e| format!("write of {} failed: {e}", show(bytes)))
    }

    fn start_tls(&mut self, config: &Arc<ServerConfig>) -> Result<(), String> {
        let tcp = match self.conn.take() {
            Some(Conn::Plain(tcp)) => tcp,
            Some(tls @ Conn::Tls(_)) => {
                self.conn = Some(tls);
                return Err("StartTls on a connection that is already TLS".into());
            }
            None => return Err("StartTls after Close".into()),
        };
        let mut tls =
            ServerConnection::new(Arc::clone(config)).map_err(|e| format!("rustls: {e}"))?;
        // Bytes the client sent right after the STLS line belong to the
        // handshake (a well-behaved client sends nothing before our +OK, but
        // an eager one may).
        let early = std::mem::take(&mut self.pending);
        let mut rd = &early[..];
        while !rd.is_empty() {
            tls.read_tls(&mut rd)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        let mut stream = StreamOwned::new(tls, tcp);
        let deadline = Instant::now() + self.config.timeout;
        let mut result = Ok(());
        if !early.is_empty() {
            if let Err(e) = stream.conn.process_new_packets() {
                let _ = stream.conn.write_tls(&mut stream.sock);
                result = Err(format!("TLS handshake failed: {e}"));
            }
        }
        while result.is_ok() && stream.conn.is_handshaking() {
            let now = Instant::now();
            if now >= deadline {
                result = Err(format!(
                    "TLS handshake timed out after {:?}",
                    self.config.timeout
                ));
                break;
            }
            if let Err(e) = stream.sock.set_read_timeout(Some(deadline - now)) {
                result = Err(format!("set_read_timeout: {e}"));
                break;
            }
            match stream.conn.complete_io(&mut stream.sock) {
                Ok((0, 0)) if stream.conn.wants_read() => {
                    result = Err("TLS handshake failed: client closed the connection".into());
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => result = Err(format!("TLS handshake failed: {e}")),
            }
        }
        // Send the final handshake flight if complete_io left one queued.
        if result.is_ok() {
            while stream.conn.wants_write() {
                if let Err(e) = stream.conn.write_tls(&mut stream.sock) {
                    result = Err(format!("TLS handshake failed: {e}"));
                    break;
                }
            }
        }
        self.conn = Some(Conn::Tls(Box::new(stream)));
        result
    }

    /// Records whatever the client already sent without waiting.
    fn drain_available(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.record(&pending);
        if self.conn.is_none() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(20);
        while let Ok(Chunk::Data) = self.fill(deadline) {
            let got = std::mem::take(&mut self.pending);
            self.record(&got);
        }
    }

    fn close(&mut self) {
        self.drain_available();
        match self.conn.take() {
            Some(Conn::Plain(tcp)) => {
                let _ = tcp.shutdown(Shutdown::Both);
            }
            Some(Conn::Tls(mut tls)) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                let _ = tls.sock.shutdown(Shutdown::Both);
            }
            None => {}
        }
    }

    fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        for (i, step) in steps.iter().enumerate() {
            self.step(step)
                .map_err(|e| format!("step {i} {step:?}: {e}"))?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Send(bytes) => self.send(bytes),
            Step::Expect(want) => {
                let line = self.read_line()?;
                if &line == want {
                    Ok(())
                } else {
                    Err(format!("client sent {}", show(&line)))
                }
            }
            Step::ExpectPrefix(prefix) => {
                let line = self.read_line()?;
                if line.starts_with(prefix) {
                    Ok(())
                } else {
                    Err(format!("client sent {}", show(&line)))
                }
            }
            Step::ReadLine => self.read_line().map(drop),
            Step::Sleep(d) => {
                thread::sleep(*d);
                Ok(())
            }
            Step::Stall => {
                let deadline = Instant::now() + self.config.stall_limit;
                self.drain_until_close(deadline).map(drop)
            }
            Step::Close => {
                self.close();
                Ok(())
            }
            Step::StartTls(config) => self.start_tls(config),
            Step::ExpectClose | Step::ExpectCloseNotify => {
                let notify = matches!(step, Step::ExpectCloseNotify);
                if notify && !matches!(self.conn, Some(Conn::Tls(_))) {
                    return Err("ExpectCloseNotify on a connection without TLS".into());
                }
                let deadline = Instant::now() + self.config.timeout;
                match self.drain_until_close(deadline)? {
                    (_, true, _) => Err("client sent a line instead of closing".into()),
                    (false, false, _) => Err(format!(
                        "client did not close the connection within {:?}",
                        self.config.timeout
                    )),
                    (true, false, false) if notify => {
                        Err("client closed the TCP connection without a TLS close_notify".into())
                    }
                    (true, false, _) => Ok(()),
                }
            }
        }
    }

    /// End of script: record what is left and close the connection.
    fn finish(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{rustls_server_config, TestPki};
    use std::io::{BufRead, BufReader};

    fn connect(server: &ScriptedServer) -> TcpStream {
        let s = TcpStream::connect(server.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    }

    fn read_line(r: &mut impl BufRead) -> Vec<u8> {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).expect("read line");
        line
    }

    fn read_line_bytewise(s: &mut TcpStream) -> Vec<u8> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            assert_eq!(s.read(&mut b).expect("read"), 1);
            line.push(b[0]);
        }
        line
    }

    #[test]
    fn follows_a_simple_script() {
        let server = ScriptedServer::start(vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUIDL\r\n.\r\n".to_vec()),
            Step::expect_prefix("USER "),
            Step::send_line("+OK"),
            Step::ReadLine,
            Step::send_line("+OK bye"),
            Step::ExpectClose,
        ]);
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut w = s;
        assert_eq!(read_line(&mut r), b"+OK ready\r\n");
        w.write_all(b"CAPA\r\n").expect("write");
        assert_eq!(read_line(&mut r), b"+OK\r\n");
        assert_eq!(read_line(&mut r), b"UIDL\r\n");
        assert_eq!(read_line(&mut r), b".\r\n");
        // Pipelined: both lines in one write.
        w.write_all(b"USER bob\r\nQUIT\r\n").expect("write");
        assert_eq!(read_line(&mut r), b"+OK\r\n");
        assert_eq!(read_line(&mut r), b"+OK bye\r\n");
        drop(w);
        drop(r);
        let got = server.join().expect("script followed");
        assert_eq!(got, b"CAPA\r\nUSER bob\r\nQUIT\r\n");
    }

    #[test]
    fn reports_unexpected_line() {
        let server = ScriptedServer::start(vec![Step::expect_line("QUIT")]);
        let mut s = connect(&server);
        s.write_all(b"NOOP\r\n").expect("write");
        let err = server.join().expect_err("mismatch");
        assert!(err.contains("step 0") && err.contains("NOOP"), "{err}");
    }

    #[test]
    fn read_timeout_is_enforced() {
        let config = ScriptConfig::with_timeout(Duration::from_millis(200));
        let server = ScriptedServer::start_with(vec![Step::ReadLine], config);
        let _s = connect(&server);
        let start = Instant::now();
        let err = server.join().expect_err("timeout");
        assert!(err.contains("timed out"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn no_connection_is_an_error() {
        let config = ScriptConfig::with_timeout(Duration::from_millis(100));
        let server = ScriptedServer::start_with(vec![Step::send_line("+OK")], config);
        let err = server.join().expect_err("nobody connected");
        assert!(err.contains("no client connection"), "{err}");
    }

    #[test]
    fn expect_close_fails_on_a_line_and_accepts_close() {
        let server = ScriptedServer::start(vec![Step::ExpectClose]);
        let mut s = connect(&server);
        s.write_all(b"QUIT\r\n").expect("write");
        drop(s);
        assert!(server.join().is_err());

        let server = ScriptedServer::start(vec![Step::ExpectClose]);
        let mut s = connect(&server);
        s.write_all(b"partial").expect("write");
        drop(s);
        assert_eq!(server.join().expect("close ok"), b"partial");
    }

    #[test]
    fn stall_ends_when_client_closes() {
        let server = ScriptedServer::start(vec![Step::send_line("+OK hi"), Step::Stall]);
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        assert_eq!(read_line(&mut r), b"+OK hi\r\n");
        let mut w = s;
        w.write_all(b"NOOP\r\n").expect("write");
        // The server does not answer.
        w.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 8];
        let e = r.get_mut().read(&mut buf);
        assert!(e.is_err(), "server should stay silent: {e:?}");
        let start = Instant::now();
        drop(w);
        drop(r);
        assert_eq!(server.join().expect("stall ok"), b"NOOP\r\n");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn close_is_seen_as_eof() {
        let server = ScriptedServer::start(vec![Step::send_line("+OK hi"), Step::Close]);
        let s = connect(&server);
        let mut r = BufReader::new(s);
        assert_eq!(read_line(&mut r), b"+OK hi\r\n");
        assert_eq!(read_line(&mut r), b"");
        server.join().expect("ok");
    }

    #[test]
    fn multiple_sessions() {
        let server = ScriptedServer::start_sessions(
            vec![
                vec![Step::send_line("+OK one"), Step::Close],
                vec![Step::send_line("+OK two"), Step::expect_line("QUIT")],
            ],
            ScriptConfig::default(),
        );
        let mut r = BufReader::new(connect(&server));
        assert_eq!(read_line(&mut r), b"+OK one\r\n");
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        assert_eq!(read_line(&mut r), b"+OK two\r\n");
        (&s).write_all(b"QUIT\r\n").expect("write");
        assert_eq!(server.join().expect("ok"), b"QUIT\r\n");
    }

    fn tls_client(
        pki: &TestPki,
        tcp: TcpStream,
    ) -> StreamOwned<rustls::ClientConnection, TcpStream> {
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(pki.rustls_client_config(), name).expect("client");
        StreamOwned::new(conn, tcp)
    }

    #[test]
    fn expect_close_notify_tells_a_clean_tls_close_from_a_bare_one() {
        let pki = TestPki::shared();
        for notify in [true, false] {
            let server = ScriptedServer::start(vec![
                Step::StartTls(rustls_server_config(&pki.server)),
                Step::send_line("+OK hi"),
                Step::ExpectCloseNotify,
            ]);
            let mut tls = BufReader::new(tls_client(pki, connect(&server)));
            assert_eq!(read_line(&mut tls), b"+OK hi\r\n");
            if notify {
                tls.get_mut().conn.send_close_notify();
                tls.get_mut().flush().expect("flush");
            }
            drop(tls);
            let result = server.join();
            assert_eq!(
                result.is_ok(),
                notify,
                "close_notify sent: {notify}: {result:?}"
            );
        }
    }

    #[test]
    fn stls_upgrade_records_plain_and_decrypted_bytes() {
        let pki = TestPki::shared();
        let server = ScriptedServer::start(vec![
            Step::send_line("+OK hi"),
            Step::expect_line("STLS"),
            Step::send_line("+OK begin TLS"),
            Step::StartTls(rustls_server_config(&pki.server)),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
            Step::ExpectClose,
        ]);
        let mut s = connect(&server);
        // Read byte-wise so nothing after the +OK line is consumed.
        assert_eq!(read_line_bytewise(&mut s), b"+OK hi\r\n");
        s.write_all(b"STLS\r\n").expect("write");
        assert_eq!(read_line_bytewise(&mut s), b"+OK begin TLS\r\n");
        let mut tls = BufReader::new(tls_client(pki, s));
        tls.get_mut().write_all(b"CAPA\r\n").expect("write");
        assert_eq!(read_line(&mut tls), b"+OK\r\n");
        assert_eq!(read_line(&mut tls), b"USER\r\n");
        assert_eq!(read_line(&mut tls), b".\r\n");
        tls.get_mut().write_all(b"QUIT\r\n").expect("write");
        assert_eq!(read_line(&mut tls), b"+OK bye\r\n");
        tls.get_mut().conn.send_close_notify();
        tls.get_mut().flush().expect("flush");
        drop(tls);
        assert_eq!(
            server.join().expect("script followed"),
            b"STLS\r\nCAPA\r\nQUIT\r\n"
        );
    }

    #[test]
    fn stls_ok_then_garbage_breaks_the_client_handshake() {
        let pki = TestPki::shared();
        let server = ScriptedServer::start(vec![
            Step::send_line("+OK hi"),
            Step::expect_line("STLS"),
            Step::send_line("+OK"),
            Step::Send(b"this is not a TLS record\r\n".to_vec()),
            // The ClientHello is binary and may contain '\n', so Stall
            // (which records without checking) rather than ExpectClose.
            Step::Stall,
        ]);
        let mut s = connect(&server);
        // Byte-wise: a buffered reader could swallow the garbage.
        assert_eq!(read_line_bytewise(&mut s), b"+OK hi\r\n");
        s.write_all(b"STLS\r\n").expect("write");
        assert_eq!(read_line_bytewise(&mut s), b"+OK\r\n");
        let mut tls = tls_client(pki, s);
        let err = tls.write_all(b"CAPA\r\n").and_then(|()| tls.flush());
        let err = match err {
            Err(e) => e,
            Ok(()) => tls.read(&mut [0u8; 16]).expect_err("handshake must fail"),
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        drop(tls);
        // The client sent a ClientHello (not a line) and closed: script ok.
        let got = server.join().expect("script followed");
        assert!(got.starts_with(b"STLS\r\n"));
    }

    #[test]
    fn stls_ok_with_injected_lines_arrives_in_one_write() {
        let pki = TestPki::shared();
        let server = ScriptedServer::start(vec![
            Step::send_line("+OK hi"),
            Step::expect_line("STLS"),
            Step::Send(b"+OK begin TLS\r\n+OK injected\r\n".to_vec()),
            Step::StartTls(rustls_server_config(&pki.server)),
        ]);
        let s = connect(&server);
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        assert_eq!(read_line(&mut r), b"+OK hi\r\n");
        (&s).write_all(b"STLS\r\n").expect("write");
        assert_eq!(read_line(&mut r), b"+OK begin TLS\r\n");
        // A naive buffered reader now holds bytes that arrived before the
        // TLS handshake; a correct client must discard them or abort.
        let leftover = r.buffer().to_vec();
        let mut rest = leftover.clone();
        if rest.is_empty() {
            rest = read_line(&mut r);
        }
        assert_eq!(rest, b"+OK injected\r\n");
        // Abort: the server's handshake step sees the close.
        drop(r);
        drop(s);
        let err = server.join().expect_err("handshake cannot complete");
        assert!(err.contains("TLS handshake failed"), "{err}");
    }

    #[test]
    fn client_hello_in_the_same_segment_as_stls_is_fed_to_tls() {
        let pki = TestPki::shared();
        let server = ScriptedServer::start(vec![
            Step::expect_line("STLS"),
            Step::StartTls(rustls_server_config(&pki.server)),
            Step::expect_line("NOOP"),
            Step::send_line("+OK"),
        ]);
        let s = connect(&server);
        // Build the ClientHello first so "STLS\r\n" and it go out together.
        let mut tls = tls_client(pki, s);
        let mut hello = b"STLS\r\n".to_vec();
        tls.conn.write_tls(&mut hello).expect("client hello");
        tls.sock.write_all(&hello).expect("write");
        tls.write_all(b"NOOP\r\n").expect("write");
        let mut r = BufReader::new(tls);
        assert_eq!(read_line(&mut r), b"+OK\r\n");
        drop(r);
        assert_eq!(server.join().expect("ok"), b"STLS\r\nNOOP\r\n");
    }

    #[test]
    fn step_debug_escapes_bytes() {
        assert_eq!(
            format!("{:?}", Step::send_line("+OK \u{e9}")),
            "Send(\"+OK \\xc3\\xa9\\r\\n\")"
        );
    }
}
