//! The C example, `examples/fetch.c`, built with the system C compiler against
//! the static library and run as a process: against the real Dovecot in all
//! three modes (every message compared byte for byte with its Maildir file),
//! under AddressSanitizer, and against scripted servers for the faults.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use test_support::{rustls_server_config, Dovecot, Mailbox, ScriptedServer, Step, TestPki};

/// The directory holding `libpop3.a`: cargo builds every crate type of the
/// library into `deps/`, next to the test binary, before running the tests
/// (only `cargo build` copies it one level up).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// Compiles the example once per test binary (with ASan when asked).
fn fetch_binary(asan: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static ASAN: OnceLock<PathBuf> = OnceLock::new();
    let cell = if asan { &ASAN } else { &PLAIN };
    cell.get_or_init(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lib = target_dir().join("libpop3.a");
        assert!(lib.exists(), "{} was not built", lib.display());
        let out = target_dir().join(if asan { "fetch-c-asan" } else { "fetch-c" });
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let mut cmd = Command::new(&cc);
        cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
            .arg("-I")
            .arg(crate_dir.join("include"));
        if asan {
            cmd.args(["-O1", "-fsanitize=address", "-fno-omit-frame-pointer"]);
        } else {
            cmd.arg("-O2");
        }
        cmd.arg(crate_dir.join("examples/fetch.c"))
            .arg(&lib)
            .args(["-lssl", "-lcrypto", "-lpthread", "-ldl", "-lm", "-o"])
            .arg(&out);
        let result = cmd.output().expect("run the C compiler");
        assert!(
            result.status.success(),
            "{cc} failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    })
}

struct Run {
    output: Output,
    outdir: tempfile::TempDir,
}

impl Run {
    fn ok(&self) -> bool {
        self.output.status.success()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Every file left in OUTDIR, by name.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.outdir.path())
            .expect("read OUTDIR")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

struct Fetch<'a> {
    asan: bool,
    port: u16,
    mode: &'a str,
    user: &'a str,
    password: &'a str,
    ca_pem: &'a str,
    allow_plaintext: bool,
}

impl Fetch<'_> {
    fn run(&self) -> Run {
        let outdir = tempfile::tempdir().expect("OUTDIR");
        // The CA file lives outside OUTDIR (which must hold messages only),
        // in a directory of its own, since runs go on in parallel.
        let ca_dir = tempfile::tempdir().expect("CA directory");
        let ca = ca_dir.path().join("ca.pem");
        fs::write(&ca, self.ca_pem).expect("write CA file");
        let mut cmd = Command::new(fetch_binary(self.asan));
        cmd.arg("127.0.0.1")
            .arg(self.port.to_string())
            .arg(self.mode)
            .arg(self.user)
            .arg(&ca)
            .arg(outdir.path())
            .env("POP3_PASSWORD", self.password)
            .env_remove("POP3_ALLOW_PLAINTEXT")
            .env_remove("POP3_TRACE");
        if self.allow_plaintext {
            cmd.env("POP3_ALLOW_PLAINTEXT", "1");
        }
        if self.asan {
            cmd.env(
                "ASAN_OPTIONS",
                "detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1",
            );
        }
        let output = cmd.output().expect("run fetch");
        Run { output, outdir }
    }
}

/// Messages that exercise the framing: dot-stuffing, a lone dot line, a
/// dot-space line, long lines, an empty body and a large message (Dovecot
/// turns a bare LF into CRLF, so the messages use CRLF only).
fn sample_messages() -> Vec<Vec<u8>> {
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for i in 0..40_000 {
        big.extend_from_slice(format!("line {i:06} {}\r\n", "x".repeat(i % 97)).as_bytes());
        if i % 1000 == 0 {
            big.extend_from_slice(b".starts with a dot\r\n..two dots\r\n.\r\n");
        }
    }
    vec![
        b"Subject: one\r\n\r\nHello\r\n".to_vec(),
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n. \r\nend .\r\n".to_vec(),
        b"Subject: empty body\r\n\r\n".to_vec(),
        big,
        format!("Subject: long\r\n\r\n{}\r\n", "y".repeat(100_000)).into_bytes(),
    ]
}

fn mailbox_with_samples(dovecot: &Dovecot) -> Mailbox {
    let user = test_support::unique_user("ffi");
    let mailbox = dovecot.add_user(&user, "ffi-secret");
    for m in sample_messages() {
        mailbox.add_message(&m);
    }
    mailbox
}

fn assert_all_retrieved(run: &Run, mailbox: &Mailbox, what: &str) {
    assert!(run.ok(), "{what}: fetch failed: {}", run.stderr());
    let files = mailbox.message_files();
    assert!(!files.is_empty());
    for (i, path) in files.iter().enumerate() {
        let want = fs::read(path).expect("read Maildir file");
        let got = fs::read(run.outdir.path().join(format!("{}.eml", i + 1)))
            .unwrap_or_else(|e| panic!("{what}: message {} missing: {e}", i + 1));
        assert!(got == want, "{what}: message {} differs", i + 1);
    }
    assert_eq!(run.files().len(), files.len(), "{what}: {:?}", run.files());
}

fn dovecot_fetch<'a>(dovecot: &'a Dovecot, mailbox: &'a Mailbox, mode: &'a str) -> Fetch<'a> {
    let port = match mode {
        "implicit" => dovecot.tls_addr().port(),
        _ => dovecot.plain_addr().port(),
    };
    Fetch {
        asan: false,
        port,
        mode,
        user: mailbox.user(),
        password: mailbox.password(),
        ca_pem: dovecot.ca_pem(),
        allow_plaintext: mode == "none",
    }
}

