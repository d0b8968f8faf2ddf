//! The `pop3` binary against a real Dovecot and against scripted servers,
//! on all three runtimes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use test_support::dovecot::{unique_user, Dovecot, Mailbox};
use test_support::scripted::{ScriptConfig, ScriptedServer, Step};

mod common;
use common::{assert_code, run, stderr, stuffed, summary};

const RUNTIMES: [&str; 3] = ["blocking", "tokio", "smol"];
const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";

/// The test CA, written once to a file for `--ca-file`.
fn ca_file() -> &'static Path {
    static CA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        fs::write(&path, Dovecot::shared().ca_pem()).expect("write CA");
        (dir, path)
    });
    path
}

/// `pop3` with nothing inherited that could change its behaviour.
fn pop3() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        // No config file of the person running the tests.
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env_remove(PASSWORD_VAR)
        .stdin(Stdio::null());
    command
}

/// `pop3` logged in to Dovecot over implicit TLS as `mailbox`'s user.
fn dovecot_pop3(mailbox: &Mailbox, runtime: &str) -> Command {
    let dovecot = Dovecot::shared();
    let mut command = pop3();
    command
        .env(PASSWORD_VAR, mailbox.password())
        .arg(format!(
            "pop3s://{}@127.0.0.1:{}",
            mailbox.user(),
            dovecot.tls_addr().port()
        ))
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

/// A CRLF message with lines that need dot-stuffing and mbox quoting, about
/// `size` bytes long.
fn message(tag: &str, i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: message {i} of {tag}\r\n\
         Message-ID: <{i}.{tag}@test>\r\n\r\nbody of {i}\r\n.\r\n..two dots\r\n.leading dot\r\n\
         From the start of a line\r\n"
    )
    .into_bytes();
    let mut line = 0;
    while m.len() < size {
        m.extend_from_slice(format!("{tag} {i} line {line:06} {}\r\n", "x".repeat(60)).as_bytes());
        line += 1;
    }
    m
}

/// A new user with these messages; returns it and the messages.
fn mailbox_with(tag: &str, count: usize, size: usize) -> (Mailbox, Vec<Vec<u8>>) {
    let mailbox = Dovecot::shared().add_user(&unique_user(tag), "s3cret-pw");
    let messages: Vec<Vec<u8>> = (1..=count).map(|i| message(tag, i, size)).collect();
    for m in &messages {
        mailbox.add_message(m);
    }
    (mailbox, messages)
}

/// Contents of the files in `dir/new` and `dir/cur`, counted.
fn maildir_contents(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut contents = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let data = fs::read(entry.expect("entry").path()).expect("read");
            *contents.entry(data).or_insert(0) += 1;
        }
    }
    contents
}

