//! The Cyrus launcher itself ([`test_support::cyrus`]): it starts, logs, and
//! cleans up. What the library does against it, on every transport, is
//! `test_support::cyrus_scenarios`, run by each transport crate's
//! `tests/cyrus.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use pop3_blocking::Wait;
use pop3_proto::AuthMethod;
use test_support::cyrus::Cyrus;
use test_support::cyrus_scenarios::{self, Tls};

#[test]
fn cyrus_starts_and_logs() {
    let cyrus = Cyrus::shared();
    assert!(
        cyrus.version().starts_with("3.6."),
        "version {:?}",
        cyrus.version()
    );
    let mailbox = cyrus_scenarios::user("log");
    let options = cyrus_scenarios::options(cyrus, Tls::V13);
    let mut conn = pop3_blocking::connect_tls("127.0.0.1", cyrus.tls_addr().port(), &options)
        .wait()
        .unwrap();
    conn.login_with(mailbox.user(), mailbox.password(), AuthMethod::UserPass)
        .wait()
        .unwrap();
    conn.quit().wait().unwrap();
    // Syslog is captured as root (a mount namespace); the tests run as root
    // in CI. Lines arrive asynchronously: give them a moment.
    if test_support_is_root() {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cyrus.log().contains(mailbox.user()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = cyrus.log();
        let line = format!(
            "login: localhost [127.0.0.1] {} plaintext+TLS User logged in",
            mailbox.user()
        );
        assert!(log.contains(&line), "no {line:?} in\n{log}");
    }
}

fn test_support_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A started and dropped Cyrus leaves no directory behind.
#[test]
fn dropped_cyrus_removes_its_directory() {
    let cyrus = Cyrus::start().unwrap();
    let dir = cyrus.dir().to_path_buf();
    assert!(dir.join("imapd.conf").exists());
    drop(cyrus);
    assert!(!dir.exists(), "{} still exists", dir.display());
}