#[test]
fn retrieves_every_message_byte_exact_in_all_three_modes() {
    let dovecot = Dovecot::shared();
    let mailbox = mailbox_with_samples(dovecot);
    for mode in ["none", "starttls", "implicit"] {
        let run = dovecot_fetch(dovecot, &mailbox, mode).run();
        assert_all_retrieved(&run, &mailbox, mode);
    }
}

#[test]
fn runs_clean_under_address_sanitizer() {
    let dovecot = Dovecot::shared();
    let mailbox = mailbox_with_samples(dovecot);
    for mode in ["none", "starttls", "implicit"] {
        let run = Fetch {
            asan: true,
            ..dovecot_fetch(dovecot, &mailbox, mode)
        }
        .run();
        let stderr = run.stderr();
        assert!(
            !stderr.contains("Sanitizer"),
            "{mode}: sanitizer report:\n{stderr}"
        );
        assert_all_retrieved(&run, &mailbox, mode);
    }
    // A failing run frees everything too: a wrong password.
    let run = Fetch {
        asan: true,
        password: "wrong",
        ..dovecot_fetch(dovecot, &mailbox, "implicit")
    }
    .run();
    assert!(!run.ok());
    assert!(!run.stderr().contains("Sanitizer"), "{}", run.stderr());
}

#[test]
fn wrong_password_is_one_line_and_no_files() {
    let dovecot = Dovecot::shared();
    let mailbox = mailbox_with_samples(dovecot);
    let run = Fetch {
        password: "not the password",
        ..dovecot_fetch(dovecot, &mailbox, "starttls")
    }
    .run();
    assert!(!run.ok());
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("fetch: login refused"), "{stderr}");
    assert!(run.files().is_empty(), "{:?}", run.files());
}

