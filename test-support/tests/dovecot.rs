//! Verifies the Dovecot fixture against the real server with raw sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use test_support::dovecot::{unique_user, Dovecot, DovecotOptions, Mailbox};

/// A minimal raw POP3 client over any stream.
struct Raw<S: Read + Write> {
    r: BufReader<S>,
}

impl Raw<TcpStream> {
    fn connect(addr: SocketAddr) -> Raw<TcpStream> {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw {
            r: BufReader::new(s),
        }
    }
}

impl<S: Read + Write> Raw<S> {
    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).expect("read line");
        line
    }

    fn line_str(&mut self) -> String {
        String::from_utf8(self.line()).expect("utf-8 line")
    }

    fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("write");
        self.r.get_mut().flush().expect("flush");
    }

    fn cmd(&mut self, cmd: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        self.line_str()
    }

    /// Reads a multi-line body after a `+OK` line; returns the raw (still
    /// dot-stuffed) lines without the terminating ".\r\n".
    fn multiline_raw(&mut self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "EOF inside multi-line response");
            if l == b".\r\n" {
                return lines;
            }
            lines.push(l);
        }
    }

    fn login(&mut self, mb: &Mailbox) {
        assert!(self.cmd(&format!("USER {}", mb.user())).starts_with("+OK"));
        let r = self.cmd(&format!("PASS {}", mb.password()));
        assert!(r.starts_with("+OK"), "PASS: {r}");
    }
}

fn unstuff(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        match l.strip_prefix(b".") {
            Some(rest) => out.extend_from_slice(rest),
            None => out.extend_from_slice(l),
        }
    }
    out
}

fn new_user(prefix: &str) -> (&'static Dovecot, Mailbox) {
    let d = Dovecot::shared();
    let mb = d.add_user(&unique_user(prefix), "s3cret pass");
    (d, mb)
}

/// Waits until `cond` holds (Dovecot updates files asynchronously).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const TRICKY: &[u8] = b"From: a@example.org\r\n\
Subject: dots and 8 bits\r\n\
\r\n\
.leading dot\r\n\
.\r\n\
..two dots\r\n\
8-bit: \xe9\xe8\xff\x80 and NUL-free\r\n\
 trailing space \r\n\
\r\n\
last line\r\n";

#[test]
fn shared_server_reports_version_and_startup() {
    let d = Dovecot::shared();
    assert!(d.version().starts_with("2."), "{}", d.version());
    eprintln!(
        "Dovecot {} started in {:?} at {} / {} (dir {})",
        d.version(),
        d.startup_time(),
        d.plain_addr(),
        d.tls_addr(),
        d.dir().display()
    );
    assert!(d.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!d.ca_der().is_empty());
    assert!(d.log().contains("starting up"), "{}", d.log());
}

