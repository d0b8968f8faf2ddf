//! Hostile servers through the `pop3` command, on all three runtimes.
//!
//! The transport-level hostile suite (`test-support/src/hostile.rs`) proves
//! that the library returns the right typed error. These cases prove what a
//! user of the command gets for the same attacks: the exact exit code, one
//! clean line on stderr (`pop3: ...`, no control characters, so a server
//! cannot drive the terminal), no credential on the wire when none may go
//! out, nothing in the Maildir when a fetch fails, and a process that ends in
//! bounded time (`--timeout 2`; the process is killed and the case fails
//! after 20 s).
//!
//! `SECURITY.md` ("Through the pop3 command") maps every case to its test.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use test_support::hostile::base64;
use test_support::pki::{rustls_server_config, CertKey, TestPki};
use test_support::scripted::{show, ScriptConfig, ScriptedServer, Step};

const RUNTIMES: [&str; 3] = ["blocking", "tokio", "smol"];
const PASSWORD_VAR: &str = "POP3_HOSTILE_PASSWORD";
const USER: &str = "alice";
const PASSWORD: &str = "Hunter2-cli-hostile-pw";
const GREETING: &str = "+OK hostile server ready";
/// The client's `--timeout`.
const TIMEOUT: Duration = Duration::from_secs(2);
/// After this the `pop3` process is killed and the case fails.
const DEADLINE: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

const CAPA_WITH_STLS: &[u8] = b"+OK\r\nTOP\r\nUSER\r\nSTLS\r\nSASL PLAIN LOGIN\r\nUIDL\r\n.\r\n";
/// Terminal escapes (OSC title, clear screen, colour), BEL, NUL, invalid
/// UTF-8, a C1 CSI, DEL and a lone CR.
const NASTY: &[u8] = b"\x1b]0;owned\x07\x1b[2J\x1b[31mred\x00nul\xff\xfe\xc2\x9bcsi\x7fdel\rcr";

// ---------------------------------------------------------------------------
// Running the command
// ---------------------------------------------------------------------------

/// Scripted servers give up after 5 s of silence and stop stalling after 10 s.
fn config() -> ScriptConfig {
    let mut config = ScriptConfig::with_timeout(Duration::from_secs(5));
    config.stall_limit = Duration::from_secs(10);
    config
}

fn script(steps: Vec<Step>) -> ScriptedServer {
    ScriptedServer::start_with(steps, config())
}

/// The test CA, written once to a file for `--ca-file`.
fn ca_file() -> &'static Path {
    static CA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        fs::write(&path, &TestPki::shared().ca_pem).expect("write CA");
        (dir, path)
    });
    path
}

/// `pop3` on `runtime` with `--timeout 2` and the password in the
/// environment; nothing inherited that could change its behaviour.
fn pop3(runtime: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env(PASSWORD_VAR, PASSWORD)
        .args(["--runtime", runtime, "--timeout", "2"])
        .args(["--password-env", PASSWORD_VAR]);
    command
}

/// `pop3` to `server` without TLS, as `alice`, plaintext login allowed (for
/// cases about something else than the plaintext rule).
fn plain(server: &ScriptedServer, runtime: &str) -> Command {
    let mut command = pop3(runtime);
    command
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.addr().port().to_string())
        .args(["--tls", "none", "--allow-plaintext-auth", "--user", USER]);
    command
}

/// [`plain`] with `--auth user`: USER/PASS and no CAPA before the login.
fn plain_user(server: &ScriptedServer, runtime: &str) -> Command {
    let mut command = plain(server, runtime);
    command.args(["--auth", "user"]);
    command
}

/// `pop3 pop3://alice@127.0.0.1:PORT` (STLS), trusting the test CA.
fn starttls(port: u16, runtime: &str) -> Command {
    let mut command = pop3(runtime);
    command
        .arg("--ca-file")
        .arg(ca_file())
        .args(["--auth", "user"])
        .arg(format!("pop3://{USER}@127.0.0.1:{port}"));
    command
}

/// `pop3 pop3s://alice@127.0.0.1:PORT` (implicit TLS), trusting the test CA.
fn implicit_tls(port: u16, runtime: &str) -> Command {
    let mut command = pop3(runtime);
    command
        .arg("--ca-file")
        .arg(ca_file())
        .args(["--auth", "user"])
        .arg(format!("pop3s://{USER}@127.0.0.1:{port}"));
    command
}

/// What one run of `pop3` did.
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    took: Duration,
}

/// Runs `command` (stdin closed, stdout and stderr captured); kills it and
/// fails if it is still running after [`DEADLINE`].
#[track_caller]
fn run(command: &mut Command, what: &str) -> Outcome {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn pop3");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pop3") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: pop3 still running after {DEADLINE:?}: killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let outcome = Outcome {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        took,
    };
    // Shown with --nocapture: the table in SECURITY.md comes from this.
    eprintln!(
        "{what}: exit {:?} after {took:.2?}: {}",
        outcome.code,
        show(&outcome.stderr)
    );
    outcome
}

/// The exit code is `code`, and stderr is exactly one line: `pop3: `, then
/// text without control characters that contains `needle`. Returns the line.
#[track_caller]
fn assert_fails(out: &Outcome, code: i32, needle: &str, what: &str) -> String {
    let err = String::from_utf8(out.stderr.clone())
        .unwrap_or_else(|_| panic!("{what}: stderr is not UTF-8: {}", show(&out.stderr)));
    assert_eq!(
        out.code,
        Some(code),
        "{what}: exit code (stderr {err:?}, stdout {})",
        show(&out.stdout)
    );
    let line = err
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{what}: stderr is not one line: {err:?}"));
    assert!(
        line.starts_with("pop3: "),
        "{what}: stderr does not start with `pop3: `: {err:?}"
    );
    assert!(
        !line.chars().any(char::is_control),
        "{what}: control characters (or more than one line) on stderr: {err:?}"
    );
    assert!(line.contains(needle), "{what}: {needle:?} not in {err:?}");
    line.to_owned()
}

/// Exit code 0 and nothing on stderr.
#[track_caller]
fn assert_success(out: &Outcome, what: &str) {
    assert_eq!(out.code, Some(0), "{what}: stderr {}", show(&out.stderr));
    assert!(out.stderr.is_empty(), "{what}: {}", show(&out.stderr));
}