#[test]
fn plain_mode_sends_no_credentials_unless_allowed() {
    let server = ScriptedServer::start(vec![Step::send_line("+OK ready"), Step::ExpectClose]);
    let run = Fetch {
        asan: false,
        port: server.addr().port(),
        mode: "none",
        user: "alice",
        password: "secret",
        ca_pem: &TestPki::shared().ca_pem,
        allow_plaintext: false,
    }
    .run();
    let (received, _) = server.join_all();
    assert!(!run.ok());
    assert!(
        run.stderr().contains("POP3_ALLOW_PLAINTEXT"),
        "{}",
        run.stderr()
    );
    assert!(
        received.is_empty(),
        "sent {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// What a scripted fault run must show: failure, one line on stderr, no
/// file for the broken message, no credentials on the wire before TLS.
fn scripted_fetch(mode: &str, steps: Vec<Step>) -> (Run, Vec<u8>) {
    let (run, received, _) = scripted_fetch_result(mode, steps);
    (run, received)
}

/// `scripted_fetch`, also giving whether the client followed the script.
/// Runs under AddressSanitizer, so that every error path is also checked
/// for memory errors and leaks.
fn scripted_fetch_result(mode: &str, steps: Vec<Step>) -> (Run, Vec<u8>, Result<(), String>) {
    let server = ScriptedServer::start(steps);
    let run = Fetch {
        asan: true,
        port: server.addr().port(),
        mode,
        user: "alice",
        password: "secret",
        ca_pem: &TestPki::shared().ca_pem,
        allow_plaintext: false,
    }
    .run();
    let (received, script) = server.join_all();
    assert!(!run.ok(), "fetch succeeded against a broken server");
    assert!(!run.stderr().contains("Sanitizer"), "{}", run.stderr());
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    (run, received, script)
}

fn assert_no_credentials(received: &[u8]) {
    let text = String::from_utf8_lossy(received);
    assert!(
        !text.contains("USER") && !text.contains("PASS") && !text.contains("AUTH"),
        "credentials sent: {text:?}"
    );
}

#[test]
fn wrong_certificate_is_refused_before_anything_is_sent() {
    let pki = TestPki::shared();
    for cert in [
        &pki.wrong_host,
        &pki.unknown_ca,
        &pki.expired,
        &pki.self_signed,
    ] {
        let (run, received) = scripted_fetch(
            "implicit",
            vec![Step::StartTls(rustls_server_config(cert)), Step::Stall],
        );
        assert!(
            run.stderr().contains("TLS handshake failed"),
            "{}",
            run.stderr()
        );
        assert!(received.is_empty());
        assert!(run.files().is_empty());
    }
}

/// CAPA reply listing STLS (and USER), as a server before TLS sends it.
const CAPA_STLS: &str = "+OK\r\nUSER\r\nSTLS\r\n.";

#[test]
fn stls_injection_is_fatal_and_sends_no_credentials() {
    let (run, received, script) = scripted_fetch_result(
        "starttls",
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line(CAPA_STLS),
            Step::expect_line("STLS"),
            // The injected reply arrives in the same segment as the +OK.
            Step::Send(b"+OK begin TLS\r\n+OK logged in\r\n".to_vec()),
            Step::Stall,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    assert!(run.stderr().contains("injection"), "{}", run.stderr());
    assert_no_credentials(&received);
    assert!(run.files().is_empty());
}

#[test]
fn refused_stls_ends_without_credentials() {
    let (run, received, script) = scripted_fetch_result(
        "starttls",
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line(CAPA_STLS),
            Step::expect_line("STLS"),
            Step::send_line("-ERR [SYS/TEMP] TLS is down"),
            Step::ExpectClose,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    assert!(run.stderr().contains("STLS refused"), "{}", run.stderr());
    assert_no_credentials(&received);
}

#[test]
fn stls_not_offered_ends_without_credentials() {
    let (run, received, script) = scripted_fetch_result(
        "starttls",
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::ExpectClose,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    assert!(run.stderr().contains("STLS"), "{}", run.stderr());
    assert_no_credentials(&received);
}

#[test]
fn wrong_certificate_after_stls_sends_no_credentials() {
    let pki = TestPki::shared();
    let (run, received) = scripted_fetch(
        "starttls",
        vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line(CAPA_STLS),
            Step::expect_line("STLS"),
            Step::send_line("+OK begin TLS"),
            Step::StartTls(rustls_server_config(&pki.wrong_host)),
            Step::Stall,
        ],
    );
    assert!(
        run.stderr().contains("TLS handshake failed"),
        "{}",
        run.stderr()
    );
    assert_no_credentials(&received);
}

#[test]
fn disconnect_in_the_middle_of_a_message_leaves_no_file_for_it() {
    let pki = TestPki::shared();
    let (run, received, script) = scripted_fetch_result(
        "implicit",
        vec![
            Step::StartTls(rustls_server_config(&pki.server)),
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::expect_line("USER alice"),
            Step::send_line("+OK"),
            Step::expect_line("PASS secret"),
            Step::send_line("+OK logged in"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::expect_line("STAT"),
            Step::send_line("+OK 2 60"),
            Step::expect_line("RETR 1"),
            Step::send_line("+OK\r\nSubject: one\r\n\r\nwhole\r\n."),
            Step::expect_line("RETR 2"),
            Step::Send(b"+OK\r\nSubject: two\r\n\r\nhalf of it".to_vec()),
            Step::Close,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    assert!(run.stderr().contains("session failed"), "{}", run.stderr());
    assert_eq!(run.files(), ["1.eml"]);
    assert_eq!(
        fs::read(run.outdir.path().join("1.eml")).expect("1.eml"),
        b"Subject: one\r\n\r\nwhole\r\n"
    );
    assert!(String::from_utf8_lossy(&received).contains("RETR 2"));
}

#[test]
fn trace_shows_the_wire_with_the_password_redacted() {
    let dovecot = Dovecot::shared();
    let mailbox = mailbox_with_samples(dovecot);
    let fetch = dovecot_fetch(dovecot, &mailbox, "starttls");
    let outdir = tempfile::tempdir().expect("OUTDIR");
    let ca = outdir.path().join("ca.pem");
    fs::write(&ca, dovecot.ca_pem()).expect("CA file");
    let out = tempfile::tempdir().expect("OUTDIR");
    let output = Command::new(fetch_binary(false))
        .args([
            "127.0.0.1",
            &fetch.port.to_string(),
            "starttls",
            mailbox.user(),
        ])
        .arg(&ca)
        .arg(out.path())
        .env("POP3_PASSWORD", mailbox.password())
        .env("POP3_TRACE", "1")
        .output()
        .expect("run fetch");
    let trace = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{trace}");
    assert!(trace.contains("C: STLS"), "{trace}");
    assert!(trace.contains("C: RETR 5"), "{trace}");
    assert!(trace.contains("<redacted>"), "{trace}");
    assert!(!trace.contains(mailbox.password()), "{trace}");
    // Nothing but CAPA and STLS before TLS.
    let before_tls: Vec<&str> = trace
        .lines()
        .take_while(|l| !l.starts_with("S: +OK") || !l.contains("TLS"))
        .filter(|l| l.starts_with("C: "))
        .collect();
    assert_eq!(before_tls, ["C: CAPA", "C: STLS"], "{trace}");
}

#[test]
fn login_is_bound_to_the_tls_channel_when_the_server_offers_plus() {
    use base64::Engine as _;
    let pki = TestPki::shared();
    let (run, received, script) = scripted_fetch_result(
        "implicit",
        vec![
            Step::StartTls(rustls_server_config(&pki.server)),
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nSASL SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n."),
            Step::expect_prefix("AUTH SCRAM-SHA-256-PLUS"),
            Step::send_line("-ERR [AUTH] not today"),
            // The core retries once unbound (servers that offer -PLUS and
            // cannot bind refuse it like this), then gives up.
            Step::expect_prefix("AUTH SCRAM-SHA-256 biws"),
            Step::send_line("-ERR [AUTH] not today either"),
            Step::ExpectClose,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    assert!(run.stderr().contains("login refused"), "{}", run.stderr());
    let received = String::from_utf8_lossy(&received).into_owned();
    let auth = received
        .lines()
        .find(|l| l.starts_with("AUTH "))
        .expect("an AUTH line");
    // The client-first message names the binding type (RFC 5802 GS2 header).
    let initial = auth.split(' ').nth(2).expect("an initial response");
    let first = base64::engine::general_purpose::STANDARD
        .decode(initial)
        .expect("base64");
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("p=tls-exporter,,n=alice,r="), "{first}");
}

/// The library has no clock, so `fetch.c` keeps the session's deadline in
/// its loop: a server that trickles its `STAT` reply a byte every 200 ms
/// never leaves `poll` waiting for the idle limit, and `POP3_SESSION_TIMEOUT=2`
/// ends the run after about 2 s with one line naming the overall limit.
#[test]
fn a_trickling_server_meets_the_session_deadline() {
    let mut steps = vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::send_line("+OK\r\nUSER\r\n."),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS secret"),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::send_line("+OK\r\nUSER\r\n."),
        Step::expect_line("STAT"),
        Step::Send(b"+OK ".to_vec()),
    ];
    for _ in 0..50 {
        steps.push(Step::Send(b"1".to_vec()));
        steps.push(Step::Sleep(Duration::from_millis(200)));
    }
    let server = ScriptedServer::start(steps);
    let outdir = tempfile::tempdir().expect("OUTDIR");
    // Built (once per test binary) before the clock starts.
    let binary = fetch_binary(true);
    let started = Instant::now();
    let output = Command::new(binary)
        .arg("127.0.0.1")
        .arg(server.addr().port().to_string())
        .args(["none", "alice", "/nonexistent-ca.pem"])
        .arg(outdir.path())
        .env("POP3_PASSWORD", "secret")
        .env("POP3_ALLOW_PLAINTEXT", "1")
        .env("POP3_SESSION_TIMEOUT", "2")
        .env_remove("POP3_TRACE")
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1",
        )
        .output()
        .expect("run fetch");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("overall time limit"), "{stderr}");
    assert!(!stderr.contains("Sanitizer"), "{stderr}");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    drop(server.join_all());
}

/// A server that claims four billion messages cannot make `fetch.c` allocate
/// for them (the old code asked for ~48 GiB), and what it says reaches the
/// terminal without escape sequences: one plain line on stderr.
#[test]
fn a_huge_stat_count_is_refused_and_server_text_is_printed_safely() {
    let (run, received, script) = scripted_fetch_result(
        "implicit",
        vec![
            Step::StartTls(rustls_server_config(&TestPki::shared().server)),
            Step::send_line("+OK \x1b]0;owned\x07 ready"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::expect_line("USER alice"),
            Step::send_line("+OK"),
            Step::expect_line("PASS secret"),
            Step::send_line("+OK logged in"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::expect_line("STAT"),
            Step::send_line("+OK 4000000000 1"),
            Step::ExpectClose,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    let stderr = run.stderr();
    assert!(stderr.contains("4000000000 messages"), "{stderr}");
    assert!(!String::from_utf8_lossy(&received).contains("RETR"));
    assert!(run.files().is_empty());

    // A refusal full of terminal controls prints as one safe line.
    let (run, _, script) = scripted_fetch_result(
        "implicit",
        vec![
            Step::StartTls(rustls_server_config(&TestPki::shared().server)),
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("+OK\r\nUSER\r\n."),
            Step::expect_line("USER alice"),
            Step::send_line("+OK"),
            Step::expect_line("PASS secret"),
            Step::send_line(
                "-ERR [AUTH\x1b[2J] no \x1b]0;owned\x07\x1b[31mred\u{9b}1m \u{202e}desrever\u{202c}",
            ),
            Step::ExpectClose,
        ],
    );
    assert_eq!(script, Ok(()), "the client left the script");
    let stderr = run.stderr();
    assert!(stderr.starts_with("fetch: login refused"), "{stderr}");
    assert!(
        !stderr
            .trim_end_matches('\n')
            .chars()
            .any(|c| c.is_control() || pop3_proto::Text::is_unsafe_char(c)),
        "{stderr:?}"
    );
}

/// `examples/uv_fetch.c`, built once per test binary with AddressSanitizer
/// against the static library, libuv and OpenSSL.
fn uv_fetch_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lib = target_dir().join("libpop3.a");
        assert!(lib.exists(), "{} was not built", lib.display());
        let out = target_dir().join("uv-fetch-asan");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let result = Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
            .args(["-fsanitize=address", "-fno-omit-frame-pointer"])
            .arg("-I")
            .arg(crate_dir.join("include"))
            .arg(crate_dir.join("examples/uv_fetch.c"))
            .arg(&lib)
            .args([
                "-luv",
                "-lssl",
                "-lcrypto",
                "-lpthread",
                "-ldl",
                "-lm",
                "-o",
            ])
            .arg(&out)
            .output()
            .expect("run the C compiler");
        assert!(
            result.status.success(),
            "{cc} failed (libuv1-dev installed? scripts/install-test-deps.sh):\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    })
}

/// Runs `uv_fetch` with one session per `(mode, port, user)`; OUTDIR holds
/// one directory per session.
fn run_uv_fetch(ca_pem: &str, password: &str, sessions: &[(&str, u16, &str)]) -> Run {
    let outdir = tempfile::tempdir().expect("OUTDIR");
    for i in 1..=sessions.len() {
        fs::create_dir(outdir.path().join(i.to_string())).expect("session directory");
    }
    let ca_dir = tempfile::tempdir().expect("CA directory");
    let ca = ca_dir.path().join("ca.pem");
    fs::write(&ca, ca_pem).expect("write CA file");
    let output = Command::new(uv_fetch_binary())
        .arg("127.0.0.1")
        .arg(&ca)
        .arg(outdir.path())
        .args(
            sessions
                .iter()
                .map(|(mode, port, user)| format!("{mode}:{port}:{user}")),
        )
        .env("POP3_PASSWORD", password)
        .env("POP3_ALLOW_PLAINTEXT", "1")
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1",
        )
        .output()
        .expect("run uv_fetch");
    Run { output, outdir }
}

/// The libuv example: three sessions on one loop — plain, STLS and implicit
/// TLS over OpenSSL memory BIOs — against the real Dovecot, under
/// AddressSanitizer; output goes to `uv_write` straight from the client's
/// lent bytes (the completion contract). Every message byte for byte.
#[test]
fn libuv_example_runs_three_sessions_on_one_loop_clean_under_asan() {
    let dovecot = Dovecot::shared();
    let mailboxes: Vec<Mailbox> = (0..3).map(|_| mailbox_with_samples(dovecot)).collect();
    let plain = dovecot.plain_addr().port();
    let tls = dovecot.tls_addr().port();
    let run = run_uv_fetch(
        dovecot.ca_pem(),
        mailboxes[0].password(),
        &[
            ("none", plain, mailboxes[0].user()),
            ("starttls", plain, mailboxes[1].user()),
            ("implicit", tls, mailboxes[2].user()),
        ],
    );
    let stderr = run.stderr();
    assert!(run.ok(), "uv_fetch failed: {stderr}");
    assert!(!stderr.contains("Sanitizer"), "{stderr}");
    for (i, mailbox) in mailboxes.iter().enumerate() {
        let files = mailbox.message_files();
        assert!(!files.is_empty());
        for (n, path) in files.iter().enumerate() {
            let want = fs::read(path).expect("read Maildir file");
            let got = fs::read(
                run.outdir
                    .path()
                    .join((i + 1).to_string())
                    .join(format!("{}.eml", n + 1)),
            )
            .unwrap_or_else(|e| panic!("session {}: message {} missing: {e}", i + 1, n + 1));
            assert!(got == want, "session {}: message {} differs", i + 1, n + 1);
        }
    }
}

/// In the libuv example, a certificate refused after STLS goes through
/// `pop3_client_tls_failed`: no credentials are sent, the session ends
/// (with one `POP3_EVENT_CLOSED`), and the loop finishes clean under ASan.
#[test]
fn libuv_example_ends_a_session_whose_stls_handshake_fails() {
    let pki = TestPki::shared();
    let server = ScriptedServer::start(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::send_line(CAPA_STLS),
        Step::expect_line("STLS"),
        Step::send_line("+OK begin TLS"),
        Step::StartTls(rustls_server_config(&pki.wrong_host)),
        Step::Stall,
    ]);
    let run = run_uv_fetch(
        &pki.ca_pem,
        "secret",
        &[("starttls", server.addr().port(), "alice")],
    );
    let (received, _) = server.join_all();
    let stderr = run.stderr();
    assert!(!run.ok());
    assert!(!stderr.contains("Sanitizer"), "{stderr}");
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_no_credentials(&received);
}