#[test]
fn greeting_has_apop_timestamp_and_capa_lists_everything() {
    let d = Dovecot::shared();
    let mut c = Raw::connect(d.plain_addr());
    let greeting = c.line_str();
    assert!(greeting.starts_with("+OK "), "{greeting}");
    let ts_start = greeting.find('<').expect("APOP timestamp");
    let ts_end = greeting.rfind('>').expect("APOP timestamp end");
    let ts = &greeting[ts_start..=ts_end];
    assert!(ts.contains('@'), "{ts}");

    assert_eq!(c.cmd("CAPA"), "+OK\r\n");
    let capa: Vec<String> = c
        .multiline_raw()
        .into_iter()
        .map(|l| String::from_utf8(l).expect("utf-8").trim_end().to_string())
        .collect();
    for want in [
        "STLS",
        "PIPELINING",
        "UIDL",
        "TOP",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
    ] {
        assert!(capa.iter().any(|l| l == want), "{want} missing: {capa:?}");
    }
    let sasl = capa
        .iter()
        .find(|l| l.starts_with("SASL "))
        .expect("SASL capability");
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        assert!(sasl.split(' ').any(|m| m == mech), "{mech}: {sasl}");
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn user_pass_login_and_byte_exact_retr() {
    let (d, mb) = new_user("retr");
    let path = mb.add_message(TRICKY);
    assert_eq!(std::fs::read(&path).expect("read"), TRICKY);
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert_eq!(c.cmd("STAT"), format!("+OK 1 {}\r\n", TRICKY.len()));
    assert_eq!(c.cmd("LIST 1"), format!("+OK 1 {}\r\n", TRICKY.len()));
    let r = c.cmd("RETR 1");
    assert!(r.starts_with("+OK"), "{r}");
    let lines = c.multiline_raw();
    // On the wire, lines starting with '.' are dot-stuffed.
    assert!(lines.iter().any(|l| l == b"..leading dot\r\n"), "{lines:?}");
    assert!(lines.iter().any(|l| l == b"..\r\n"), "{lines:?}");
    assert!(lines.iter().any(|l| l == b"...two dots\r\n"), "{lines:?}");
    assert_eq!(unstuff(&lines), TRICKY, "RETR must be byte-exact");
    // TOP n 0 returns the header and the blank line.
    assert!(c.cmd("TOP 1 0").starts_with("+OK"));
    let top = unstuff(&c.multiline_raw());
    assert_eq!(
        top,
        b"From: a@example.org\r\nSubject: dots and 8 bits\r\n\r\n".to_vec()
    );
    let r = c.cmd("UIDL 1");
    let uidl = r.trim_end().rsplit(' ').next().expect("uidl");
    assert!(
        uidl.len() == 16 && uidl.chars().all(|c| c.is_ascii_hexdigit()),
        "{r}"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // Reading did not rename or alter the file.
    assert_eq!(mb.message_files(), vec![path.clone()]);
    assert_eq!(std::fs::read(&path).expect("read"), TRICKY);
}

#[test]
fn message_numbers_follow_insertion_order() {
    let (d, mb) = new_user("order");
    let mut paths: Vec<PathBuf> = Vec::new();
    // Enough files that readdir order differs from insertion order.
    for i in 0..40 {
        let body = format!("Subject: message {i}\r\n\r\n{}\r\n", "x".repeat(i));
        paths.push(mb.add_message(body.as_bytes()));
    }
    assert_eq!(mb.message_files(), paths);
    assert_eq!(mb.count(), 40);
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    for i in [0usize, 1, 7, 19, 39] {
        assert!(c.cmd(&format!("TOP {} 0", i + 1)).starts_with("+OK"));
        let head = unstuff(&c.multiline_raw());
        assert_eq!(head, format!("Subject: message {i}\r\n\r\n").into_bytes());
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // Messages added later (even within the same second) come after.
    let later = mb.add_message(b"Subject: later\r\n\r\nz\r\n");
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert!(c.cmd("STAT").starts_with("+OK 41 "));
    assert!(c.cmd("TOP 41 0").starts_with("+OK"));
    assert_eq!(unstuff(&c.multiline_raw()), b"Subject: later\r\n\r\n");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(mb.message_files().last(), Some(&later));
}

#[test]
fn dele_quit_removes_and_dele_disconnect_keeps() {
    let (d, mb) = new_user("dele");
    let first = mb.add_message(b"Subject: 1\r\n\r\none\r\n");
    let second = mb.add_message(b"Subject: 2\r\n\r\ntwo\r\n");

    // DELE, then drop the connection without QUIT: nothing is expunged.
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 1").starts_with("-ERR"), "already deleted");
    drop(c);
    // Give the server time to notice the disconnect, then check.
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert!(c.cmd("STAT").starts_with("+OK 2 "));
    assert_eq!(mb.message_files(), vec![first.clone(), second.clone()]);

    // DELE + QUIT expunges: the file is gone once +OK arrives.
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(mb.message_files(), vec![second.clone()]);
    assert!(!first.exists());

    // RSET undoes deletions.
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("RSET").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(mb.count(), 1);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let (d, mb) = new_user("pipe");
    mb.add_message(b"Subject: p\r\n\r\nbody\r\n.\r\n");
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    let cmds = format!(
        "USER {}\r\nPASS {}\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nNOOP\r\nQUIT\r\n",
        mb.user(),
        mb.password()
    );
    c.send(cmds.as_bytes());
    assert!(c.line_str().starts_with("+OK")); // USER
    assert!(c.line_str().starts_with("+OK Logged in")); // PASS
    assert_eq!(c.line_str(), "+OK 1 23\r\n"); // STAT
    assert!(c.line_str().starts_with("+OK")); // LIST
    assert_eq!(c.multiline_raw(), vec![b"1 23\r\n".to_vec()]);
    assert!(c.line_str().starts_with("+OK")); // UIDL
    assert_eq!(c.multiline_raw().len(), 1);
    assert!(c.line_str().starts_with("+OK")); // RETR
    assert_eq!(
        unstuff(&c.multiline_raw()),
        b"Subject: p\r\n\r\nbody\r\n.\r\n"
    );
    assert!(c.line_str().starts_with("+OK")); // NOOP
    assert!(c.line_str().starts_with("+OK")); // QUIT
    assert_eq!(c.line(), b"", "server closes after QUIT");
}

#[test]
fn wrong_password_gets_auth_response_code() {
    let (d, mb) = new_user("badpw");
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    assert!(c.cmd(&format!("USER {}", mb.user())).starts_with("+OK"));
    let started = Instant::now();
    let r = c.cmd("PASS wrong");
    assert_eq!(r, "-ERR [AUTH] Authentication failed.\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Unknown users get the same answer.
    assert!(c.cmd("USER nobody-here").starts_with("+OK"));
    assert_eq!(c.cmd("PASS x"), "-ERR [AUTH] Authentication failed.\r\n");
    // Unknown command and bad message number.
    c.login(&mb);
    assert!(c.cmd("RETR 9").starts_with("-ERR"));
    assert!(c.cmd("XYZZY").starts_with("-ERR"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn apop_and_auth_plain_and_cram_md5_work() {
    use hmac::{Hmac, Mac};
    use md5::{Digest, Md5};

    let (d, mb) = new_user("mech");
    // APOP: md5(timestamp + password) in lower-case hex.
    let mut c = Raw::connect(d.plain_addr());
    let greeting = c.line_str();
    let ts = &greeting[greeting.find('<').expect("<")..=greeting.rfind('>').expect(">")];
    let digest = Md5::digest(format!("{ts}{}", mb.password()).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let r = c.cmd(&format!("APOP {} {hex}", mb.user()));
    assert!(r.starts_with("+OK"), "APOP: {r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // AUTH PLAIN with initial response.
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    let creds = format!("\0{}\0{}", mb.user(), mb.password());
    let r = c.cmd(&format!("AUTH PLAIN {}", b64(creds.as_bytes())));
    assert!(r.starts_with("+OK"), "AUTH PLAIN: {r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // AUTH CRAM-MD5.
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    let challenge = c.cmd("AUTH CRAM-MD5");
    let challenge = challenge.strip_prefix("+ ").expect("challenge").trim_end();
    let challenge = unb64(challenge);
    let mut mac = Hmac::<Md5>::new_from_slice(mb.password().as_bytes()).expect("hmac key");
    mac.update(&challenge);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = c.cmd(&b64(format!("{} {hex}", mb.user()).as_bytes()));
    assert!(r.starts_with("+OK"), "CRAM-MD5: {r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c).expect("base64 char") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

fn tls_connect(
    d: &Dovecot,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(d.rustls_client_config(), name).expect("client");
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn implicit_tls_port_works_and_does_not_offer_stls() {
    let (d, mb) = new_user("pop3s");
    mb.add_message(TRICKY);
    let tcp = TcpStream::connect(d.tls_addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut c = Raw {
        r: BufReader::new(tls_connect(d, tcp)),
    };
    assert!(c.line_str().starts_with("+OK"));
    assert_eq!(c.cmd("CAPA"), "+OK\r\n");
    let capa = c.multiline_raw();
    assert!(!capa.iter().any(|l| l == b"STLS\r\n"), "{capa:?}");
    c.login(&mb);
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(unstuff(&c.multiline_raw()), TRICKY);
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn stls_upgrade_works() {
    let (d, mb) = new_user("stls");
    let mut tcp = TcpStream::connect(d.plain_addr()).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Byte-wise reads so no TLS bytes are buffered in plain text.
    let read_line = |s: &mut TcpStream| {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            assert_eq!(s.read(&mut b).expect("read"), 1);
            line.push(b[0]);
        }
        String::from_utf8(line).expect("utf-8")
    };
    assert!(read_line(&mut tcp).starts_with("+OK"));
    tcp.write_all(b"STLS\r\n").expect("write");
    let r = read_line(&mut tcp);
    assert!(r.starts_with("+OK"), "{r}");
    let mut c = Raw {
        r: BufReader::new(tls_connect(d, tcp)),
    };
    assert_eq!(c.cmd("CAPA"), "+OK\r\n");
    let capa = c.multiline_raw();
    assert!(!capa.iter().any(|l| l == b"STLS\r\n"), "{capa:?}");
    assert!(c.cmd("STLS").starts_with("-ERR"));
    c.login(&mb);
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn lock_session_option_gives_in_use() {
    let d = Dovecot::start_with(DovecotOptions { lock_session: true }).expect("start");
    let mb = d.add_user(&unique_user("lock"), "pw");
    let mut first = Raw::connect(d.plain_addr());
    first.line();
    first.login(&mb);
    let mut second = Raw::connect(d.plain_addr());
    // Dovecot waits up to 10 s (hard-coded dotlock timeout) for the session
    // lock before answering [IN-USE].
    second
        .r
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    second.line();
    assert!(second
        .cmd(&format!("USER {}", mb.user()))
        .starts_with("+OK"));
    let started = Instant::now();
    let r = second.cmd(&format!("PASS {}", mb.password()));
    let waited = started.elapsed();
    eprintln!("[IN-USE] answer after {waited:?}: {r:?}");
    assert_eq!(
        r,
        "-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
    );
    assert!(first.cmd("QUIT").starts_with("+OK"));
    drop(second);
    // After the first session ended the maildrop can be opened again.
    let mut third = Raw::connect(d.plain_addr());
    third.line();
    third.login(&mb);
    assert!(third.cmd("QUIT").starts_with("+OK"));

    // Drop stops the server and removes its directory.
    let dir = d.dir().to_path_buf();
    let addr = d.plain_addr();
    drop(d);
    eventually("directory removal", || !dir.exists());
    assert!(TcpStream::connect(addr).is_err(), "server still listening");
}

#[test]
fn users_added_in_quick_succession_can_all_log_in() {
    let d = Dovecot::shared();
    let users: Vec<Mailbox> = (0..5)
        .map(|_| d.add_user(&unique_user("burst"), "pw"))
        .collect();
    for mb in &users {
        let mut c = Raw::connect(d.plain_addr());
        c.line();
        c.login(mb);
        assert!(c.cmd("QUIT").starts_with("+OK"));
    }
}

#[test]
fn ensure_installed_is_a_no_op_when_installed() {
    test_support::dovecot::ensure_installed().expect("dovecot-pop3d installed");
}

/// Documents (and pins) what Dovecot does to messages that are not stored
/// as CRLF text ending in CRLF: they are not byte-exact on the wire.
#[test]
fn non_crlf_messages_are_normalized_on_output() {
    let (d, mb) = new_user("norm");
    mb.add_message(b"Subject: no final newline\r\n\r\nlast");
    mb.add_message(b"Subject: bare LF\n\nline\n.dot\n");
    let mut c = Raw::connect(d.plain_addr());
    c.line();
    c.login(&mb);
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(
        unstuff(&c.multiline_raw()),
        b"Subject: no final newline\r\n\r\nlast\r\n",
        "a CRLF is appended"
    );
    // LIST reports the size with LF counted as CRLF.
    assert_eq!(c.cmd("LIST 2"), "+OK 2 32\r\n"); // 28 bytes + 4 CRs
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(
        unstuff(&c.multiline_raw()),
        b"Subject: bare LF\r\n\r\nline\r\n.dot\r\n",
        "bare LF becomes CRLF"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn too_many_bad_commands_disconnect() {
    let (d, mb) = new_user("bad");
    // Before login (pop3-login) and after login (pop3).
    for logged_in in [false, true] {
        let mut c = Raw::connect(d.plain_addr());
        c.line();
        if logged_in {
            c.login(&mb);
        }
        let mut errs = 0;
        for _ in 0..30 {
            if c.r.get_mut().write_all(b"XYZZY\r\n").is_err() {
                break;
            }
            let mut l = Vec::new();
            match c.r.read_until(b'\n', &mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) if l.starts_with(b"-ERR") => errs += 1,
                // Dovecot's farewell line before closing.
                Ok(_) => eprintln!("final line: {:?}", String::from_utf8_lossy(&l)),
            }
        }
        eprintln!("logged_in={logged_in}: disconnected after {errs} -ERR replies");
        if logged_in {
            assert!((10..30).contains(&errs), "{errs}");
        } else {
            assert!((1..10).contains(&errs), "{errs}");
        }
    }
}