/// No password (plain or base64, alone or as the AUTH PLAIN message), no
/// base64 user name (AUTH LOGIN) and no `USER`, `PASS`, `AUTH` or `APOP`
/// line in `received`.
#[track_caller]
fn assert_no_credentials(received: &[u8], what: &str) {
    assert_password_not_sent(received, what);
    let text = String::from_utf8_lossy(received);
    assert!(
        !text.contains(base64(USER.as_bytes()).as_str()),
        "{what}: the user name went out for AUTH LOGIN: {}",
        show(received)
    );
    for line in text.split('\n') {
        let verb = line
            .trim_start()
            .split([' ', '\r'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        assert!(
            !["USER", "PASS", "AUTH", "APOP"].contains(&verb.as_str()),
            "{what}: the client sent a {verb} line: {}",
            show(received)
        );
    }
}

/// The password, plain or in its base64 forms, is not in `received`.
#[track_caller]
fn assert_password_not_sent(received: &[u8], what: &str) {
    let text = String::from_utf8_lossy(received);
    for secret in [
        PASSWORD.to_owned(),
        base64(PASSWORD.as_bytes()),
        base64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "{what}: the password went out ({secret:?}): {}",
            show(received)
        );
    }
}

/// The greeting and a USER/PASS login (`--auth user`).
fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line(GREETING),
        Step::expect_line(&format!("USER {USER}")),
        Step::send_line("+OK"),
        Step::expect_line(&format!("PASS {PASSWORD}")),
        Step::send_line("+OK logged in"),
    ]
}

fn login_steps_then(rest: Vec<Step>) -> Vec<Step> {
    let mut steps = login_steps();
    steps.extend(rest);
    steps
}

/// What the client sent after the login of [`login_steps`], checked to hold
/// no credential.
#[track_caller]
fn after_login<'a>(received: &'a [u8], what: &str) -> &'a [u8] {
    let login = format!("USER {USER}\r\nPASS {PASSWORD}\r\n");
    let rest = received
        .strip_prefix(login.as_bytes())
        .unwrap_or_else(|| panic!("{what}: no login first: {}", show(received)));
    assert_no_credentials(rest, what);
    rest
}

fn repeated(prefix: &[u8], byte: u8, count: usize, suffix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + count + suffix.len());
    v.extend_from_slice(prefix);
    v.extend(std::iter::repeat_n(byte, count));
    v.extend_from_slice(suffix);
    v
}

