//! The `pop3` binary against a real Cyrus pop3d 3.6
//! (`test_support::cyrus`), on all three runtimes: `--auth auto` logs in
//! over implicit TLS and over STLS. Cyrus offers SCRAM-SHA-256-PLUS but binds
//! to `tls-unique` only, so the -PLUS attempt is refused
//! (`-ERR [AUTH] authenticating: bad protocol / cancel`) and the login ends
//! with plain SCRAM-SHA-256; `-v` shows both attempts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use test_support::cyrus::{Cyrus, CyrusMailbox};
use test_support::dovecot::unique_user;

mod common;
use common::run;

const RUNTIMES: [&str; 3] = ["blocking", "tokio", "smol"];
const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";

/// Cyrus' test CA, written once to a file for `--ca-file`.
fn ca_file() -> &'static Path {
    static CA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        fs::write(&path, Cyrus::shared().ca_pem()).expect("write CA");
        (dir, path)
    });
    path
}

/// `pop3` with nothing inherited that could change its behaviour, logged in
/// as `mailbox`'s user at `url_base` (`pop3s://` or `pop3://` with the port).
fn pop3(mailbox: &CyrusMailbox, scheme: &str, port: u16, runtime: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env(PASSWORD_VAR, mailbox.password())
        .stdin(Stdio::null())
        .arg(format!("{scheme}://{}@127.0.0.1:{port}", mailbox.user()))
        .args([
            "--password-env",
            PASSWORD_VAR,
            "--runtime",
            runtime,
            "--timeout",
            "60",
        ])
        .arg("--ca-file")
        .arg(ca_file());
    command
}

#[test]
fn stat_with_auth_auto_over_tls_and_stls() {
    let cyrus = Cyrus::shared();
    let mailbox = cyrus.add_user(&unique_user("cli-auto"), "cli-secret");
    let stored = [
        mailbox.add_message(b"Subject: one\r\n\r\nfirst\r\n"),
        mailbox.add_message(b"Subject: two\r\n\r\nsecond\r\n"),
    ];
    let total: usize = stored.iter().map(Vec::len).sum();
    for (scheme, port) in [
        ("pop3s", cyrus.tls_addr().port()),
        ("pop3", cyrus.plain_addr().port()),
    ] {
        for runtime in RUNTIMES {
            let what = format!("{scheme} {runtime}");
            let out =
                run(pop3(&mailbox, scheme, port, runtime).args(["-v", "--auth", "auto", "stat"]));
            let trace = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}\nstderr: {trace}\n--- Cyrus log ---\n{}",
                cyrus.log()
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("2 {total}\n"),
                "{what}"
            );
            if scheme == "pop3" {
                assert!(trace.contains("C: STLS"), "{what}: {trace}");
            }
            // The -PLUS attempt, Cyrus' refusal, then plain SCRAM.
            let plus = trace
                .find("C: AUTH SCRAM-SHA-256-PLUS <redacted>")
                .unwrap_or_else(|| panic!("{what}: no -PLUS attempt in\n{trace}"));
            let refused = trace
                .find("S: -ERR [AUTH] authenticating: bad protocol / cancel")
                .unwrap_or_else(|| panic!("{what}: no refusal in\n{trace}"));
            let plain = trace
                .find("C: AUTH SCRAM-SHA-256 <redacted>")
                .unwrap_or_else(|| panic!("{what}: no plain SCRAM in\n{trace}"));
            assert!(plus < refused && refused < plain, "{what}: order\n{trace}");
            assert_eq!(
                trace.matches("C: AUTH ").count(),
                2,
                "{what}: one retry\n{trace}"
            );
            assert!(!trace.contains(mailbox.password()), "{what}: {trace}");
        }
    }
}