/// The messages as a Maildir holds them (LF line endings), counted.
fn counted(messages: &[Vec<u8>]) -> BTreeMap<Vec<u8>, usize> {
    let mut contents = BTreeMap::new();
    for m in messages {
        let stored = String::from_utf8_lossy(m).replace("\r\n", "\n");
        *contents.entry(stored.into_bytes()).or_insert(0) += 1;
    }
    contents
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

// ----- retr, list, uidl, stat, top, capa -----

#[test]
fn retr_is_byte_exact_and_listings_work() {
    let (mailbox, messages) = mailbox_with("retr", 3, 20_000);
    let files = mailbox.message_files();
    for runtime in RUNTIMES {
        for (i, file) in files.iter().enumerate() {
            let out = run(dovecot_pop3(&mailbox, runtime).args(["retr", &(i + 1).to_string()]));
            assert_code(&out, 0);
            assert_eq!(
                out.stdout,
                fs::read(file).expect("read"),
                "{runtime} RETR {}",
                i + 1
            );
            assert_eq!(out.stdout, messages[i]);
        }
        let out = run(dovecot_pop3(&mailbox, runtime).args(["top", "2", "1"]));
        assert_code(&out, 0);
        let head_end = messages[1]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank line")
            + 4;
        assert_eq!(
            out.stdout,
            [&messages[1][..head_end], b"body of 2\r\n"].concat()
        );

        let out = run(dovecot_pop3(&mailbox, runtime).args(["--json", "list"]));
        assert_code(&out, 0);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(list[i]["msg"], i + 1);
            assert_eq!(list[i]["size"], m.len());
        }
        let out = run(dovecot_pop3(&mailbox, runtime).args(["stat"]));
        assert_code(&out, 0);
        let total: usize = messages.iter().map(Vec::len).sum();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("3 {total}\n"));
        let out = run(dovecot_pop3(&mailbox, runtime).args(["uidl", "2"]));
        assert_code(&out, 0);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("2 "));
        let out = run(dovecot_pop3(&mailbox, runtime).args(["--json", "capa"]));
        assert_code(&out, 0);
        let capa: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(capa["encrypted"], true);
        assert!(capa["capabilities"]
            .as_array()
            .expect("array")
            .iter()
            .any(|c| c == "UIDL"));
        // No such message: the server's -ERR.
        let out = run(dovecot_pop3(&mailbox, runtime).args(["retr", "99"]));
        assert_code(&out, 76);
        assert!(
            stderr(&out).starts_with("pop3: RETR 99: "),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn every_login_method_and_starttls() {
    let (mailbox, _) = mailbox_with("auth", 1, 100);
    for (i, auth) in [
        "auto",
        "user",
        "apop",
        "plain",
        "login",
        "cram-md5",
        "scram-sha-1",
        "scram-sha-256",
    ]
    .into_iter()
    .enumerate()
    {
        let runtime = RUNTIMES[i % 3];
        let out = run(dovecot_pop3(&mailbox, runtime).args(["--auth", auth, "stat"]));
        assert_code(&out, 0);
    }
    let dovecot = Dovecot::shared();
    for runtime in RUNTIMES {
        let out = run(pop3()
            .env(PASSWORD_VAR, mailbox.password())
            .arg(format!(
                "pop3://{}@127.0.0.1:{}",
                mailbox.user(),
                dovecot.plain_addr().port()
            ))
            .args([
                "--password-env",
                PASSWORD_VAR,
                "--runtime",
                runtime,
                "-v",
                "stat",
            ])
            .arg("--ca-file")
            .arg(ca_file()));
        assert_code(&out, 0);
        // -v: the trace, with the secret redacted.
        let trace = stderr(&out);
        assert!(
            trace.contains("C: AUTH SCRAM-SHA-256 <redacted>"),
            "{trace}"
        );
        assert!(trace.contains("C: STAT"), "{trace}");
        assert!(!trace.contains(mailbox.password()), "{trace}");
    }
    let out = run(dovecot_pop3(&mailbox, "blocking").args(["-v", "--auth", "user", "stat"]));
    assert_code(&out, 0);
    assert!(stderr(&out).contains("C: PASS <redacted>"));
    assert!(!stderr(&out).contains(mailbox.password()));
    // The password can come from a command too.
    let out = run(pop3()
        .arg(format!(
            "pop3s://{}@127.0.0.1:{}",
            mailbox.user(),
            dovecot.tls_addr().port()
        ))
        .arg("--password-command")
        .arg(format!("echo {}; echo ignored", mailbox.password()))
        .arg("--ca-file")
        .arg(ca_file())
        .arg("stat"));
    assert_code(&out, 0);
}

// ----- exit codes -----

#[test]
fn wrong_password_is_77() {
    let (mailbox, _) = mailbox_with("badpw", 1, 100);
    for runtime in RUNTIMES {
        let out = run(dovecot_pop3(&mailbox, runtime)
            .env(PASSWORD_VAR, "not-the-password")
            .arg("stat"));
        assert_code(&out, 77);
        let err = stderr(&out);
        assert!(
            err.starts_with("pop3: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(!err.contains("not-the-password"));
    }
}

#[test]
fn unknown_ca_is_78() {
    let (mailbox, _) = mailbox_with("noca", 1, 100);
    let dovecot = Dovecot::shared();
    for runtime in RUNTIMES {
        let out = run(pop3()
            .env(PASSWORD_VAR, mailbox.password())
            .arg(format!(
                "pop3s://{}@127.0.0.1:{}",
                mailbox.user(),
                dovecot.tls_addr().port()
            ))
            .args(["--password-env", PASSWORD_VAR, "--runtime", runtime, "stat"]));
        assert_code(&out, 78);
        assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    }
}

#[test]
fn plaintext_credentials_are_refused_before_anything_is_sent() {
    for runtime in RUNTIMES {
        let server = ScriptedServer::start(vec![Step::send_line("+OK ready"), Step::ExpectClose]);
        let out = run(pop3()
            .env(PASSWORD_VAR, "hunter2")
            .args(["--host", "127.0.0.1", "--port"])
            .arg(server.addr().port().to_string())
            .args([
                "--tls",
                "none",
                "--user",
                "alice",
                "--password-env",
                PASSWORD_VAR,
            ])
            .args(["--runtime", runtime, "stat"]));
        assert_code(&out, 77);
        assert!(
            stderr(&out).contains("--allow-plaintext-credentials"),
            "{}",
            stderr(&out)
        );
        let sent = server.join().expect("script followed");
        assert!(
            sent.is_empty(),
            "{runtime}: sent {:?}",
            String::from_utf8_lossy(&sent)
        );
    }
}

#[test]
fn usage_errors_are_64() {
    for args in [
        &["stat"][..],                              // no server
        &["retr"],                                  // no message number
        &["--host", "h", "retr", "0"],              // message 0
        &["fetch", "pop3s://u@h"],                  // no sink
        &["--host", "h", "--tls", "bogus", "stat"], // bad value
        &[
            "--host",
            "h",
            "--user",
            "u",
            "--password-env",
            "POP3_UNSET_VAR",
            "stat",
        ],
    ] {
        let out = run(pop3().args(args));
        assert_code(&out, 64);
        let err = stderr(&out);
        assert!(
            err.starts_with("pop3: ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let out = run(pop3().arg("--help"));
    assert_code(&out, 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for code in ["64", "65", "69", "74", "75", "76", "77", "78"] {
        assert!(help.contains(&format!("  {code}  ")), "{code} in --help");
    }
}

/// What an offline laptop meets (a refused connection,
/// a name that does not resolve) may pass by itself: exit 75
/// (`EX_TEMPFAIL`), which cron and systemd can tell from a failure.
#[test]
fn offline_is_temporary_75() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    for runtime in RUNTIMES {
        for host in ["127.0.0.1", "pop.example.invalid"] {
            let out = run(pop3()
                .env(PASSWORD_VAR, "x")
                .args(["--host", host, "--port", &port.to_string(), "--user", "u"])
                .args(["--password-env", PASSWORD_VAR, "--runtime", runtime, "stat"]));
            assert_code(&out, 75);
            let err = stderr(&out);
            assert!(
                err.starts_with(&format!("pop3: {host}:{port}: network: ")),
                "{runtime} {host}: {err}"
            );
            // Said once, though the library names it too.
            assert_eq!(
                err.matches(&format!("{host}:{port}")).count(),
                1,
                "{runtime} {host}: {err}"
            );
        }
    }
}

/// Gmail's user names have a colon (`recent:alice@gmail.com`). That prefix
/// is unambiguous, so its colon is the user's and the last `@` ends the user
/// name; written with %-escapes, it is the same user. (Any other colon reads
/// as a password and is refused: see `target::tests::urls`.)
#[test]
fn a_colon_in_the_urls_user_is_part_of_the_user_name() {
    for url_user in ["recent:alice@gmail.com", "recent%3Aalice%40gmail.com"] {
        let server = ScriptedServer::start(vec![
            Step::send_line("+OK ready"),
            Step::expect_line("CAPA"),
            Step::send_line("-ERR no CAPA here"),
            Step::expect_line("USER recent:alice@gmail.com"),
            Step::send_line("+OK"),
            Step::expect_line("PASS app-password"),
            Step::send_line("+OK in"),
            Step::expect_line("STAT"),
            Step::send_line("+OK 3 300"),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
        ]);
        let out = run(pop3()
            .env(PASSWORD_VAR, "app-password")
            .arg(format!(
                "pop3://{url_user}@127.0.0.1:{}",
                server.addr().port()
            ))
            .args(["--tls", "none", "--allow-plaintext-credentials"])
            .args(["--password-env", PASSWORD_VAR, "stat"]));
        assert_code(&out, 0);
        assert_eq!(common::stdout(&out), "3 300\n", "{url_user}");
        server.join().expect("script followed");
    }
}

/// A fetch of one account that fails prints the same
/// JSON error object on stdout as one account of several does.
#[test]
fn a_single_fetch_that_fails_prints_its_json_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(pop3()
        .env(PASSWORD_VAR, "x")
        .arg(format!("pop3s://u@127.0.0.1:{port}"))
        .args([
            "--password-env",
            PASSWORD_VAR,
            "--json",
            "fetch",
            "--maildir",
        ])
        .arg(dir.path().join("Mail")));
    assert_code(&out, 75);
    let object = summary(&out);
    assert_eq!(object["exit"], 75, "{object}");
    let error = object["error"].as_str().expect("error text");
    assert!(error.contains("network"), "{object}");
    assert!(object.get("account").is_none(), "{object}");
    // Named from the config file, the object names the account, as when
    // several are fetched.
    let config = dir.path().join("pop3.toml");
    fs::write(
        &config,
        format!(
            "[accounts.home]\nurl = \"pop3s://u@127.0.0.1:{port}\"\npassword_env = \"{PASSWORD_VAR}\"\n\
             maildir = {:?}\n",
            dir.path().join("Home")
        ),
    )
    .expect("write config");
    let out = run(pop3()
        .env(PASSWORD_VAR, "x")
        .arg("--config")
        .arg(&config)
        .args(["--account", "home", "--json", "fetch"]));
    assert_code(&out, 75);
    let object = summary(&out);
    assert_eq!(
        (&object["account"], &object["exit"]),
        (&"home".into(), &75.into()),
        "{object}"
    );
}

// ----- fetch -----

fn fetch(mailbox: &Mailbox, runtime: &str, maildir: &Path, extra: &[&str]) -> Output {
    run(dovecot_pop3(mailbox, runtime)
        .args(["--json", "fetch", "--maildir"])
        .arg(maildir)
        .args(extra))
}

#[test]
fn fetch_twice_fetches_nothing_new() {
    for runtime in RUNTIMES {
        let (mailbox, mut messages) = mailbox_with(&format!("twice-{runtime}"), 5, 3000);
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let out = fetch(&mailbox, runtime, &maildir, &[]);
        assert_code(&out, 0);
        assert_eq!(summary(&out)["fetched"], 5);
        assert_eq!(maildir_contents(&maildir), counted(&messages));
        let out = fetch(&mailbox, runtime, &maildir, &["--keep"]);
        assert_code(&out, 0);
        assert_eq!(summary(&out)["fetched"], 0);
        assert_eq!(maildir_contents(&maildir), counted(&messages));
        assert_eq!(mailbox.count(), 5, "--keep keeps");
        // A new message arrives: only it is fetched.
        let extra = message("twice-new", 6, 500);
        mailbox.add_message(&extra);
        messages.push(extra);
        let out = fetch(&mailbox, runtime, &maildir, &[]);
        assert_code(&out, 0);
        assert_eq!(summary(&out)["fetched"], 1);
        assert_eq!(maildir_contents(&maildir), counted(&messages));
        assert_eq!(count_files(&maildir.join("tmp")), 0);
        // The state is lost (or the process died after storing a message
        // but before recording its UID): the Maildir names still tell.
        fs::remove_dir_all(maildir.join("pop3-state")).expect("rm state");
        let out = fetch(&mailbox, runtime, &maildir, &[]);
        assert_code(&out, 0);
        assert_eq!(summary(&out)["fetched"], 0);
        assert_eq!(summary(&out)["recovered"], 6);
        assert_eq!(maildir_contents(&maildir), counted(&messages));
    }
}

#[test]
fn dele_is_all_or_nothing() {
    for runtime in RUNTIMES {
        let (mailbox, _) = mailbox_with(&format!("dele-{runtime}"), 3, 200);
        let out = run(dovecot_pop3(&mailbox, runtime).args(["dele", "1", "99"]));
        assert_code(&out, 76);
        assert!(
            stderr(&out).contains("nothing was deleted"),
            "{}",
            stderr(&out)
        );
        assert_eq!(mailbox.count(), 3);
        let out = run(dovecot_pop3(&mailbox, runtime).args(["dele", "1", "3"]));
        assert_code(&out, 0);
        assert_eq!(mailbox.count(), 1);
    }
}

#[test]
fn silent_server_times_out_with_75() {
    for runtime in RUNTIMES {
        let server = ScriptedServer::start(vec![Step::send_line("+OK hi"), Step::Stall]);
        let started = Instant::now();
        let out = run(pop3()
            .args(["--host", "127.0.0.1", "--port"])
            .arg(server.addr().port().to_string())
            .args([
                "--tls",
                "none",
                "--timeout",
                "1",
                "--runtime",
                runtime,
                "capa",
            ]));
        assert_code(&out, 75);
        assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(8));
        let _ = server.join();
    }
}

#[test]
fn fetch_delete_removes_only_what_was_saved() {
    for runtime in RUNTIMES {
        let (mailbox, messages) = mailbox_with(&format!("del-{runtime}"), 4, 2000);
        // The MDA refuses the third message.
        let refused = message("refuse-me FAIL-ME", 3, 100);
        mailbox.add_message(&refused);
        let dir = tempfile::tempdir().expect("tempdir");
        let out_dir = dir.path().join("delivered");
        fs::create_dir(&out_dir).expect("mkdir");
        let mda = r#"f=$(mktemp "$OUT/m.XXXXXX") && cat > "$f" && if grep -q FAIL-ME "$f"; then rm "$f"; exit 3; fi"#;
        let out = run(dovecot_pop3(&mailbox, runtime)
            .env("OUT", &out_dir)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .args(["fetch", "--delete", "--mda", mda]));
        assert_code(&out, 75);
        assert!(stderr(&out).contains("not stored"), "{}", stderr(&out));
        // Only the refused message is left on the server.
        let left = mailbox.message_files();
        assert_eq!(left.len(), 1, "{runtime}");
        assert_eq!(fs::read(&left[0]).expect("read"), refused);
        let mut delivered: Vec<Vec<u8>> = fs::read_dir(&out_dir)
            .expect("dir")
            .map(|e| fs::read(e.expect("entry").path()).expect("read"))
            .collect();
        delivered.sort();
        // The MDA got LF line endings (the default).
        let mut expected: Vec<Vec<u8>> = counted(&messages).into_keys().collect();
        expected.sort();
        assert_eq!(delivered, expected);

        // Into a Maildir with --delete: everything saved, server empty.
        let maildir = dir.path().join("Mail");
        let out = fetch(&mailbox, runtime, &maildir, &["--delete"]);
        assert_code(&out, 0);
        assert_eq!(summary(&out)["deleted"], 1);
        assert_eq!(mailbox.count(), 0);
        assert_eq!(maildir_contents(&maildir), counted(&[refused]));
    }
}

#[test]
fn fetch_into_mbox() {
    let (mailbox, messages) = mailbox_with("mbox", 2, 300);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("inbox.mbox");
    for _ in 0..2 {
        let out = run(dovecot_pop3(&mailbox, "tokio")
            .args(["fetch", "--mbox"])
            .arg(&mbox));
        assert_code(&out, 0);
    }
    let text = fs::read_to_string(&mbox).expect("mbox");
    assert_eq!(
        text.matches("\nFrom ").count() + usize::from(text.starts_with("From ")),
        2
    );
    assert_eq!(text.matches("\n>From the start of a line\n").count(), 2);
    assert!(!text.contains('\r'));
    assert!(text.contains(&String::from_utf8_lossy(&messages[1][..40]).replace("\r\n", "\n")));
}

fn login_steps() -> Vec<Step> {
    vec![
        Step::send_line("+OK scripted POP3 ready"),
        Step::expect_line("CAPA"),
        Step::send_line("-ERR no CAPA here"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("+OK logged in"),
    ]
}

/// `-ERR` to `UIDL` means "no UIDL" (every message is fetched) only when it
/// is plain and `CAPA` does not list UIDL. With UIDL listed, or with a
/// response code, the fetch stops as the reply says and fetches nothing.
#[test]
fn a_refused_uidl_means_no_uidl_only_when_plain_and_not_listed() {
    let capa = b"+OK\r\nUSER\r\nUIDL\r\n.\r\n".to_vec();
    let listed = vec![
        Step::send_line("+OK scripted POP3 ready"),
        Step::expect_line("CAPA"),
        Step::Send(capa.clone()),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("+OK logged in"),
        Step::expect_line("CAPA"),
        Step::Send(capa),
        Step::expect_line("UIDL"),
        Step::send_line("-ERR cannot list now"),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 100\r\n.\r\n".to_vec()),
        Step::ExpectClose,
    ];
    let mut temporary = login_steps();
    temporary.extend([
        Step::expect_line("UIDL"),
        Step::send_line("-ERR [SYS/TEMP] try later"),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 100\r\n.\r\n".to_vec()),
        Step::ExpectClose,
    ]);
    let body = message("nouidl", 1, 100);
    let mut plain = login_steps();
    plain.extend([
        Step::expect_line("UIDL"),
        Step::send_line("-ERR command not supported"),
        Step::expect_line("LIST"),
        Step::Send(format!("+OK\r\n1 {}\r\n.\r\n", body.len()).into_bytes()),
        Step::expect_line("RETR 1"),
        Step::Send([&b"+OK\r\n"[..], &stuffed(&body)].concat()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectClose,
    ]);
    for (steps, code, said) in [
        (listed, 76, Some("-ERR cannot list now")),
        (temporary, 75, Some("-ERR [SYS/TEMP] try later")),
        (plain, 0, None),
    ] {
        let server = ScriptedServer::start(steps);
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let out = run(pop3()
            .env(PASSWORD_VAR, "hunter2")
            .args(["--host", "127.0.0.1", "--port"])
            .arg(server.addr().port().to_string())
            .args(["--tls", "none", "--allow-plaintext-auth", "--user", "alice"])
            .args(["--password-env", PASSWORD_VAR, "fetch", "--maildir"])
            .arg(&maildir));
        assert_code(&out, code);
        let err = stderr(&out);
        match said {
            Some(said) => {
                assert!(
                    err.contains(&format!("UIDL: the server said {said}")),
                    "{err}"
                );
                assert_eq!(count_files(&maildir.join("new")), 0, "{err}");
            }
            None => assert_eq!(
                maildir_contents(&maildir),
                counted(std::slice::from_ref(&body))
            ),
        }
        server.join().expect("script followed");
    }
}

#[test]
fn server_disconnect_mid_fetch_then_resume() {
    let messages: Vec<Vec<u8>> = (1..=3).map(|i| message("disc", i, 30_000)).collect();
    let uidl = "+OK\r\n1 uid-one\r\n2 uid-two\r\n3 uid-three\r\n.\r\n";
    let list = format!(
        "+OK\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
        messages[0].len(),
        messages[1].len(),
        messages[2].len()
    );
    let retr = |i: usize| [&b"+OK message follows\r\n"[..], &stuffed(&messages[i])].concat();
    for runtime in RUNTIMES {
        let mut first = login_steps();
        first.extend([
            Step::expect_line("UIDL"),
            Step::Send(uidl.into()),
            Step::expect_line("LIST"),
            Step::Send(list.clone().into_bytes()),
            Step::expect_line("RETR 1"),
            Step::Send(retr(0)),
            Step::expect_line("RETR 2"),
            Step::Send(retr(1)[..15_000].to_vec()),
            Step::Close,
        ]);
        let mut second = login_steps();
        second.extend([
            Step::expect_line("UIDL"),
            Step::Send(uidl.into()),
            Step::expect_line("LIST"),
            Step::Send(list.clone().into_bytes()),
            Step::expect_line("RETR 2"),
            Step::Send(retr(1)),
            Step::expect_line("RETR 3"),
            Step::Send(retr(2)),
            Step::expect_line("QUIT"),
            Step::send_line("+OK bye"),
            Step::ExpectClose,
        ]);
        let server = ScriptedServer::start_sessions(vec![first, second], ScriptConfig::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let fetch = || {
            run(pop3()
                .env(PASSWORD_VAR, "hunter2")
                .args(["--host", "127.0.0.1", "--port"])
                .arg(server.addr().port().to_string())
                .args(["--tls", "none", "--allow-plaintext-auth", "--user", "alice"])
                .args(["--password-env", PASSWORD_VAR, "--runtime", runtime])
                .args(["fetch", "--maildir"])
                .arg(&maildir))
        };
        let out = fetch();
        assert_code(&out, 69);
        assert_eq!(
            maildir_contents(&maildir),
            counted(&messages[..1]),
            "{runtime}"
        );
        assert_eq!(count_files(&maildir.join("tmp")), 0);
        let out = fetch();
        assert_code(&out, 0);
        server.join().expect("the client followed both scripts");
        assert_eq!(maildir_contents(&maildir), counted(&messages), "{runtime}");
    }
}

#[test]
fn sigkill_mid_fetch_loses_nothing_and_duplicates_nothing() {
    const COUNT: usize = 300;
    const SIZE: usize = 200 * 1024;
    for runtime in RUNTIMES {
        let (mailbox, messages) = mailbox_with(&format!("kill-{runtime}"), COUNT, SIZE);
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let mut child = dovecot_pop3(&mailbox, runtime)
            .args(["fetch", "--maildir"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(120);
        while count_files(&maildir.join("new")) < 3 {
            assert!(Instant::now() < deadline, "{runtime}: no message arrived");
            assert!(
                child.try_wait().expect("wait").is_none(),
                "{runtime}: exited early"
            );
            thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        let saved = count_files(&maildir.join("new"));
        assert!(
            saved < COUNT,
            "{runtime}: the fetch finished before the kill"
        );
        let out = fetch(&mailbox, runtime, &maildir, &[]);
        if out.status.code() != Some(0) {
            // Which side ended the session, and how, is only in Dovecot's
            // log (a flake on a loaded machine is otherwise undiagnosable).
            let log = Dovecot::shared().log();
            let ours: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(mailbox.user()) || l.contains("master:"))
                .collect();
            eprintln!(
                "{runtime}: Dovecot's log of this user:\n{}",
                ours.join("\n")
            );
        }
        assert_code(&out, 0);
        let s = summary(&out);
        let fetched = s["fetched"].as_u64().expect("n") as usize;
        let recovered = s["recovered"].as_u64().expect("n") as usize;
        eprintln!("{runtime}: killed with {saved} messages in new/; then {s}");
        // What was in new/ is not downloaded again (at most one batch of
        // those files had no UID recorded yet: they are recognised by their
        // names).
        assert_eq!(fetched, COUNT - saved, "{runtime}: {s}");
        assert!(recovered <= 128, "{runtime}: {s}");
        assert_eq!(maildir_contents(&maildir), counted(&messages), "{runtime}");
        assert_eq!(count_files(&maildir.join("tmp")), 0);
        assert_eq!(count_files(&maildir.join("new")), COUNT);
    }
}

// ----- rough edges -----

#[test]
fn missing_arguments_are_named_and_the_url_goes_anywhere() {
    let out = run(pop3().args(["--host", "h", "top", "3"]));
    assert_code(&out, 64);
    let err = stderr(&out);
    assert!(err.lines().count() == 1 && err.contains("<LINES>"), "{err}");
    // The URL after the command, for every command.
    let (mailbox, _) = mailbox_with("urlafter", 2, 100);
    let dovecot = Dovecot::shared();
    let url = format!(
        "pop3s://{}@127.0.0.1:{}",
        mailbox.user(),
        dovecot.tls_addr().port()
    );
    for args in [
        &["stat", &url][..],
        &["list", &url, "2"],
        &["list", "2", &url],
    ] {
        let out = run(pop3()
            .env(PASSWORD_VAR, mailbox.password())
            .args(args)
            .args(["--password-env", PASSWORD_VAR, "--ca-file"])
            .arg(ca_file()));
        assert_code(&out, 0);
    }
    // --runtime works but is not advertised.
    let out = run(pop3().arg("--help"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("--runtime"));
}

#[test]
fn state_is_keyed_by_user_and_host_and_older_files_migrate() {
    let (mailbox, messages) = mailbox_with("statekey", 3, 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let out = fetch(&mailbox, "blocking", &maildir, &[]);
    assert_code(&out, 0);
    let state_dir = maildir.join("pop3-state");
    let new_name = format!("{}@127.0.0.1", mailbox.user());
    let state = fs::read_to_string(state_dir.join(&new_name)).expect("state user@host");
    assert_eq!(state.lines().count(), 3);
    // An older pop3 kept it as user@host:port, one UID per line.
    let uids: String = state
        .lines()
        .map(|l| format!("{}\n", l.split(' ').next().expect("uid")))
        .collect();
    fs::remove_file(state_dir.join(&new_name)).expect("rm");
    fs::write(state_dir.join(format!("{new_name}:995")), uids).expect("write");
    // Also forget the Maildir names, so only the migrated state can tell.
    let other = dir.path().join("Other");
    fs::create_dir_all(other.join("new")).expect("mkdir");
    fs::rename(maildir.join("pop3-state"), other.join("pop3-state")).expect("mv");
    let out = fetch(&mailbox, "blocking", &other, &[]);
    assert_code(&out, 0);
    assert_eq!(summary(&out)["fetched"], 0, "{}", stderr(&out));
    assert!(!other
        .join("pop3-state")
        .join(format!("{new_name}:995"))
        .exists());
    assert_eq!(maildir_contents(&maildir), counted(&messages));
}

#[test]
fn destinations_are_checked_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there: a connection attempt would be exit 75.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let base = |sink: &str, path: &Path| {
        run(pop3()
            .env(PASSWORD_VAR, "x")
            .arg(format!("pop3s://u@127.0.0.1:{port}"))
            .args(["--password-env", PASSWORD_VAR, "fetch", sink])
            .arg(path))
    };
    let typo = dir.path().join("no-such-dir").join("Mail");
    let out = base("--maildir", &typo);
    assert_code(&out, 74);
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
    assert!(!typo.exists() && !dir.path().join("no-such-dir").exists());
    let out = base("--mbox", &typo);
    assert_code(&out, 74);
    // A missing Maildir whose parent exists passes the check, and is
    // created only once logged in: the connection fails, nothing is made.
    let fresh = dir.path().join("Fresh");
    let out = base("--maildir", &fresh);
    assert_code(&out, 75);
    assert!(!fresh.exists());
    // IPv6 addresses are written with brackets.
    let out = run(pop3()
        .env(PASSWORD_VAR, "x")
        .arg(format!("pop3s://u@[::1]:{port}"))
        .args(["--password-env", PASSWORD_VAR, "stat"]));
    assert_code(&out, 75);
    assert!(
        stderr(&out).contains(&format!("[::1]:{port}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mda_that_cannot_run_stops_the_fetch() {
    let (mailbox, _) = mailbox_with("mda127", 3, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let not_executable = dir.path().join("deliver.txt");
    fs::write(&not_executable, "cat > /dev/null\n").expect("write");
    let not_executable = not_executable.to_string_lossy().into_owned();
    for (mda, code) in [
        ("/nonexistent/deliver", "127"),
        (&not_executable[..], "126"),
    ] {
        let out = run(dovecot_pop3(&mailbox, "blocking")
            .env("XDG_STATE_HOME", dir.path())
            .args(["fetch", "--delete", "--mda", mda]));
        assert_code(&out, 64);
        let err = stderr(&out);
        assert!(err.contains(code) && err.contains("cannot be run"), "{err}");
        assert_eq!(mailbox.count(), 3, "nothing deleted");
    }
}

#[test]
fn lost_connection_says_so_and_what_was_saved() {
    let messages: Vec<Vec<u8>> = (1..=2).map(|i| message("lost", i, 3_000)).collect();
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("UIDL"),
        Step::Send(b"+OK\r\n1 u1\r\n2 u2\r\n.\r\n".to_vec()),
        Step::expect_line("LIST"),
        Step::Send(
            format!(
                "+OK\r\n1 {}\r\n2 {}\r\n.\r\n",
                messages[0].len(),
                messages[1].len()
            )
            .into_bytes(),
        ),
        Step::expect_line("RETR 1"),
        Step::Send([&b"+OK\r\n"[..], &stuffed(&messages[0])].concat()),
        Step::expect_line("RETR 2"),
        Step::Send(b"+OK\r\nFrom: x\r\n".to_vec()),
        Step::Close,
    ]);
    let server = ScriptedServer::start(steps);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(pop3()
        .env(PASSWORD_VAR, "hunter2")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.addr().port().to_string())
        .args(["--tls", "none", "--allow-plaintext-auth", "--user", "alice"])
        .args(["--password-env", PASSWORD_VAR, "fetch", "--maildir"])
        .arg(dir.path().join("Mail")));
    assert_code(&out, 69);
    let err = stderr(&out);
    assert!(err.contains("connection was lost"), "{err}");
    assert!(
        err.contains("1 message(s) saved") && err.contains("1 left"),
        "{err}"
    );
    let _ = server.join();
}

#[test]
fn ctrl_c_says_what_was_saved() {
    let messages: Vec<Vec<u8>> = (1..=2).map(|i| message("sigint", i, 3_000)).collect();
    let mut steps = login_steps();
    steps.extend([
        Step::expect_line("UIDL"),
        Step::Send(b"+OK\r\n1 u1\r\n2 u2\r\n.\r\n".to_vec()),
        Step::expect_line("LIST"),
        Step::Send(b"+OK\r\n1 3000\r\n2 3000\r\n.\r\n".to_vec()),
        Step::expect_line("RETR 1"),
        Step::Send([&b"+OK\r\n"[..], &stuffed(&messages[0])].concat()),
        Step::expect_line("RETR 2"),
        Step::Stall,
    ]);
    let server = ScriptedServer::start(steps);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let child = pop3()
        .env(PASSWORD_VAR, "hunter2")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.addr().port().to_string())
        .args(["--tls", "none", "--allow-plaintext-auth", "--user", "alice"])
        .args(["--password-env", PASSWORD_VAR, "fetch", "--maildir"])
        .arg(&maildir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_files(&maildir.join("new")) < 1 {
        assert!(Instant::now() < deadline, "message 1 never arrived");
        thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert_code(&out, 130);
    let err = stderr(&out);
    assert!(
        err.contains("interrupted") && err.contains("1 message(s) saved"),
        "{err}"
    );
    assert_eq!(maildir_contents(&maildir), counted(&messages[..1]));
    drop(server);
}

// ----- config file -----

#[test]
fn accounts_from_a_config_file() {
    let dovecot = Dovecot::shared();
    let (alpha, alpha_messages) = mailbox_with("cfg-alpha", 2, 400);
    let (beta, beta_messages) = mailbox_with("cfg-beta", 3, 400);
    let dir = tempfile::tempdir().expect("tempdir");
    let config_dir = dir.path().join("xdg").join("pop3");
    fs::create_dir_all(&config_dir).expect("mkdir");
    let port = dovecot.tls_addr().port();
    // beta first: the file's order is the fetch order.
    let text = format!(
        "[defaults]\nca_file = {ca:?}\ntimeout = 60\n\n\
         [accounts.beta]\nurl = \"pop3s://{bu}@127.0.0.1:{port}\"\n\
         password_command = \"echo {bp}\"\nmaildir = {bm:?}\n\n\
         [accounts.alpha]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{au}\"\n\
         password_env = \"ALPHA_PW\"\nmaildir = {am:?}\ndelete = true\n",
        ca = ca_file(),
        bu = beta.user(),
        bp = beta.password(),
        bm = dir.path().join("beta"),
        au = alpha.user(),
        am = dir.path().join("alpha"),
    );
    fs::write(config_dir.join("config.toml"), text).expect("write config");
    let with_config = || {
        let mut command = pop3();
        command
            .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
            .env("ALPHA_PW", alpha.password());
        command
    };
    let out = run(with_config().args(["--json", "fetch"]));
    assert_code(&out, 0);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["account"], "beta");
    assert_eq!(lines[0]["fetched"], 3);
    assert_eq!(lines[1]["account"], "alpha");
    assert_eq!(lines[1]["fetched"], 2);
    assert_eq!(lines[1]["deleted"], 2);
    assert_eq!(lines[1]["left_on_server"], 0);
    // Dovecot keeps mail for later sessions (no EXPIRE 0): one session
    // each, although every message was new.
    assert_eq!(lines[0]["sessions"], 1);
    assert_eq!(lines[1]["sessions"], 1);
    assert_eq!(alpha.count(), 0, "alpha has delete = true");
    assert_eq!(beta.count(), 3);
    assert_eq!(
        maildir_contents(&dir.path().join("beta")),
        counted(&beta_messages)
    );
    assert_eq!(
        maildir_contents(&dir.path().join("alpha")),
        counted(&alpha_messages)
    );
    // By name; and the command line overrides the file.
    let other = dir.path().join("other");
    let out = run(with_config()
        .args([
            "--json",
            "--account",
            "beta",
            "fetch",
            "--keep",
            "--maildir",
        ])
        .arg(&other));
    assert_code(&out, 0);
    assert_eq!(summary(&out)["fetched"], 3);
    let out = run(with_config().args(["--json", "fetch", "beta"]));
    assert_code(&out, 0);
    assert_eq!(summary(&out)["fetched"], 0);
    let out = run(with_config().args(["--account", "beta", "stat"]));
    assert_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("3 "));
    let out = run(with_config().args(["fetch", "gamma"]));
    assert_code(&out, 64);
    assert!(
        stderr(&out).contains("no account \"gamma\""),
        "{}",
        stderr(&out)
    );

    // Mistakes name the file, the line and the key, before connecting.
    let bad = dir.path().join("bad.toml");
    fs::write(
        &bad,
        "[accounts.x]\nhost = \"127.0.0.1\"\nport = 1\npassword = \"no\"\n",
    )
    .expect("write");
    let out = run(pop3().arg("--config").arg(&bad).arg("fetch"));
    assert_code(&out, 64);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:4: password:", bad.display())) && err.lines().count() == 1,
        "{err}"
    );
    fs::write(
        &bad,
        "[accounts.x]\nhost = \"127.0.0.1\"\nport = 1\ndelete = \"yes\"\n",
    )
    .expect("write");
    let out = run(pop3().arg("--config").arg(&bad).arg("fetch"));
    assert_code(&out, 64);
    assert!(
        stderr(&out).contains("bad.toml:4: delete:"),
        "{}",
        stderr(&out)
    );
}

// ----- group commit -----

/// The UIDs in the Maildir's state files, each as often as it is recorded.
fn recorded(maildir: &Path) -> Vec<String> {
    recorded_in(&maildir.join("pop3-state"))
}

/// The UIDs in the state files in `dir`, each as often as it is recorded.
fn recorded_in(dir: &Path) -> Vec<String> {
    let mut uids = Vec::new();
    for entry in fs::read_dir(dir).expect("state dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if [".lock", ".tmp", ".mbox-pending", ".maildir-pending"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        {
            continue;
        }
        let text = fs::read_to_string(&path).expect("state");
        uids.extend(
            text.lines()
                .map(|l| l.split(' ').next().unwrap_or("").to_owned()),
        );
    }
    uids.sort();
    uids
}

/// A blocking fetch into `destination` (`--maildir` or `--mbox`) `path`, in
/// batches of 3, that dies at `step` (`POP3_TEST_CRASH_AT`, debug builds)
/// and so must not exit.
fn fetch_crashing_at(mailbox: &Mailbox, step: &str, destination: &str, path: &Path) {
    let out = run(dovecot_pop3(mailbox, "blocking")
        .env("POP3_TEST_CRASH_AT", step)
        .env("POP3_TEST_BATCH", "3")
        .args(["--json", "fetch", destination])
        .arg(path));
    assert_eq!(
        out.status.code(),
        None,
        "{step}: it did not crash: {}",
        stderr(&out)
    );
}

/// A fetch that dies between any two steps of storing a batch (files
/// written, synced, linked into new/, new/ synced, UIDs appended, state
/// synced), at the first and at a later batch, followed by a normal fetch:
/// every message is stored exactly once, each UID recorded once, and
/// nothing is left in tmp/.
#[test]
fn a_crash_between_any_two_steps_of_a_batch_loses_and_repeats_nothing() {
    const COUNT: usize = 10;
    let (mailbox, messages) = mailbox_with("crash-steps", COUNT, 1500);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut complete: Option<Vec<String>> = None;
    for step in [
        "received",
        "synced",
        "linked",
        "dir-synced",
        "appended",
        "recorded",
    ] {
        for n in [1, 3] {
            let what = format!("crash at {step}:{n}");
            let maildir = dir.path().join(format!("{step}-{n}"));
            fetch_crashing_at(&mailbox, &format!("{step}:{n}"), "--maildir", &maildir);
            let before = maildir_contents(&maildir);
            assert!(before.values().all(|&c| c == 1), "{what}");
            let out = fetch(&mailbox, "blocking", &maildir, &[]);
            assert_code(&out, 0);
            let s = summary(&out);
            let fetched = s["fetched"].as_u64().expect("n") as usize;
            let recovered = s["recovered"].as_u64().expect("n") as usize;
            // What was in new/ is recognised (recovered), not fetched again.
            assert_eq!(fetched, COUNT - before.len(), "{what}: {s}");
            assert!(recovered <= 3, "{what}: {s}");
            assert_eq!(maildir_contents(&maildir), counted(&messages), "{what}");
            assert_eq!(count_files(&maildir.join("tmp")), 0, "{what}");
            let uids = recorded(&maildir);
            let mut unique = uids.clone();
            unique.dedup();
            assert_eq!(uids, unique, "{what}: a UID recorded twice");
            assert_eq!(uids.len(), COUNT, "{what}");
            if let Some(all) = &complete {
                assert_eq!(&uids, all, "{what}");
            }
            complete = Some(uids);
            let out = fetch(&mailbox, "blocking", &maildir, &[]);
            assert_code(&out, 0);
            assert_eq!(summary(&out)["fetched"], 0, "{what}");
        }
    }
}

/// Files an interrupted fetch linked into new/ without syncing the
/// directory are made durable before they count as stored: when that sync
/// fails, `--delete` deletes nothing; once it succeeds, they are recovered
/// and deleted from the server.
#[test]
fn recovered_files_are_synced_before_a_delete() {
    const COUNT: usize = 6;
    let (mailbox, messages) = mailbox_with("recover-sync", COUNT, 1500);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    fetch_crashing_at(&mailbox, "linked:1", "--maildir", &maildir);
    assert_eq!(count_files(&maildir.join("new")), 3);
    let out = run(dovecot_pop3(&mailbox, "blocking")
        .env("POP3_TEST_FAIL_AT", "recover-sync:1")
        .args(["--json", "fetch", "--delete", "--maildir"])
        .arg(&maildir));
    assert_code(&out, 74);
    assert!(stderr(&out).contains("new"), "{}", stderr(&out));
    assert_eq!(
        mailbox.message_files().len(),
        COUNT,
        "deleted before the sync"
    );
    let out = fetch(&mailbox, "blocking", &maildir, &["--delete"]);
    assert_code(&out, 0);
    assert_eq!(summary(&out)["recovered"], 3, "{}", common::stdout(&out));
    assert_eq!(maildir_contents(&maildir), counted(&messages));
    assert!(mailbox.message_files().is_empty());
}

/// `message` as an mbox entry holds it: LF line ends, `>*From ` lines
/// quoted with one more `>`.
fn mboxrd_body(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let text = text.strip_suffix("\r\n").unwrap_or(&text);
    text.split("\r\n")
        .map(|line| {
            if line.trim_start_matches('>').starts_with("From ") {
                format!(">{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many entries the mbox at `path` holds, and how many times it holds
/// each of `messages`.
fn mbox_contents(path: &Path, messages: &[Vec<u8>]) -> (usize, Vec<usize>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let entries = text.matches("\n\nFrom ").count() + usize::from(text.starts_with("From "));
    let each = messages
        .iter()
        .map(|m| text.matches(&format!("\n{}\n\n", mboxrd_body(m))).count())
        .collect();
    (entries, each)
}

/// The same for an mbox: a fetch that dies between any two steps of
/// appending a batch (entries staged, intent synced, entries written, mbox
/// synced, UIDs appended, state synced), at the first and at a later batch,
/// then a normal fetch: every message is in the mbox exactly once, each UID
/// is recorded once, and what the dead fetch appended is recognised (by the
/// intent) rather than fetched again.
#[test]
fn a_crash_between_any_two_steps_of_an_mbox_batch_loses_and_repeats_nothing() {
    const COUNT: usize = 10;
    let (mailbox, messages) = mailbox_with("crash-mbox", COUNT, 1500);
    let dir = tempfile::tempdir().expect("tempdir");
    for step in [
        "received", "intent", "written", "synced", "appended", "recorded",
    ] {
        for n in [1, 3] {
            let what = format!("crash at {step}:{n}");
            let mbox = dir.path().join(format!("{step}-{n}.mbox"));
            let state = dir.path().join(format!("{step}-{n}.mbox.pop3-state"));
            let crashed = || {
                run(dovecot_pop3(&mailbox, "blocking")
                    .env("POP3_TEST_CRASH_AT", format!("{step}:{n}"))
                    .env("POP3_TEST_BATCH", "3")
                    .args(["--json", "fetch", "--mbox"])
                    .arg(&mbox))
            };
            let fetch_mbox = || {
                run(dovecot_pop3(&mailbox, "blocking")
                    .args(["--json", "fetch", "--mbox"])
                    .arg(&mbox))
            };
            let out = crashed();
            assert_eq!(
                out.status.code(),
                None,
                "{what}: it did not crash: {}",
                stderr(&out)
            );
            let (before, each) = mbox_contents(&mbox, &messages);
            assert!(each.iter().all(|&c| c <= 1), "{what}: {each:?}");
            assert_eq!(each.iter().sum::<usize>(), before, "{what}");
            let out = fetch_mbox();
            assert_code(&out, 0);
            let s = summary(&out);
            let fetched = s["fetched"].as_u64().expect("n") as usize;
            let recovered = s["recovered"].as_u64().expect("n") as usize;
            assert_eq!(fetched, COUNT - before, "{what}: {s}");
            assert!(recovered <= 3, "{what}: {s}");
            let (entries, each) = mbox_contents(&mbox, &messages);
            assert_eq!(entries, COUNT, "{what}");
            assert!(each.iter().all(|&c| c == 1), "{what}: {each:?}");
            let uids = recorded_in(&state);
            let mut unique = uids.clone();
            unique.dedup();
            assert_eq!(uids, unique, "{what}: a UID recorded twice");
            assert_eq!(uids.len(), COUNT, "{what}");
            let out = fetch_mbox();
            assert_code(&out, 0);
            assert_eq!(summary(&out)["fetched"], 0, "{what}");
            assert_eq!(summary(&out)["recovered"], 0, "{what}");
            assert_eq!(mbox_contents(&mbox, &messages).0, COUNT, "{what}");
        }
    }
}

/// A leftover intent is checked against the bytes, not trusted: entries it
/// names that are not in the mbox at their offset (the append never
/// happened, or another program changed the mbox) are fetched again, those
/// that are are recorded, and the mbox is never cut.
#[test]
fn an_mbox_intent_is_checked_against_the_mbox() {
    const COUNT: usize = 6;
    let (mailbox, messages) = mailbox_with("intent-check", COUNT, 800);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("in.mbox");
    // A fetch that dies right after its second batch is written: its
    // entries are in the mbox, their UIDs are not recorded.
    fetch_crashing_at(&mailbox, "written:2", "--mbox", &mbox);
    let state = dir.path().join("in.mbox.pop3-state");
    let intent = fs::read_dir(&state)
        .expect("state dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".mbox-pending"))
        .expect("an intent file");
    let text = fs::read_to_string(&intent).expect("intent");
    assert_eq!(text.lines().count(), 3, "{text}");
    // Another program rewrites the last entry (same length, other bytes)
    // and appends a message of its own.
    let mut data = fs::read(&mbox).expect("mbox");
    let last = data.len() - 3;
    data[last] = if data[last] == b'x' { b'y' } else { b'x' };
    data.extend_from_slice(b"From someone Thu Jan  1 00:00:00 1970\nSubject: mine\n\nhi\n\n");
    fs::write(&mbox, &data).expect("write mbox");
    let out = run(dovecot_pop3(&mailbox, "blocking")
        .args(["--json", "fetch", "--mbox"])
        .arg(&mbox));
    assert_code(&out, 0);
    let s = summary(&out);
    // Two of the second batch recognised, the changed one fetched again.
    assert_eq!(s["recovered"], 2, "{s}");
    assert_eq!(s["fetched"], 1, "{s}");
    let after = fs::read(&mbox).expect("mbox");
    assert!(after.starts_with(&data), "the mbox was cut or rewritten");
    let (entries, each) = mbox_contents(&mbox, &messages);
    assert_eq!(entries, COUNT + 2, "one changed copy and one foreign entry");
    assert_eq!(each[..COUNT - 1], [1; COUNT - 1][..]);
    assert_eq!(each[COUNT - 1], 1, "the changed one is there again, intact");
    assert_eq!(recorded_in(&state).len(), COUNT);
}

// ----- policies -----

#[test]
fn size_limits_max_messages_and_filter() {
    let mailbox = Dovecot::shared().add_user(&unique_user("policy"), "s3cret-pw");
    let sizes = [1000, 6000, 1200, 1100, 9000];
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| message("policy", i + 1, size))
        .collect();
    for m in &messages {
        mailbox.add_message(m);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    // Over 8k: deleted unfetched; over 4k: left and reported; then at most 2.
    let out = fetch(
        &mailbox,
        "blocking",
        &maildir,
        &[
            "--max-size",
            "4k",
            "--delete-bigger-than",
            "8k",
            "--max-messages",
            "2",
        ],
    );
    assert_code(&out, 0);
    let s = summary(&out);
    assert_eq!(
        (s["fetched"].as_u64(), s["too_big"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        (s["skipped"].as_u64(), s["deleted"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["left_on_server"], 4);
    assert_eq!(mailbox.count(), 4);
    assert_eq!(
        maildir_contents(&maildir),
        counted(&[messages[0].clone(), messages[2].clone()])
    );
    // The filter reads the headers: 2 skips, 1 deletes (with --delete).
    let filter = r#"h=$(cat); case "$h" in *"message 3 of"*) echo delete;; *"message 4 of"*) echo skip;; esac"#;
    let out = fetch(
        &mailbox,
        "blocking",
        &maildir,
        &["--filter", filter, "--max-size", "4k", "--delete"],
    );
    assert_code(&out, 0);
    let s = summary(&out);
    // Message 4 is skipped; 1 and 3 were stored before and are deleted now.
    assert_eq!(s["fetched"], 0, "{s}");
    assert_eq!(s["skipped"], 1, "{s}");
    assert_eq!(s["deleted"], 2, "{s}");
    assert_eq!(
        mailbox.count(),
        2,
        "message 2 (too big) and 4 (skipped) are left"
    );
    let out = fetch(
        &mailbox,
        "blocking",
        &maildir,
        &["--filter", "echo delete", "--delete"],
    );
    assert_code(&out, 0);
    assert_eq!(
        summary(&out)["deleted"],
        2,
        "delete with --delete deletes unfetched"
    );
    assert_eq!(mailbox.count(), 0);
    assert_eq!(count_files(&maildir.join("new")), 2);
    // A filter that fails stops the fetch.
    mailbox.add_message(&messages[0]);
    let out = fetch(
        &mailbox,
        "blocking",
        &maildir,
        &["--filter", "exit 7", "--delete"],
    );
    assert_code(&out, 75);
    assert!(stderr(&out).contains("--filter failed"), "{}", stderr(&out));
    assert_eq!(mailbox.count(), 1);
}

#[test]
fn keep_days_deletes_what_was_stored_long_enough_ago() {
    let (mailbox, messages) = mailbox_with("keepdays", 3, 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let out = fetch(&mailbox, "blocking", &maildir, &["--keep-days", "2"]);
    assert_code(&out, 0);
    assert_eq!(summary(&out)["deleted"], 0);
    assert_eq!(mailbox.count(), 3);
    // Make two of them three days old.
    let state = maildir
        .join("pop3-state")
        .join(format!("{}@127.0.0.1", mailbox.user()));
    let text = fs::read_to_string(&state).expect("state");
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        - 3 * 86_400;
    let aged: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let uid = l.split(' ').next().expect("uid");
            if i < 2 {
                format!("{uid} {old}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&state, aged).expect("write");
    let out = fetch(&mailbox, "blocking", &maildir, &["--keep-days", "2"]);
    assert_code(&out, 0);
    assert_eq!(summary(&out)["deleted"], 2);
    assert_eq!(mailbox.count(), 1);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
}

/// A server's `LOGIN-DELAY`, asked for with `--respect-login-delay`, is
/// remembered per user, host and port, and capped.
fn login_delay_session(delay: &str) -> ScriptedServer {
    let capa = format!("+OK\r\nUSER\r\nLOGIN-DELAY {delay}\r\n.\r\n").into_bytes();
    ScriptedServer::start(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::Send(capa.clone()),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("+OK in"),
        // The core asks again after login (capabilities may change).
        Step::expect_line("CAPA"),
        Step::Send(capa),
        Step::expect_line("STAT"),
        Step::send_line("+OK 0 0"),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectClose,
    ])
}

#[test]
fn login_delay_is_remembered_and_busy_mailboxes_are_75() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stat = |port: u16, extra: &[&str]| {
        run(pop3()
            .env(PASSWORD_VAR, "hunter2")
            .env("XDG_STATE_HOME", dir.path())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--tls",
                "none",
                "--allow-plaintext-credentials",
                "--user",
                "alice",
            ])
            .args(extra)
            .args(["--password-env", PASSWORD_VAR, "stat"]))
    };
    // A hostile delay is remembered as at most an hour.
    let server = login_delay_session("18446744073709551615");
    let port = server.addr().port();
    let first = stat(port, &[]);
    server.join().expect("script followed");
    assert_code(&first, 0);
    // Private like every file pop3 makes, whatever the umask: it tells
    // when the user last fetched mail.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &std::path::Path| {
            fs::metadata(path).expect("exists").permissions().mode() & 0o777
        };
        let login = dir.path().join("pop3").join("login");
        assert_eq!(mode(&dir.path().join("pop3")), 0o700);
        assert_eq!(mode(&login), 0o700);
        for entry in fs::read_dir(&login).expect("login dir") {
            assert_eq!(mode(&entry.expect("entry").path()), 0o600);
        }
    }
    // Asked for: the refusal comes before connecting (nothing listens now).
    let out = stat(port, &["--respect-login-delay"]);
    assert_code(&out, 75);
    let err = stderr(&out);
    assert!(err.contains("LOGIN-DELAY"), "{err}");
    let wait: u64 = err
        .split("try again in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {err}"));
    assert!((3590..=3600).contains(&wait), "{err}");
    // Not asked for: it connects (and finds nothing listening, which is
    // also 75, but says so).
    let out = stat(port, &[]);
    assert_code(&out, 75);
    let err = stderr(&out);
    assert!(
        err.contains("network") && !err.contains("LOGIN-DELAY"),
        "{err}"
    );
    // Another server on the same host is not held back by this one's delay.
    let other = login_delay_session("900");
    let out = stat(other.addr().port(), &["--respect-login-delay"]);
    other.join().expect("script followed");
    assert_code(&out, 0);

    let busy = ScriptedServer::start(vec![
        Step::send_line("+OK ready"),
        Step::expect_line("CAPA"),
        Step::send_line("-ERR no"),
        Step::expect_line("USER bob"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("-ERR [IN-USE] locked"),
    ]);
    let out = run(pop3()
        .env(PASSWORD_VAR, "hunter2")
        .env("XDG_STATE_HOME", dir.path())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &busy.addr().port().to_string(),
        ])
        .args(["--tls", "none", "--allow-plaintext-auth", "--user", "bob"])
        .args(["--password-env", PASSWORD_VAR, "stat"]));
    assert_code(&out, 75);
    assert!(
        stderr(&out).contains("in use by another session"),
        "{}",
        stderr(&out)
    );
    let _ = busy.join();
}

// ----- packaging -----

/// `generate man` writes pop3(1) with every command's
/// options and pop3-config(5) with the config keys, and names no page it
/// does not write; put where README.md says, `man pop3` finds them, and
/// `man` renders them (where man is installed).
#[test]
fn man_pages_are_complete_and_found_where_the_readme_says() {
    let out = run(pop3().args(["generate", "man"]));
    assert_code(&out, 0);
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        ".SS \"pop3 fetch\"",
        "\\-\\-max\\-size",
        "\\-\\-keep\\-days",
        "\\-\\-tls\\-server\\-name",
        "pop3\\-config",
    ] {
        assert!(page.contains(needle), "{needle} in pop3(1)");
    }
    assert!(!page.contains("pop3\\-fetch("), "no page for each command");
    let out = run(pop3().args(["generate", "man", "pop3-config"]));
    assert_code(&out, 0);
    let config = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(config.starts_with(".TH pop3-config 5"), "{config}");
    for key in [
        "maildir",
        "password_command",
        "tls_server_name",
        "max_size",
        "url",
    ] {
        assert!(
            config.contains(&format!("\\fB{key}\\fR")),
            "{key} in pop3-config(5)"
        );
    }

    // `cargo install` puts pop3 in ~/.cargo/bin; the pages go beside it.
    let home = tempfile::tempdir().expect("tempdir");
    let bin = home.path().join(".cargo/bin");
    fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pop3"), bin.join("pop3")).expect("symlink");
    let man_dir = home.path().join(".cargo/share/man");
    let out = run(pop3().args(["generate", "man", "--dir"]).arg(&man_dir));
    assert_code(&out, 0);
    let pop3_1 = man_dir.join("man1/pop3.1");
    let config_5 = man_dir.join("man5/pop3-config.5");
    assert_eq!(fs::read_to_string(&pop3_1).expect("pop3.1"), page);
    assert_eq!(
        fs::read_to_string(&config_5).expect("pop3-config.5"),
        config
    );

    let man = || {
        let mut command = Command::new("man");
        command
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("LANG", "C")
            .env("MANWIDTH", "100")
            .stdin(Stdio::null());
        command
    };
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("man is not installed: skipped rendering the pages");
        return;
    }
    let out = run(man().args(["-w", "pop3", "pop3-config"]));
    assert_code(&out, 0);
    assert_eq!(
        common::stdout(&out),
        format!("{}\n{}\n", pop3_1.display(), config_5.display())
    );
    for (file, needles) in [
        (
            &pop3_1,
            &[
                "--max-size <SIZE>",
                "--tls-server-name <NAME>",
                "pop3 fetch",
            ][..],
        ),
        (
            &config_5,
            &["tls_server_name = NAME", "max_size = SIZE", "keep_days = N"],
        ),
    ] {
        let out = run(man().arg("-l").arg(file));
        assert_code(&out, 0);
        let text = common::stdout(&out);
        for needle in needles {
            assert!(
                text.contains(needle),
                "{needle} in {}: {text}",
                file.display()
            );
        }
        assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    }
}

#[test]
fn man_page_and_completions() {
    let out = run(pop3().args(["generate", "man"]));
    assert_code(&out, 0);
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH pop3 1") && man.contains("fetch"), "{man}");
    assert!(
        man.contains("Exit codes"),
        "the exit codes are in the man page"
    );
    assert!(!man.contains("runtime"), "--runtime stays hidden");
    for shell in ["bash", "zsh", "fish"] {
        let out = run(pop3().args(["generate", "completions", shell]));
        assert_code(&out, 0);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("maildir") && script.contains("keep-days"),
            "{shell}"
        );
    }
    let out = run(pop3().args(["generate", "completions", "tcsh"]));
    assert_code(&out, 64);
}

/// `command` under a file size limit of 200 blocks of 512 bytes: sh sets it
/// and ignores SIGXFSZ, so that a write past it fails with an error (EFBIG,
/// as a full disk fails with ENOSPC) instead of killing the process.
fn with_file_size_limit(command: &Command, mailbox: &Mailbox) -> Command {
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 200; exec "$@""#)
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args())
        .env(PASSWORD_VAR, mailbox.password())
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .stdin(Stdio::null());
    limited
}

/// A write that fails in the middle of the fetch (a file size limit stands
/// in for a full disk: the kernel answers EFBIG as it would ENOSPC): exit
/// 74, what was made durable stays recorded, nothing is deleted even with
/// --delete, no debris; the next fetch completes the set exactly once.
#[test]
fn a_failing_disk_loses_nothing() {
    let (mailbox, mut messages) = mailbox_with("diskfull", 4, 2_000);
    // The big one comes last: the small ones fit, it does not.
    let big = message("diskfull-big", 5, 300_000);
    mailbox.add_message(&big);
    messages.push(big);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let mut command = dovecot_pop3(&mailbox, "blocking");
    command
        .args(["--json", "fetch", "--delete", "--maildir"])
        .arg(&maildir);
    let out = run(&mut with_file_size_limit(&command, &mailbox));
    assert_code(&out, 74);
    assert!(stderr(&out).contains("nothing deleted"), "{}", stderr(&out));
    assert_eq!(mailbox.count(), 5, "nothing deleted");
    assert_eq!(count_files(&maildir.join("tmp")), 0, "no debris");
    let out = fetch(&mailbox, "blocking", &maildir, &["--delete"]);
    assert_code(&out, 0);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
    assert_eq!(mailbox.count(), 0);
}

/// The same into an mbox: the batch that does not fit is cut off again,
/// the batches before it stay stored and recorded, and the next fetch adds
/// the rest exactly once.
#[test]
fn a_failing_disk_loses_nothing_in_an_mbox() {
    let (mailbox, mut messages) = mailbox_with("diskfull-mbox", 4, 2_000);
    let big = message("diskfull-mbox-big", 5, 300_000);
    mailbox.add_message(&big);
    messages.push(big);
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("in.mbox");
    let mut command = dovecot_pop3(&mailbox, "blocking");
    command
        .args(["--json", "fetch", "--delete", "--mbox"])
        .arg(&mbox);
    // One message per batch: the small ones are stored first.
    let out = run(with_file_size_limit(&command, &mailbox).env("POP3_TEST_BATCH", "1"));
    assert_code(&out, 74);
    assert!(stderr(&out).contains("nothing deleted"), "{}", stderr(&out));
    assert_eq!(mailbox.count(), 5, "nothing deleted");
    let (entries, each) = mbox_contents(&mbox, &messages);
    assert_eq!(entries, 4, "no part of the big one is left");
    assert_eq!(each, [1, 1, 1, 1, 0]);
    let text = fs::read_to_string(&mbox).expect("mbox");
    assert!(text.ends_with("\n\n") && !text.contains("diskfull-mbox-big"));
    let out = run(dovecot_pop3(&mailbox, "blocking")
        .args(["--json", "fetch", "--delete", "--mbox"])
        .arg(&mbox));
    assert_code(&out, 0);
    assert_eq!(summary(&out)["fetched"], 1);
    assert_eq!(mbox_contents(&mbox, &messages), (5, vec![1; 5]));
    assert_eq!(mailbox.count(), 0);
}

#[test]
fn a_failing_account_does_not_stop_the_others() {
    let dovecot = Dovecot::shared();
    let (good, messages) = mailbox_with("cfg-good", 2, 300);
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config = dir.path().join("pop3.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nca_file = {ca:?}\npassword_env = \"GOOD_PW\"\n\n\
             [accounts.dead]\nurl = \"pop3s://x@127.0.0.1:{closed}\"\nmaildir = {dm:?}\n\n\
             [accounts.good]\nurl = \"pop3s://{gu}@127.0.0.1:{port}\"\nmaildir = {gm:?}\n",
            ca = ca_file(),
            dm = dir.path().join("dead"),
            gu = good.user(),
            port = dovecot.tls_addr().port(),
            gm = dir.path().join("good"),
        ),
    )
    .expect("write");
    let out = run(pop3()
        .env("GOOD_PW", good.password())
        .arg("--config")
        .arg(&config)
        .args(["--json", "fetch"]));
    assert_code(&out, 75);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (&lines[0]["account"], &lines[0]["exit"]),
        (&"dead".into(), &75.into())
    );
    assert_eq!(
        (&lines[1]["account"], &lines[1]["fetched"]),
        (&"good".into(), &2.into())
    );
    assert!(stderr(&out).contains("pop3: dead: "), "{}", stderr(&out));
    assert_eq!(
        maildir_contents(&dir.path().join("good")),
        counted(&messages)
    );
}