fn with_nasty(prefix: &[u8]) -> Vec<u8> {
    [prefix, NASTY, b"\r\n"].concat()
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Nothing in `new/`, `cur/` or `tmp/` of the Maildir (missing is empty).
#[track_caller]
fn assert_maildir_empty(maildir: &Path, what: &str) {
    for sub in ["new", "cur", "tmp"] {
        assert_eq!(
            count_files(&maildir.join(sub)),
            0,
            "{what}: files in {sub}/"
        );
    }
}

/// Every UID recorded in the Maildir's state files (the lock file aside).
fn recorded_uids(maildir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(maildir.join("pop3-state")) else {
        return Vec::new();
    };
    let mut uids = Vec::new();
    for entry in entries {
        let path = entry.expect("state entry").path();
        if path.extension().is_some_and(|e| e == "lock") || !path.is_file() {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read state");
        // `UID TIME` per line (older files: `UID`).
        uids.extend(
            text.lines()
                .filter_map(|l| l.split(' ').next())
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        );
    }
    uids
}

/// `pop3 fetch --maildir DIR` to `server` with `--auth user`.
fn fetch(server: &ScriptedServer, runtime: &str, maildir: &Path, extra: &[&str]) -> Command {
    let mut command = plain_user(server, runtime);
    command
        .args(["fetch", "--maildir"])
        .arg(maildir)
        .args(extra);
    command
}

// ---------------------------------------------------------------------------
// STLS
// ---------------------------------------------------------------------------

/// `pop3://` and a `CAPA` without STLS (stripped by an attacker): exit 78,
/// only `CAPA` sent.
#[test]
fn stls_stripped_from_capa() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: STLS stripped");
        let server = script(vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nTOP\r\nUSER\r\nSASL PLAIN LOGIN\r\nUIDL\r\n.\r\n".to_vec()),
            Step::ExpectClose,
        ]);
        let out = run(starttls(server.addr().port(), runtime).arg("stat"), &what);
        assert_fails(&out, 78, "does not offer STLS", &what);
        let (received, result) = server.join_all();
        assert_eq!(received, b"CAPA\r\n", "{what}: {}", show(&received));
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// STLS refused: never a fallback to plaintext; only `CAPA` and `STLS` go
/// out. The exit code is the one for the `-ERR`: `[SYS/TEMP]` is 75 (the
/// README: "try again later ... [SYS/TEMP]"), a bare `-ERR` or `[SYS/PERM]`
/// is 76 (a command refused with `-ERR`).
#[test]
fn stls_refused() {
    for runtime in RUNTIMES {
        for (reply, code) in [
            ("-ERR [SYS/TEMP] TLS not available right now", 75),
            ("-ERR [SYS/PERM] TLS is broken here", 76),
            ("-ERR not now", 76),
        ] {
            let what = format!("{runtime}: STLS answered {reply:?}");
            let server = script(vec![
                Step::send_line(GREETING),
                Step::expect_line("CAPA"),
                Step::Send(CAPA_WITH_STLS.to_vec()),
                Step::expect_line("STLS"),
                Step::send_line(reply),
                Step::ExpectClose,
            ]);
            let out = run(starttls(server.addr().port(), runtime).arg("stat"), &what);
            let line = assert_fails(&out, code, "the server said -ERR", &what);
            assert!(line.contains(&reply[5..]), "{what}: {line}");
            let (received, result) = server.join_all();
            assert_eq!(received, b"CAPA\r\nSTLS\r\n", "{what}: {}", show(&received));
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// Bytes injected after the STLS `+OK` (whole lines, or a partial line, in
/// the same write): exit 65, nothing sent after `STLS`.
#[test]
fn stls_injection_after_ok() {
    for runtime in RUNTIMES {
        for injected in [
            &b"+OK begin TLS\r\n+OK injected\r\n"[..],
            b"+OK begin TLS\r\n+OK injected, no line end",
        ] {
            let what = format!("{runtime}: {}", show(injected));
            let server = script(vec![
                Step::send_line(GREETING),
                Step::expect_line("CAPA"),
                Step::Send(CAPA_WITH_STLS.to_vec()),
                Step::expect_line("STLS"),
                Step::Send(injected.to_vec()),
                Step::ExpectClose,
            ]);
            let out = run(starttls(server.addr().port(), runtime).arg("stat"), &what);
            assert_fails(&out, 65, "injection attempt", &what);
            let (received, result) = server.join_all();
            assert_eq!(received, b"CAPA\r\nSTLS\r\n", "{what}: {}", show(&received));
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// Plaintext instead of a TLS handshake after the STLS `+OK`: exit 78, and
/// after `STLS` only the ClientHello went out.
#[test]
fn stls_plaintext_instead_of_tls() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: plaintext after STLS +OK");
        let server = script(vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(CAPA_WITH_STLS.to_vec()),
            Step::expect_line("STLS"),
            Step::send_line("+OK begin TLS"),
            // Apart from the +OK, so that it reaches TLS and not the
            // injection check.
            Step::Sleep(Duration::from_millis(500)),
            Step::Send(b"-ERR this is not TLS\r\n+OK nor is this\r\n".to_vec()),
            // The ClientHello is binary and may hold a '\n'.
            Step::Stall,
        ]);
        let out = run(starttls(server.addr().port(), runtime).arg("stat"), &what);
        assert_fails(&out, 78, "TLS", &what);
        let (received, _) = server.join_all();
        let rest = received
            .strip_prefix(b"CAPA\r\nSTLS\r\n")
            .unwrap_or_else(|| panic!("{what}: {}", show(&received)));
        assert_eq!(rest.first(), Some(&0x16), "{what}: {}", show(rest));
        assert_no_credentials(&received, &what);
    }
}

/// STLS, then a certificate from an unknown CA: exit 78, nothing after STLS.
#[test]
fn stls_then_untrusted_certificate() {
    let pki = TestPki::shared();
    for runtime in RUNTIMES {
        let what = format!("{runtime}: STLS, unknown CA");
        let server = script(vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(CAPA_WITH_STLS.to_vec()),
            Step::expect_line("STLS"),
            Step::send_line("+OK begin TLS"),
            Step::StartTls(rustls_server_config(&pki.unknown_ca)),
            Step::send_line(GREETING),
            Step::ExpectClose,
        ]);
        let out = run(starttls(server.addr().port(), runtime).arg("stat"), &what);
        let line = assert_fails(
            &out,
            78,
            "issued by an authority this client does not trust",
            &what,
        );
        assert!(
            line.contains("--ca-file FILE") && !line.contains("::"),
            "{what}: {line}"
        );
        let (received, result) = server.join_all();
        assert_eq!(received, b"CAPA\r\nSTLS\r\n", "{what}: {}", show(&received));
        assert!(result.is_err(), "{what}: the handshake cannot complete");
    }
}

// ---------------------------------------------------------------------------
// Implicit TLS certificates
// ---------------------------------------------------------------------------

/// A certificate valid for another name than the one
/// connected to (here `wrong.example`, reached as 127.0.0.1) fails with
/// advice in the command's words (`--tls-server-name`, no `::`), and
/// verifies with `--tls-server-name wrong.example`, over implicit TLS and
/// STLS alike; its issuer is still checked.
#[test]
fn tls_server_name_checks_the_certificate_against_another_name() {
    let pki = TestPki::shared();
    let stat_steps = || {
        login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::send_line("+OK 2 30"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ])
    };
    let stls_steps = |cert: &CertKey, then: Vec<Step>| {
        [
            vec![
                Step::send_line(GREETING),
                Step::expect_line("CAPA"),
                Step::Send(CAPA_WITH_STLS.to_vec()),
                Step::expect_line("STLS"),
                Step::send_line("+OK begin TLS"),
                Step::StartTls(rustls_server_config(cert)),
            ],
            then,
        ]
        .concat()
    };
    for runtime in RUNTIMES {
        let what = format!("{runtime}: pop3s, another name, no --tls-server-name");
        let server = script(
            [
                vec![Step::StartTls(rustls_server_config(&pki.wrong_host))],
                login_steps(),
            ]
            .concat(),
        );
        let out = run(
            implicit_tls(server.addr().port(), runtime).arg("stat"),
            &what,
        );
        let line = assert_fails(&out, 78, "--tls-server-name NAME", &what);
        assert!(line.contains("wrong.example"), "{what}: {line}");
        assert!(!line.contains("::"), "{what}: {line}");
        let _ = server.join_all();

        let what = format!("{runtime}: pop3s --tls-server-name wrong.example");
        let server = script(
            [
                vec![Step::StartTls(rustls_server_config(&pki.wrong_host))],
                stat_steps(),
            ]
            .concat(),
        );
        let out = run(
            implicit_tls(server.addr().port(), runtime).args([
                "--tls-server-name",
                "wrong.example",
                "stat",
            ]),
            &what,
        );
        assert_success(&out, &what);
        assert_eq!(out.stdout, b"2 30\n", "{what}");
        server
            .join_all()
            .1
            .unwrap_or_else(|e| panic!("{what}: {e}"));

        let what = format!("{runtime}: STLS --tls-server-name wrong.example");
        let server = script(stls_steps(
            &pki.wrong_host,
            [
                // The core asks again over TLS, and after the login.
                vec![
                    Step::expect_line("CAPA"),
                    Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
                ],
                login_steps()[1..].to_vec(),
                vec![
                    Step::expect_line("CAPA"),
                    Step::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
                ],
                stat_steps()[5..].to_vec(),
            ]
            .concat(),
        ));
        let out = run(
            starttls(server.addr().port(), runtime).args([
                "--tls-server-name",
                "wrong.example",
                "stat",
            ]),
            &what,
        );
        let (received, result) = server.join_all();
        result.unwrap_or_else(|e| panic!("{what}: {e}: {}", show(&received)));
        assert_success(&out, &what);

        // The name moves the check, not the trust: an unknown issuer is
        // refused whatever the name.
        let what = format!("{runtime}: pop3s --tls-server-name, unknown CA");
        let server = script(vec![
            Step::StartTls(rustls_server_config(&pki.unknown_ca)),
            Step::ExpectClose,
        ]);
        let out = run(
            implicit_tls(server.addr().port(), runtime).args([
                "--tls-server-name",
                "localhost",
                "stat",
            ]),
            &what,
        );
        let line = assert_fails(&out, 78, "--ca-file FILE", &what);
        assert!(!line.contains("::"), "{what}: {line}");
        let _ = server.join_all();
    }
    let out = run(
        implicit_tls(1, "blocking").args(["--tls-server-name", "not a name!", "stat"]),
        "a bad --tls-server-name",
    );
    assert_fails(&out, 64, "--tls-server-name", "a bad --tls-server-name");
}

/// `pop3s://` to a server whose certificate is for another host, from an
/// unknown CA, expired, or self-signed: exit 78 and no POP3 byte received.
/// The control (the good certificate, same script) logs in and reads STAT.
#[test]
fn implicit_tls_bad_certificates() {
    let pki = TestPki::shared();
    let cases: [(&str, &CertKey, &str); 4] = [
        ("wrong host", &pki.wrong_host, "not valid for the name"),
        (
            "unknown CA",
            &pki.unknown_ca,
            "issued by an authority this client does not trust",
        ),
        ("expired", &pki.expired, "certificate expired"),
        // The presented certificate is known when the error is explained,
        // so a self-signed one is called that.
        (
            "self-signed",
            &pki.self_signed,
            "certificate is self-signed",
        ),
    ];
    for runtime in RUNTIMES {
        for (name, cert, needle) in cases {
            let what = format!("{runtime}: pop3s, {name}");
            // The handshake runs first, then the script.
            let server = script(
                [
                    vec![Step::StartTls(rustls_server_config(cert))],
                    login_steps(),
                ]
                .concat(),
            );
            let out = run(
                implicit_tls(server.addr().port(), runtime).arg("stat"),
                &what,
            );
            let line = assert_fails(&out, 78, needle, &what);
            // The command's words: options, never the library's API.
            assert!(!line.contains("::"), "{what}: {line}");
            let (received, result) = server.join_all();
            assert!(received.is_empty(), "{what}: {}", show(&received));
            let e = result.expect_err("the handshake cannot complete");
            assert!(e.contains("TLS handshake failed"), "{what}: {e}");
        }
        let what = format!("{runtime}: pop3s, good certificate (control)");
        let server = script(
            [
                vec![Step::StartTls(rustls_server_config(&pki.server))],
                login_steps_then(vec![
                    Step::expect_line("STAT"),
                    Step::send_line("+OK 2 30"),
                    Step::expect_line("QUIT"),
                    Step::send_line("+OK bye"),
                ]),
            ]
            .concat(),
        );
        let out = run(
            implicit_tls(server.addr().port(), runtime).arg("stat"),
            &what,
        );
        assert_success(&out, &what);
        assert_eq!(out.stdout, b"2 30\n", "{what}");
        server
            .join_all()
            .1
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// Greetings
// ---------------------------------------------------------------------------

/// A greeting that is no status line, full of escapes: exit 65, nothing
/// sent, stderr clean.
#[test]
fn garbage_greeting() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: garbage greeting");
        let server = script(vec![Step::Send(with_nasty(b"")), Step::ExpectClose]);
        let out = run(plain_user(&server, runtime).arg("stat"), &what);
        let line = assert_fails(&out, 65, "invalid greeting", &what);
        assert!(line.contains('\u{fffd}'), "{what}: {line}");
        let (received, result) = server.join_all();
        assert!(received.is_empty(), "{what}: {}", show(&received));
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// A `-ERR [SYS/PERM]` greeting with OSC/CSI escapes, BEL, NUL, invalid
/// UTF-8, a C1 CSI, DEL and a CR in its text: exit 69 (the server is not
/// available; `[SYS/TEMP]` or `[IN-USE]` would be 75), and the line on
/// stderr shows the text with replacement characters, no control character.
#[test]
fn err_greeting_with_escapes() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: -ERR greeting with escapes");
        let server = script(vec![
            Step::Send(with_nasty(b"-ERR [SYS/PERM] ")),
            Step::ExpectClose,
        ]);
        let out = run(plain_user(&server, runtime).arg("stat"), &what);
        let line = assert_fails(&out, 69, "greeting rejected", &what);
        assert!(
            line.contains('\u{fffd}') && line.contains("owned"),
            "{what}: {line}"
        );
        let (received, result) = server.join_all();
        assert!(received.is_empty(), "{what}: {}", show(&received));
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// A CAPA listing whose IMPLEMENTATION text, unknown capability and SASL
/// mechanism carry [`NASTY`].
fn nasty_capa() -> Vec<u8> {
    [
        &b"+OK\r\n"[..],
        &with_nasty(b"IMPLEMENTATION "),
        &with_nasty(b"X-NASTY "),
        &with_nasty(b"SASL "),
        b"USER\r\n.\r\n",
    ]
    .concat()
}

/// No control character but the line ends in `bytes` (valid UTF-8).
#[track_caller]
fn assert_clean_lines(bytes: &[u8], what: &str) -> String {
    let text = String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| panic!("{what}: not UTF-8: {}", show(bytes)));
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "{what}: control characters in {line:?}"
        );
    }
    text
}

/// Escapes in the greeting, in capability arguments and in a `-ERR`:
/// `pop3 capa` prints them (text and `--json`) with replacement characters;
/// the `-v` trace on stderr, line by line, holds no control character
/// either, and the `-ERR` to STAT ends in exit 76 with one clean last line.
#[test]
fn escapes_in_capa_output_and_trace() {
    for runtime in RUNTIMES {
        for json in [false, true] {
            let what = format!("{runtime}: capa (json {json}) with escapes");
            let server = script(vec![
                Step::Send(with_nasty(b"+OK ")),
                Step::expect_line("CAPA"),
                Step::Send(nasty_capa()),
                Step::expect_line("QUIT"),
                Step::send_line("+OK bye"),
            ]);
            let mut command = plain(&server, runtime);
            if json {
                command.arg("--json");
            }
            let out = run(command.arg("capa"), &what);
            assert_success(&out, &what);
            let text = assert_clean_lines(&out.stdout, &what);
            if json {
                let value: serde_json::Value = serde_json::from_str(&text).expect("json");
                let greeting = value["greeting"].as_str().expect("greeting");
                assert!(
                    !greeting.chars().any(char::is_control),
                    "{what}: {greeting:?}"
                );
                for c in value["capabilities"].as_array().expect("capabilities") {
                    let c = c.as_str().expect("capability");
                    assert!(!c.chars().any(char::is_control), "{what}: {c:?}");
                }
            } else {
                assert!(
                    text.contains("IMPLEMENTATION ") && text.contains('\u{fffd}'),
                    "{what}: {text:?}"
                );
            }
            server
                .join_all()
                .1
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }

        let what = format!("{runtime}: -v trace with escapes");
        let server = script(vec![
            Step::Send(with_nasty(b"+OK ")),
            Step::expect_line("CAPA"),
            Step::Send(nasty_capa()),
            Step::expect_line(&format!("USER {USER}")),
            Step::send_line("+OK"),
            Step::expect_line(&format!("PASS {PASSWORD}")),
            Step::Send(with_nasty(b"+OK ")),
            // Asked again after the login (RFC 2449).
            Step::expect_line("CAPA"),
            Step::Send(nasty_capa()),
            Step::expect_line("STAT"),
            Step::Send(with_nasty(b"-ERR ")),
            Step::ExpectClose,
        ]);
        let out = run(plain(&server, runtime).args(["-v", "stat"]), &what);
        assert_eq!(out.code, Some(76), "{what}: {}", show(&out.stderr));
        let trace = assert_clean_lines(&out.stderr, &what);
        assert!(trace.contains("C: PASS <redacted>"), "{what}: {trace}");
        assert!(!trace.contains(PASSWORD), "{what}: {trace}");
        let last = trace.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("pop3: STAT: the server said -ERR ") && last.contains('\u{fffd}'),
            "{what}: {last:?}"
        );
        server
            .join_all()
            .1
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

/// `--tls none` without `--allow-plaintext-credentials`, whatever the login method
/// (the greeting even offers an APOP timestamp): exit 77 and not one byte
/// sent, not even `CAPA`.
#[test]
fn plaintext_credentials_refused() {
    for runtime in RUNTIMES {
        for auth in [
            "auto",
            "user",
            "apop",
            "plain",
            "login",
            "cram-md5",
            "scram-sha-256",
            "xoauth2",
        ] {
            let what = format!("{runtime}: --tls none --auth {auth}");
            let server = script(vec![
                Step::send_line("+OK ready <1896.697170952@hostile.example>"),
                Step::ExpectClose,
            ]);
            let out = run(
                pop3(runtime)
                    .args(["--host", "127.0.0.1", "--port"])
                    .arg(server.addr().port().to_string())
                    .args(["--tls", "none", "--user", USER, "--auth", auth])
                    .arg("stat"),
                &what,
            );
            assert_fails(&out, 77, "--allow-plaintext-credentials", &what);
            let (received, result) = server.join_all();
            assert!(received.is_empty(), "{what}: sent {}", show(&received));
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// User names with CR, LF or NUL are a bad command line: exit 64 before
/// anything is sent.
#[test]
fn line_breaks_in_user_exit_64() {
    for runtime in RUNTIMES {
        for (how, user, auth) in line_break_users() {
            let what = format!("{runtime}: {how} {user:?} --auth {auth}");
            let server = user_server();
            let out = run(&mut user_command(&server, runtime, how, user, auth), &what);
            assert_fails(&out, 64, "user", &what);
            let (received, _) = server.join_all();
            assert!(received.is_empty(), "{what}: sent {}", show(&received));
        }
    }
}

/// A server that answers the `CAPA` of `--auth auto` and then stalls; with
/// `--auth user` the client closes after the greeting and the script stops
/// at `CAPA` (not checked: the received bytes are).
fn user_server() -> ScriptedServer {
    ScriptedServer::start_with(
        vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n".to_vec()),
            Step::Stall,
        ],
        ScriptConfig::with_timeout(Duration::from_secs(2)),
    )
}

/// (how the user is given, the user, `--auth`).
fn line_break_users() -> [(&'static str, &'static str, &'static str); 6] {
    [
        ("--user", "alice\r\nDELE 1", "user"),
        ("--user", "alice\nQUIT", "auto"),
        ("--user", "al\rice", "user"),
        ("URL", "alice%0D%0ADELE%201", "user"),
        ("URL", "alice%0AQUIT", "auto"),
        ("URL", "nul%00", "user"),
    ]
}

fn user_command(
    server: &ScriptedServer,
    runtime: &str,
    how: &str,
    user: &str,
    auth: &str,
) -> Command {
    let port = server.addr().port();
    let mut command = pop3(runtime);
    command.args(["--tls", "none", "--allow-plaintext-auth", "--auth", auth]);
    if how == "URL" {
        command.arg(format!("pop3://{user}@127.0.0.1:{port}"));
    } else {
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--user", user]);
    }
    command.arg("stat");
    command
}

// ---------------------------------------------------------------------------
// Over-long lines, floods and numbers
// ---------------------------------------------------------------------------

/// A 1 MiB `+OK` line to STAT that never ends: a status line is read to its
/// end (without being held), so the read limit fires: exit 75 after about
/// `--timeout`. 1 MiB that is no status line at all: exit 65 at once.
#[test]
fn reply_line_of_one_mib_without_crlf() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: 1 MiB +OK to STAT, no CRLF");
        let server = script(login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::Send(repeated(b"+OK ", b'9', MIB, b"")),
            Step::Stall,
        ]));
        let out = run(plain_user(&server, runtime).arg("stat"), &what);
        assert_fails(&out, 75, "timed out", &what);
        assert!(out.took >= TIMEOUT.mul_f32(0.9), "{what}: {:?}", out.took);
        assert!(out.stdout.is_empty(), "{what}");
        let (received, _) = server.join_all();
        assert_eq!(after_login(&received, &what), b"STAT\r\n");

        let what = format!("{runtime}: 1 MiB of garbage to STAT");
        let server = script(login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::Send(repeated(b"", b'z', MIB, b"")),
            Step::Stall,
        ]));
        let out = run(plain_user(&server, runtime).arg("stat"), &what);
        assert_fails(&out, 65, "reply line longer than 8192 octets", &what);
        assert!(out.took < TIMEOUT, "{what}: {:?}", out.took);
        let (received, _) = server.join_all();
        assert_eq!(after_login(&received, &what), b"STAT\r\n");
    }
}

