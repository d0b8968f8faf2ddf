//! `pop3 -v`: the wire trace comes from the library's core, so it is the same
//! on every runtime, in wire order, with the core's own CAPA and no secret;
//! and a URL with the wrong scheme for the port is named as such.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::dovecot::{unique_user, Dovecot};

const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";

fn pop3() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null());
    command
}

fn ca_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("ca.pem");
    fs::write(&path, Dovecot::shared().ca_pem()).expect("write CA");
    path
}

#[test]
fn fetch_trace_is_the_wire_and_identical_on_every_runtime() {
    let dovecot = Dovecot::shared();
    let user = unique_user("trace");
    let password = format!("pw-{user}-secret");
    let mailbox = dovecot.add_user(&user, &password);
    for i in 0..3 {
        mailbox.add_message(format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let mut traces = Vec::new();
    for runtime in ["blocking", "tokio", "smol"] {
        // A fresh Maildir each time, so that each run fetches all three.
        let maildir = dir.path().join(format!("Mail-{runtime}"));
        let output = pop3()
            .env(PASSWORD_VAR, &password)
            .arg("-v")
            .arg("fetch")
            .arg(format!(
                "pop3s://{user}@127.0.0.1:{}",
                dovecot.tls_addr().port()
            ))
            .args([
                "--password-env",
                PASSWORD_VAR,
                "--runtime",
                runtime,
                "--auth",
                "user",
            ])
            .arg("--ca-file")
            .arg(&ca)
            .arg("--maildir")
            .arg(&maildir)
            .output()
            .expect("run pop3");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "{runtime}: {stderr}");
        assert!(
            !stderr.contains(&password),
            "{runtime}: the password leaked"
        );
        // The greeting's APOP timestamp is the only part that changes
        // from one connection to the next.
        let wire: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with("C: ") || l.starts_with("S: "))
            .map(|l| match (l.find('<'), l.rfind('>')) {
                (Some(a), Some(b)) if l.starts_with("S: +OK Dovecot") && a < b => {
                    format!("{}<timestamp>{}", &l[..a], &l[b + 1..])
                }
                _ => l.to_owned(),
            })
            .collect();
        traces.push((runtime, wire));
    }
    let (_, first) = &traces[0];
    let text = first.join("\n");
    assert!(text.contains(&format!("C: USER {user}")), "{text}");
    assert!(text.contains("C: PASS <redacted>"), "{text}");
    // The core asks CAPA itself before the burst of RETR, and the commands
    // appear as sent, with the replies after them.
    let capa = first
        .iter()
        .position(|l| l == "C: CAPA")
        .expect("core's CAPA");
    let first_retr = first
        .iter()
        .position(|l| l.starts_with("C: RETR"))
        .expect("a RETR");
    assert!(capa < first_retr, "{text}");
    assert!(first.iter().any(|l| l.starts_with("S: +OK")), "{text}");
    for (runtime, trace) in &traces[1..] {
        assert_eq!(trace, first, "{runtime} differs from blocking");
    }
}

#[test]
fn the_wrong_scheme_for_the_port_is_named() {
    let dovecot = Dovecot::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    // pop3s:// at the plain port: the TLS handshake meets a plain greeting.
    let url = format!("pop3s://someone@127.0.0.1:{}", dovecot.plain_addr().port());
    let output = pop3()
        .env(PASSWORD_VAR, "x")
        .arg(url)
        .args(["--password-env", PASSWORD_VAR, "--timeout", "10"])
        .arg("--ca-file")
        .arg(&ca)
        .arg("stat")
        .output()
        .expect("run pop3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("did not answer with TLS"), "{stderr}");
    // pop3:// (STLS) at the TLS port: the server waits for TLS and says
    // nothing; the time-out names the likely cause.
    let started = Instant::now();
    let url = format!("pop3://someone@127.0.0.1:{}", dovecot.tls_addr().port());
    let output = pop3()
        .env(PASSWORD_VAR, "x")
        .arg(url)
        .args(["--password-env", PASSWORD_VAR, "--timeout", "2"])
        .arg("stat")
        .output()
        .expect("run pop3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("pop3s://"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn fetch_through_a_socks5_proxy_names_the_server_to_the_proxy() {
    use test_support::socks5::{Behaviour, Socks5Config, Socks5Server};
    let dovecot = Dovecot::shared();
    let user = unique_user("proxy");
    let password = format!("pw-{user}");
    let mailbox = dovecot.add_user(&user, &password);
    mailbox.add_message(b"Subject: via proxy\r\n\r\nhello\r\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("pu", "pp"));
    for runtime in ["blocking", "tokio", "smol"] {
        let maildir = dir.path().join(format!("Mail-{runtime}"));
        let output = pop3()
            .env(PASSWORD_VAR, &password)
            .arg(format!(
                "pop3s://{user}@localhost:{}",
                dovecot.tls_addr().port()
            ))
            .args(["--password-env", PASSWORD_VAR, "--runtime", runtime])
            // The proxy's password from the environment: one in the URL is
            // refused (every user can read a command line).
            .env("PROXY_PW", "pp")
            .args(["--proxy-password-env", "PROXY_PW", "--proxy"])
            .arg(format!("socks5://pu@{}", proxy.addr()))
            .arg("--ca-file")
            .arg(&ca)
            .arg("fetch")
            .arg("--maildir")
            .arg(&maildir)
            .output()
            .expect("run pop3");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{runtime}: {stderr}");
        let stored = fs::read_dir(maildir.join("new")).expect("new/").count();
        assert_eq!(stored, 1, "{runtime}");
    }
    let requests = proxy.requests();
    assert_eq!(requests.len(), 3);
    for request in requests {
        // The name went to the proxy unresolved, with the proxy login.
        assert_eq!(
            (request.address_type, request.host.as_str()),
            (3, "localhost")
        );
        assert_eq!(request.credentials, Some(("pu".into(), "pp".into())));
    }
    // A proxy that answers garbage: exit 69, the proxy is named.
    let garbage = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Garbage(
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
    )));
    let output = pop3()
        .env(PASSWORD_VAR, &password)
        .arg(format!(
            "pop3s://{user}@localhost:{}",
            dovecot.tls_addr().port()
        ))
        .args(["--password-env", PASSWORD_VAR, "--timeout", "5"])
        .arg("--proxy")
        .arg(garbage.url(None))
        .arg("stat")
        .output()
        .expect("run pop3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("proxy"), "{stderr}");
}