/// `+OK`, a million capability lines, `.`.
fn capa_flood() -> Vec<u8> {
    let mut flood = b"+OK\r\n".to_vec();
    for _ in 0..1_000_000 {
        flood.extend_from_slice(b"X-CAP\r\n");
    }
    flood.extend_from_slice(b".\r\n");
    flood
}

/// A CAPA of a million lines, then the login: the library fails CAPA alone
/// with `TooManyLines` and the session stays in step, so the login (USER,
/// as after a refused CAPA) and STAT could go on.
#[test]
fn capa_of_a_million_lines_then_login() {
    let flood = capa_flood();
    for runtime in RUNTIMES {
        let what = format!("{runtime}: CAPA of a million lines, then the login");
        let mut steps = vec![
            Step::send_line(GREETING),
            Step::expect_line("CAPA"),
            Step::Send(flood.clone()),
        ];
        steps.extend(login_steps().into_iter().skip(1));
        steps.extend([
            Step::expect_line("STAT"),
            Step::send_line("+OK 1 10"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]);
        let server = script(steps);
        let out = run(plain(&server, runtime).arg("stat"), &what);
        assert_success(&out, &what);
        assert_eq!(out.stdout, b"1 10\n", "{what}");
        let (received, result) = server.join_all();
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let rest = received
            .strip_prefix(b"CAPA\r\n")
            .unwrap_or_else(|| panic!("{what}: {}", show(&received)));
        assert_eq!(after_login(rest, &what), b"STAT\r\nQUIT\r\n");
    }
}

/// 2^64 as the STAT count or size: exit 65 ("number too large"), nothing
/// printed; `u64::MAX` itself (control) is printed.
#[test]
fn numbers_over_u64_in_stat() {
    for runtime in RUNTIMES {
        for reply in ["+OK 18446744073709551616 10", "+OK 1 18446744073709551616"] {
            let what = format!("{runtime}: STAT {reply:?}");
            let server = script(login_steps_then(vec![
                Step::expect_line("STAT"),
                Step::send_line(reply),
                Step::ExpectClose,
            ]));
            let out = run(plain_user(&server, runtime).arg("stat"), &what);
            assert_fails(&out, 65, "number too large", &what);
            assert!(out.stdout.is_empty(), "{what}: {}", show(&out.stdout));
            let (received, result) = server.join_all();
            assert_eq!(after_login(&received, &what), b"STAT\r\n");
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let what = format!("{runtime}: STAT at u64::MAX (control)");
        let server = script(login_steps_then(vec![
            Step::expect_line("STAT"),
            Step::send_line("+OK 1 18446744073709551615"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]));
        let out = run(plain_user(&server, runtime).arg("stat"), &what);
        assert_success(&out, &what);
        assert_eq!(out.stdout, b"1 18446744073709551615\n", "{what}");
        server
            .join_all()
            .1
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// fetch
// ---------------------------------------------------------------------------

/// `fetch --delete` and a UIDL naming one UID twice (or one message twice):
/// exit 65, no RETR, no DELE, no QUIT (only the LIST asked with the UIDL),
/// nothing in the Maildir, no UID recorded.
#[test]
fn malformed_uidl_during_fetch() {
    for runtime in RUNTIMES {
        for (uidl, needle) in [
            (
                &b"+OK\r\n1 same\r\n2 same\r\n.\r\n"[..],
                "duplicate unique id in UIDL",
            ),
            (
                b"+OK\r\n1 uid-a\r\n1 uid-b\r\n.\r\n",
                "duplicate message number in UIDL",
            ),
        ] {
            let what = format!("{runtime}: fetch, UIDL {}", show(uidl));
            let server = script(login_steps_then(vec![
                Step::expect_line("UIDL"),
                Step::Send(uidl.to_vec()),
                // LIST was asked together with UIDL.
                Step::expect_line("LIST"),
                Step::send_line("+OK\r\n1 10\r\n2 10\r\n."),
                Step::ExpectClose,
            ]));
            let dir = tempfile::tempdir().expect("tempdir");
            let maildir = dir.path().join("Mail");
            let out = run(&mut fetch(&server, runtime, &maildir, &["--delete"]), &what);
            assert_fails(&out, 65, needle, &what);
            assert_maildir_empty(&maildir, &what);
            assert!(recorded_uids(&maildir).is_empty(), "{what}");
            let (received, result) = server.join_all();
            assert_eq!(after_login(&received, &what), b"UIDL\r\nLIST\r\n");
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// A message the server sends as a dot-stuffed body.
fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = b"+OK message follows\r\n".to_vec();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The server closes the connection in the middle of the only message:
/// exit 69, nothing in the Maildir (not in `tmp/` either), no UID recorded.
/// A second fetch against a good server stores the message exactly once, and
/// a third fetches nothing.
#[test]
fn disconnect_mid_message_during_fetch() {
    let mut message = b"From: a@example.org\r\nSubject: cut\r\n\r\n.leading dot\r\n".to_vec();
    for i in 0..600 {
        message.extend_from_slice(format!("line {i:04} {}\r\n", "x".repeat(40)).as_bytes());
    }
    let retr = stuffed(&message);
    let list = format!("+OK\r\n1 {}\r\n.\r\n", message.len());
    // `new`: uid-cut is not recorded yet.
    let listing = |new: bool, rest: Vec<Step>| {
        let mut steps = vec![
            Step::expect_line("UIDL"),
            Step::Send(b"+OK\r\n1 uid-cut\r\n.\r\n".to_vec()),
            Step::expect_line("LIST"),
            Step::Send(list.clone().into_bytes()),
        ];
        if new {
            // Only new mail listed, and no CAPA at the login: the fetch asks
            // whether the server hands out mail in turns (EXPIRE 0).
            steps.push(Step::expect_line("CAPA"));
            steps.push(Step::send_line("-ERR no CAPA here"));
        }
        login_steps_then([steps, rest].concat())
    };
    for runtime in RUNTIMES {
        let what = format!("{runtime}: disconnect mid-message");
        let server = ScriptedServer::start_sessions(
            vec![
                listing(
                    true,
                    vec![
                        Step::expect_line("RETR 1"),
                        Step::Send(retr[..retr.len() / 2].to_vec()),
                        Step::Close,
                    ],
                ),
                listing(
                    true,
                    vec![
                        Step::expect_line("RETR 1"),
                        Step::Send(retr.clone()),
                        Step::expect_line("QUIT"),
                        Step::send_line("+OK bye"),
                    ],
                ),
                listing(
                    false,
                    vec![Step::expect_line("QUIT"), Step::send_line("+OK bye")],
                ),
            ],
            config(),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let out = run(&mut fetch(&server, runtime, &maildir, &[]), &what);
        assert_fails(&out, 69, "RETR", &what);
        assert_maildir_empty(&maildir, &what);
        assert!(recorded_uids(&maildir).is_empty(), "{what}");

        let out = run(&mut fetch(&server, runtime, &maildir, &[]), &what);
        assert_success(&out, &format!("{what}, second fetch"));
        let out = run(&mut fetch(&server, runtime, &maildir, &[]), &what);
        assert_success(&out, &format!("{what}, third fetch"));
        let (received, result) = server.join_all();
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let logins = received
            .windows(PASSWORD.len())
            .filter(|w| *w == PASSWORD.as_bytes())
            .count();
        assert_eq!(
            logins, 3,
            "{what}: the password went out only in the 3 logins"
        );
        let new: Vec<Vec<u8>> = fs::read_dir(maildir.join("new"))
            .expect("new/")
            .map(|e| fs::read(e.expect("entry").path()).expect("read"))
            .collect();
        // Stored with LF line endings (the default).
        let stored = String::from_utf8_lossy(&message).replace("\r\n", "\n");
        assert_eq!(
            new,
            vec![stored.into_bytes()],
            "{what}: stored exactly once"
        );
        assert_eq!(count_files(&maildir.join("cur")), 0, "{what}");
        assert_eq!(count_files(&maildir.join("tmp")), 0, "{what}");
        assert_eq!(recorded_uids(&maildir), vec!["uid-cut"], "{what}");
    }
}

// ---------------------------------------------------------------------------
// Message termination
// ---------------------------------------------------------------------------

/// A dot after a bare LF is message data (control: exact body, exit 0); a
/// body "ending" in `.\n` never ends: exit 75 after the read limit.
#[test]
fn bare_lf_terminator_during_retr() {
    for runtime in RUNTIMES {
        let what = format!("{runtime}: dot after a bare LF (control)");
        let server = script(login_steps_then(vec![
            Step::expect_line("RETR 1"),
            Step::Send(b"+OK\r\nfirst\n.\nsecond\r\n.\r\n".to_vec()),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]));
        let out = run(plain_user(&server, runtime).args(["retr", "1"]), &what);
        assert_success(&out, &what);
        assert_eq!(out.stdout, b"first\n.\nsecond\r\n", "{what}");
        server
            .join_all()
            .1
            .unwrap_or_else(|e| panic!("{what}: {e}"));

        let what = format!("{runtime}: body ending in .\\n");
        let server = script(login_steps_then(vec![
            Step::expect_line("RETR 1"),
            Step::Send(b"+OK\r\nline one\r\n.\n".to_vec()),
            Step::Stall,
        ]));
        let out = run(plain_user(&server, runtime).args(["retr", "1"]), &what);
        assert_fails(&out, 75, "timed out", &what);
        assert!(out.took >= TIMEOUT.mul_f32(0.9), "{what}: {:?}", out.took);
        let (received, _) = server.join_all();
        assert_eq!(after_login(&received, &what), b"RETR 1\r\n");
    }
}

/// One message listed as 100 bytes whose `RETR` reply starts with `start`
/// and then trickles one byte every 200 ms (for ten seconds).
fn trickled_retr(start: &[u8]) -> Vec<Step> {
    let mut steps = vec![
        Step::expect_line("UIDL"),
        Step::Send(b"+OK\r\n1 uid-trickle\r\n.\r\n".to_vec()),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 100\r\n.\r\n".to_vec()),
        // Only new mail listed, and no CAPA at the login: the fetch asks
        // whether the server hands out mail in turns (EXPIRE 0).
        Step::expect_line("CAPA"),
        Step::send_line("-ERR no CAPA here"),
        Step::expect_line("RETR 1"),
        Step::Send(start.to_vec()),
    ];
    for _ in 0..50 {
        steps.push(Step::Send(b"x".to_vec()));
        steps.push(Step::Sleep(Duration::from_millis(200)));
    }
    steps
}

/// A message trickled one byte every 200 ms, without end: no read waits as
/// long as `--timeout`, so only `--session-timeout 2` ends the fetch: exit
/// 75 (try again later) after about 2 s, a message naming the overall
/// limit, nothing stored and no UID recorded.
#[test]
fn trickled_message_meets_the_session_timeout() {
    let session = Duration::from_secs(2);
    for runtime in RUNTIMES {
        let what = format!("{runtime}: a message trickled without end");
        let server = script(login_steps_then(trickled_retr(
            b"+OK\r\nSubject: slow\r\n\r\n",
        )));
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let mut command = fetch(&server, runtime, &maildir, &["--session-timeout", "2"]);
        let out = run(&mut command, &what);
        assert_fails(&out, 75, "overall time limit", &what);
        assert!(out.took >= session.mul_f32(0.9), "{what}: {:?}", out.took);
        assert!(
            out.took < session + Duration::from_millis(1500),
            "{what}: {:?}",
            out.took
        );
        assert_maildir_empty(&maildir, &what);
        assert!(recorded_uids(&maildir).is_empty(), "{what}");
        let (received, _) = server.join_all();
        assert_eq!(
            after_login(&received, &what),
            b"UIDL\r\nLIST\r\nCAPA\r\nRETR 1\r\n"
        );
    }
    // The same limit from a config file's `session_timeout` key.
    let what = "config key session_timeout";
    let server = script(login_steps_then(trickled_retr(b"+OK\r\n")));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    fs::write(&config, "[defaults]\nsession_timeout = 2\n").expect("write config");
    let maildir = dir.path().join("Mail");
    let mut command = fetch(&server, "blocking", &maildir, &[]);
    command.arg("--config").arg(&config);
    let out = run(&mut command, what);
    assert_fails(&out, 75, "overall time limit", what);
    assert!(
        out.took < session + Duration::from_millis(1500),
        "{what}: {:?}",
        out.took
    );
    drop(server.join_all());
}

/// `SSL_CERT_FILE` naming a missing file, an empty file or a file without a
/// certificate: exit 78 naming the variable, before anything is connected;
/// never a silent fallback to the built-in roots.
#[test]
fn unusable_ssl_cert_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, b"").expect("write");
    let text = dir.path().join("text.pem");
    fs::write(&text, b"no certificate here\n").expect("write");
    let missing = dir.path().join("missing.pem");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    for runtime in RUNTIMES {
        for file in [&missing, &empty, &text] {
            let what = format!("{runtime}: SSL_CERT_FILE={}", file.display());
            let mut command = pop3(runtime);
            command
                .env("SSL_CERT_FILE", file)
                .args(["--auth", "user"])
                .arg(format!("pop3s://{USER}@127.0.0.1:{port}"))
                .arg("stat");
            let out = run(&mut command, &what);
            assert_fails(&out, 78, "SSL_CERT_FILE=", &what);
            assert!(listener.accept().is_err(), "{what}: it connected");
        }
    }
}

// ---------------------------------------------------------------------------
// SCRAM
// ---------------------------------------------------------------------------

const SALT: &str = "QSXCR+Q6sek8bf92";

/// `pop3 --auth scram-sha-256 stat` to `port` without TLS (SCRAM reveals no
/// password, but the CLI asks for `--allow-plaintext-credentials` for any login).
fn scram_command(port: u16, runtime: &str) -> Command {
    let mut command = pop3(runtime);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--tls", "none", "--allow-plaintext-auth", "--user", USER])
        .args(["--auth", "scram-sha-256", "stat"]);
    command
}

/// A server-first message whose nonce does not extend the client's (the
/// scripted server cannot know the client's random nonce): the client
/// cancels with `*`, and exits 77 (the README: "with SCRAM, the server could
/// not prove that it knows them"), with nothing but the AUTH line and `*`
/// sent. With `i=0` in the same message the nonce is checked first, so the
/// iteration count needs [`ScramServer`].
#[test]
fn scram_nonce_not_extended() {
    for runtime in RUNTIMES {
        for iterations in ["4096", "0"] {
            let what = format!("{runtime}: SCRAM nonce not extended, i={iterations}");
            let server_first = format!("r=not-your-nonce-at-all,s={SALT},i={iterations}");
            let server = script(vec![
                Step::send_line(GREETING),
                Step::expect_prefix("AUTH SCRAM-SHA-256 "),
                Step::send_line(&format!("+ {}", base64(server_first.as_bytes()))),
                Step::expect_line("*"),
                Step::send_line("-ERR authentication cancelled"),
                Step::ExpectClose,
            ]);
            let out = run(&mut scram_command(server.addr().port(), runtime), &what);
            assert_fails(&out, 77, "nonce does not extend ours", &what);
            let (received, result) = server.join_all();
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_password_not_sent(&received, &what);
            let lines: Vec<&[u8]> = received.split_inclusive(|&b| b == b'\n').collect();
            assert_eq!(lines.len(), 2, "{what}: {}", show(&received));
            assert_eq!(lines[1], b"*\r\n", "{what}");
        }
    }
}

/// How [`ScramServer`] tampers with the exchange.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// A correct server-first (the client's nonce extended), then a server
    /// signature of zeros.
    WrongSignature,
    /// A correct server-first nonce with `i=0`.
    ZeroIterations,
}

/// A one-connection SCRAM-SHA-256 server that reads the client's nonce and
/// extends it, which the scripted server cannot: it reaches the checks after
/// the nonce (the iteration count, the server signature) without knowing the
/// password.
struct ScramServer {
    addr: SocketAddr,
    handle: JoinHandle<(Vec<u8>, Result<(), String>)>,
}

impl ScramServer {
    fn start(tamper: Tamper) -> ScramServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = thread::spawn(move || {
            let mut received = Vec::new();
            let result = scram_session(&listener, tamper, &mut received);
            (received, result)
        });
        ScramServer { addr, handle }
    }

    fn join(self) -> (Vec<u8>, Result<(), String>) {
        self.handle.join().expect("SCRAM server thread")
    }
}

fn scram_session(
    listener: &TcpListener,
    tamper: Tamper,
    received: &mut Vec<u8>,
) -> Result<(), String> {
    let limit = Duration::from_secs(5);
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("no client connection".into());
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut send = |line: &str| {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| format!("write: {e}"))
    };
    let mut read_line = |received: &mut Vec<u8>| -> Result<String, String> {
        let mut line = Vec::new();
        reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("read: {e}"))?;
        received.extend_from_slice(&line);
        String::from_utf8(line).map_err(|_| "client line not UTF-8".to_owned())
    };

    send("+OK dynamic SCRAM server")?;
    let auth = read_line(received)?;
    let initial = auth
        .strip_prefix("AUTH SCRAM-SHA-256 ")
        .ok_or_else(|| format!("expected AUTH SCRAM-SHA-256, got {auth:?}"))?;
    let client_first = decode_base64(initial.trim_end())?;
    let nonce = client_first
        .strip_prefix("n,,")
        .and_then(|bare| bare.split(',').find_map(|a| a.strip_prefix("r=")))
        .ok_or_else(|| format!("no nonce in {client_first:?}"))?;
    let server_nonce = format!("{nonce}ServerPart");
    let iterations = match tamper {
        Tamper::WrongSignature => 4096,
        Tamper::ZeroIterations => 0,
    };
    let server_first = format!("r={server_nonce},s={SALT},i={iterations}");
    send(&format!("+ {}", base64(server_first.as_bytes())))?;
    if let Tamper::WrongSignature = tamper {
        let line = read_line(received)?;
        let client_final = decode_base64(line.trim_end())?;
        let want = format!("c=biws,r={server_nonce},p=");
        if !client_final.starts_with(&want) {
            return Err(format!("client-final {client_final:?}"));
        }
        let zeros = base64(&[0u8; 32]);
        send(&format!("+ {}", base64(format!("v={zeros}").as_bytes())))?;
    }
    let cancel = read_line(received)?;
    if cancel != "*\r\n" {
        return Err(format!(
            "expected the client to cancel with *, got {cancel:?}"
        ));
    }
    send("-ERR authentication cancelled")?;
    // The client must now close without another command.
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    received.extend_from_slice(&rest);
    if rest.contains(&b'\n') {
        return Err(format!("client went on: {}", show(&rest)));
    }
    Ok(())
}

fn decode_base64(text: &str) -> Result<String, String> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for &c in text.trim_end_matches('=').as_bytes() {
        let v = value(c).ok_or_else(|| format!("not base64: {text:?}"))?;
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("not UTF-8: {text:?}"))
}

/// A server that extends the nonce, then sends a wrong server signature
/// (the client sent its proof, so the exchange got that far): the client
/// cancels with `*` and exits 77; or `i=0`: the client cancels with `*`
/// before deriving any key and exits 77.
#[test]
fn scram_wrong_signature_and_zero_iterations() {
    for runtime in RUNTIMES {
        for (tamper, needle) in [
            (Tamper::WrongSignature, "server signature does not match"),
            (Tamper::ZeroIterations, "iteration count 0"),
        ] {
            let what = format!("{runtime}: SCRAM {tamper:?}");
            let server = ScramServer::start(tamper);
            let out = run(&mut scram_command(server.addr.port(), runtime), &what);
            assert_fails(&out, 77, needle, &what);
            let (received, result) = server.join();
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_password_not_sent(&received, &what);
            assert!(received.ends_with(b"\r\n*\r\n"), "{what}");
        }
    }
}

#[test]
fn base64_decoder_round_trips() {
    for text in ["", "f", "fo", "foo", "foob", "fooba", "n,,n=alice,r=abc"] {
        assert_eq!(decode_base64(&base64(text.as_bytes())), Ok(text.to_owned()));
    }
}
