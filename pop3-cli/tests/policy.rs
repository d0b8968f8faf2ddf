//! What `pop3 fetch` decides on its own authority: a filter's verdict, what
//! a reused UID or an empty listing means for the state, which config file
//! it trusts, and which secrets the programs it runs can see. Against
//! scripted servers, so that each test says exactly what goes on the wire.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use test_support::scripted::{ScriptConfig, ScriptedServer, Step};
use test_support::socks5::{Socks5Config, Socks5Server};

mod common;
use common::{assert_code, stderr};

const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";

/// `pop3` with nothing inherited that could change its behaviour.
fn pop3() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env_remove(PASSWORD_VAR)
        .stdin(Stdio::null());
    command
}

/// `pop3` logged in as alice (password hunter2) to `server`, in plain text.
fn scripted_pop3(server: &ScriptedServer) -> Command {
    let mut command = pop3();
    command
        .env(PASSWORD_VAR, "hunter2")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.addr().port().to_string())
        .args(["--tls", "none", "--allow-plaintext-credentials"])
        .args(["--user", "alice", "--password-env", PASSWORD_VAR]);
    command
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

/// A short message (no line starts with a dot).
fn message(tag: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: {tag}\r\n\r\nbody of {tag}\r\n").into_bytes()
}

fn headers(message: &[u8]) -> Vec<u8> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank line")
        + 4;
    [&b"+OK\r\n"[..], &message[..end], b".\r\n"].concat()
}

fn retr(message: &[u8]) -> Vec<u8> {
    [&b"+OK\r\n"[..], message, b".\r\n"].concat()
}

/// The listing steps for `(uid, message)` pairs, numbered from 1.
fn listing(messages: &[(&str, &[u8])]) -> Vec<Step> {
    let mut uidl = String::from("+OK\r\n");
    let mut list = String::from("+OK\r\n");
    for (i, (uid, m)) in messages.iter().enumerate() {
        uidl.push_str(&format!("{} {uid}\r\n", i + 1));
        list.push_str(&format!("{} {}\r\n", i + 1, m.len()));
    }
    uidl.push_str(".\r\n");
    list.push_str(".\r\n");
    vec![
        Step::expect_line("UIDL"),
        Step::Send(uidl.into_bytes()),
        Step::expect_line("LIST"),
        Step::Send(list.into_bytes()),
    ]
}

fn quit() -> [Step; 3] {
    [
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
        Step::ExpectClose,
    ]
}

/// The contents of the files in `dir/new` and `dir/cur`, sorted.
/// `message` as a Maildir or an MDA gets it: LF line endings.
fn lf(message: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(message)
        .replace("\r\n", "\n")
        .into_bytes()
}

fn maildir_contents(dir: &Path) -> Vec<Vec<u8>> {
    let mut contents = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            contents.push(fs::read(entry.expect("entry").path()).expect("read"));
        }
    }
    contents.sort();
    contents
}

// ----- §1: a filter that breaks deletes nothing -----

/// A filter that fails the way broken scripts fail (exit 1 from `false`,
/// from `exit 1`, from Python's `SystemExit(1)`; exit 2; a signal; a word
/// that is not a verdict) stops the fetch before anything is fetched or
/// deleted, with exit 75, even with `--delete`. Exit 1 used to mean
/// "delete without fetching".
#[test]
fn a_filter_that_fails_deletes_nothing() {
    let m = message("kept");
    for filter in [
        "false",
        "exit 1",
        "python3 -c 'raise SystemExit(1)'",
        "python3 -c 'import nonexistent_module_for_pop3_tests'",
        "set -e; grep -q '^X-Spam-Flag: YES'; echo delete",
        "exit 2",
        "kill -9 $$",
        "echo yes",
        "echo delete; exit 1",
        "yes delete",
    ] {
        let mut steps = login_steps();
        steps.extend(listing(&[("uid-1", &m)]));
        steps.extend([
            Step::expect_line("TOP 1 0"),
            Step::Send(headers(&m)),
            Step::ExpectClose,
        ]);
        let server = ScriptedServer::start(steps);
        let dir = tempfile::tempdir().expect("tempdir");
        let out = scripted_pop3(&server)
            .args(["fetch", "--delete", "--filter", filter, "--maildir"])
            .arg(dir.path().join("Mail"))
            .output()
            .expect("run pop3");
        let (received, _) = server.join_all();
        let received = String::from_utf8_lossy(&received);
        assert_code(&out, 75);
        assert!(
            !received.contains("DELE") && !received.contains("RETR"),
            "{filter}: {received}"
        );
        let err = stderr(&out);
        assert!(
            err.contains("--filter") && err.contains("message 1"),
            "{filter}: {err}"
        );
        assert!(err.contains("nothing was fetched or deleted"), "{err}");
    }
}

/// A filter that never finishes (stuck on a lookup, or a background child
/// that kept its stdout open) is killed at its time limit, with what it
/// started, and stops the fetch with exit 75 and nothing fetched or
/// deleted: it used to hold the fetch, and the account's lock, for ever.
#[test]
fn a_filter_that_never_finishes_is_stopped() {
    let m = message("kept");
    for filter in ["sleep 1000", "echo fetch; sleep 1000 & exit 0"] {
        let mut steps = login_steps();
        steps.extend(listing(&[("uid-1", &m)]));
        steps.extend([
            Step::expect_line("TOP 1 0"),
            Step::Send(headers(&m)),
            Step::ExpectClose,
        ]);
        let server = ScriptedServer::start(steps);
        let dir = tempfile::tempdir().expect("tempdir");
        let started = std::time::Instant::now();
        let out = scripted_pop3(&server)
            .env("POP3_TEST_FILTER_LIMIT", "1")
            .args(["fetch", "--delete", "--filter", filter, "--maildir"])
            .arg(dir.path().join("Mail"))
            .output()
            .expect("run pop3");
        let (received, _) = server.join_all();
        let received = String::from_utf8_lossy(&received);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{filter}"
        );
        assert_code(&out, 75);
        assert!(
            !received.contains("DELE") && !received.contains("RETR"),
            "{filter}: {received}"
        );
        let err = stderr(&out);
        assert!(err.contains("did not finish within 1 s"), "{filter}: {err}");
        assert!(err.contains("nothing was fetched or deleted"), "{err}");
    }
}

/// The verdicts are words on stdout with exit 0: `delete` deletes unfetched
/// (with `--delete`), `skip` leaves the message, `fetch` or nothing fetches.
#[test]
fn the_filter_s_words_decide() {
    let messages = [
        message("spam"),
        message("later"),
        message("mail"),
        message("more"),
    ];
    let listed: Vec<(&str, &[u8])> = ["u1", "u2", "u3", "u4"]
        .into_iter()
        .zip(messages.iter().map(Vec::as_slice))
        .collect();
    let mut steps = login_steps();
    steps.extend(listing(&listed));
    for (i, m) in messages.iter().enumerate() {
        steps.push(Step::expect_line(&format!("TOP {} 0", i + 1)));
        steps.push(Step::Send(headers(m)));
    }
    steps.extend([
        Step::expect_line("RETR 3"),
        Step::Send(retr(&messages[2])),
        Step::expect_line("RETR 4"),
        Step::Send(retr(&messages[3])),
        Step::expect_line("DELE 1"),
        Step::send_line("+OK"),
        Step::expect_line("DELE 3"),
        Step::send_line("+OK"),
        Step::expect_line("DELE 4"),
        Step::send_line("+OK"),
    ]);
    steps.extend(quit());
    let server = ScriptedServer::start(steps);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let filter = r#"case "$POP3_MSG" in 1) echo delete;; 2) echo skip;; 3) echo fetch;; esac"#;
    let out = scripted_pop3(&server)
        .args([
            "--json",
            "fetch",
            "--delete",
            "--filter",
            filter,
            "--maildir",
        ])
        .arg(&maildir)
        .output()
        .expect("run pop3");
    assert_code(&out, 0);
    server.join().expect("script followed");
    assert_eq!(
        maildir_contents(&maildir),
        vec![lf(&messages[2]), lf(&messages[3])]
    );
}

// ----- §6: a reused UID is a new message; an empty listing forgets nothing -----

/// A server may give the UID of a deleted message to a new one (RFC 1939).
/// The new message is downloaded and stored beside the old one; it used to
/// be taken for the old one ("recovered"), never downloaded, and deleted.
#[test]
fn a_reused_uid_is_a_new_message() {
    let first = message("first under uid a");
    let second = message("second under uid a");
    let session = |m: &[u8]| {
        let mut steps = login_steps();
        steps.extend(listing(&[("a", m)]));
        steps.extend([
            Step::expect_line("RETR 1"),
            Step::Send(retr(m)),
            Step::expect_line("DELE 1"),
            Step::send_line("+OK"),
        ]);
        steps.extend(quit());
        steps
    };
    let server = ScriptedServer::start_sessions(
        vec![session(&first), session(&second)],
        ScriptConfig::default(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    for _ in 0..2 {
        let out = scripted_pop3(&server)
            .args(["fetch", "--delete", "--maildir"])
            .arg(&maildir)
            .output()
            .expect("run pop3");
        assert_code(&out, 0);
    }
    server.join().expect("both messages retrieved");
    let mut expected = vec![lf(&first), lf(&second)];
    expected.sort();
    assert_eq!(maildir_contents(&maildir), expected);
}

/// A server that lists nothing once (a mailbox not mounted yet) does not
/// make the state forget what was fetched: the next listing downloads
/// nothing again. Through an MDA, which cannot tell what it delivered.
#[test]
fn an_empty_listing_forgets_nothing() {
    let m = message("fetched once");
    let mut first = login_steps();
    first.extend(listing(&[("a", &m)]));
    first.extend([Step::expect_line("RETR 1"), Step::Send(retr(&m))]);
    first.extend(quit());
    let mut empty = login_steps();
    empty.extend(listing(&[]));
    empty.extend(quit());
    let mut again = login_steps();
    again.extend(listing(&[("a", &m)]));
    again.extend(quit());
    let server = ScriptedServer::start_sessions(vec![first, empty, again], ScriptConfig::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered = dir.path().join("delivered");
    for _ in 0..3 {
        let out = scripted_pop3(&server)
            .arg("fetch")
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--mda")
            .arg(format!("cat >> {:?}", delivered))
            .output()
            .expect("run pop3");
        assert_code(&out, 0);
    }
    server.join().expect("nothing downloaded twice");
    assert_eq!(fs::read(&delivered).expect("delivered"), lf(&m));
}

/// What an empty listing kept does not vouch for the message later listed
/// under the same UID (RFC 1939 lets a server reuse a deleted message's
/// UID): a fetch that deletes downloads it before deleting it.
#[test]
fn a_uid_kept_across_an_empty_listing_is_downloaded_before_a_deletion() {
    let old = message("stored before the mailbox was emptied");
    let reused = message("new message under the kept uid");
    let mut first = login_steps();
    first.extend(listing(&[("a", &old)]));
    first.extend([Step::expect_line("RETR 1"), Step::Send(retr(&old))]);
    first.extend(quit());
    let mut empty = login_steps();
    empty.extend(listing(&[]));
    empty.extend(quit());
    let mut again = login_steps();
    again.extend(listing(&[("a", &reused)]));
    again.extend([
        Step::expect_line("RETR 1"),
        Step::Send(retr(&reused)),
        Step::expect_line("DELE 1"),
        Step::send_line("+OK deleted"),
    ]);
    again.extend(quit());
    let server = ScriptedServer::start_sessions(vec![first, empty, again], ScriptConfig::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered = dir.path().join("delivered");
    for delete in [false, false, true] {
        let mut command = scripted_pop3(&server);
        command
            .arg("fetch")
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--mda")
            .arg(format!("cat >> {:?}", delivered));
        if delete {
            command.arg("--delete");
        }
        let out = command.output().expect("run pop3");
        assert_code(&out, 0);
    }
    server.join().expect("downloaded before deleted");
    assert_eq!(
        fs::read(&delivered).expect("delivered"),
        lf(&[old.as_slice(), reused.as_slice()].concat())
    );
}

/// The name older versions gave a Maildir file: `pop3-` and a hash of the
/// account and the UID alone.
fn legacy_name(account: &str, uid: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [account.as_bytes(), b"uid", uid.as_bytes()] {
        hasher.update(part);
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("pop3-{hex}")
}

/// Files an older pop3 named after the UID alone still tell what its
/// interrupted fetch stored: one written after the state was last written
/// is recognised (recorded, not downloaded again); one written before it
/// belongs to an older message with the same UID, and the listed message is
/// downloaded.
#[test]
fn older_file_names_are_recovered_only_when_left_by_an_interrupted_fetch() {
    let left = message("left by an interrupted older fetch");
    let reused = message("new message under an old uid");
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).expect("mkdir");
    }
    fs::create_dir_all(maildir.join("pop3-state")).expect("mkdir");
    let state = maildir.join("pop3-state").join("alice@127.0.0.1");
    fs::write(&state, "other 1000\n").expect("state");
    let at = |path: &Path, seconds_ago: u64| {
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
        fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(when))
            .expect("set mtime");
    };
    at(&state, 100);
    let older = maildir
        .join("cur")
        .join(format!("{}:2,S", legacy_name("alice@127.0.0.1", "old")));
    fs::write(&older, message("the old message")).expect("write");
    at(&older, 200);
    let interrupted = maildir
        .join("new")
        .join(legacy_name("alice@127.0.0.1", "a"));
    fs::write(&interrupted, &left).expect("write");
    at(&interrupted, 50);

    let mut steps = login_steps();
    steps.extend(listing(&[("a", &left), ("old", &reused)]));
    steps.extend([Step::expect_line("RETR 2"), Step::Send(retr(&reused))]);
    steps.extend(quit());
    let server = ScriptedServer::start(steps);
    let out = scripted_pop3(&server)
        .args(["--json", "fetch", "--maildir"])
        .arg(&maildir)
        .output()
        .expect("run pop3");
    assert_code(&out, 0);
    server.join().expect("only the reused uid downloaded");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (summary["fetched"].as_u64(), summary["recovered"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(maildir_contents(&maildir).len(), 3);
    assert!(maildir_contents(&maildir).contains(&lf(&reused)));
}

// ----- §8: the config file, the proxy password, the children's environment -----

/// A config file that another user could have written is refused (it names
/// commands pop3 runs), saying which file and what to do; the same file
/// with mode 0600 is read.
#[test]
fn a_config_file_others_can_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        "[accounts.a]\nhost = \"127.0.0.1\"\nport = 9\nmda = \"touch /tmp/owned\"\n",
    )
    .expect("write");
    for mode in [0o664, 0o646, 0o666] {
        fs::set_permissions(&config, fs::Permissions::from_mode(mode)).expect("chmod");
        let out = pop3()
            .arg("--config")
            .arg(&config)
            .args(["--account", "a", "stat"])
            .output()
            .expect("run pop3");
        assert_code(&out, 64);
        let err = stderr(&out);
        assert!(
            err.contains(&config.display().to_string()) && err.contains("chmod go-w"),
            "{mode:o}: {err}"
        );
    }
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = pop3()
        .arg("--config")
        .arg(&config)
        .args(["--account", "a", "--timeout", "5", "capa"])
        .output()
        .expect("run pop3");
    // Read, then nothing listens on port 9: offline, for now.
    assert_code(&out, 75);
    if rustix::process::geteuid().is_root() {
        // Owned by someone else (not root): refused whatever its mode.
        rustix::fs::chown(&config, Some(rustix::fs::Uid::from_raw(4242)), None).expect("chown");
        let out = pop3()
            .arg("--config")
            .arg(&config)
            .args(["--account", "a", "capa"])
            .output()
            .expect("run pop3");
        assert_code(&out, 64);
        assert!(
            stderr(&out).contains("owned by another user"),
            "{}",
            stderr(&out)
        );
    }
}

/// The MDA, the filter and the password command run without the variables
/// that hold a password (`--password-env`, `--proxy-password-env`, and
/// those the config file names), and still get their own.
#[test]
fn children_do_not_see_the_passwords() {
    let m = message("env");
    let mut steps = login_steps();
    steps.extend(listing(&[("a", &m)]));
    steps.extend([
        Step::expect_line("TOP 1 0"),
        Step::Send(headers(&m)),
        Step::expect_line("RETR 1"),
        Step::Send(retr(&m)),
    ]);
    steps.extend(quit());
    let server = ScriptedServer::start(steps);
    let dir = tempfile::tempdir().expect("tempdir");
    let envs = dir.path();
    let out = scripted_pop3(&server)
        .env("OTHER_ACCOUNT_PW", "other-secret")
        .env("POP3_TEST_HARMLESS", "visible")
        .arg("fetch")
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--filter")
        .arg(format!("env > {:?}; echo fetch", envs.join("filter.env")))
        .arg("--mda")
        .arg(format!("env > {:?}; cat > /dev/null", envs.join("mda.env")))
        .output()
        .expect("run pop3");
    assert_code(&out, 0);
    server.join().expect("script followed");
    for name in ["filter.env", "mda.env"] {
        let env = fs::read_to_string(envs.join(name)).expect("env written");
        assert!(!env.contains(PASSWORD_VAR), "{name}: {env}");
        assert!(!env.contains("hunter2"), "{name}: {env}");
        assert!(
            env.contains("POP3_ACCOUNT=") && env.contains("POP3_UID=a"),
            "{name}"
        );
        assert!(env.contains("POP3_TEST_HARMLESS=visible"), "{name}");
    }

    // The password command, and the config file's other accounts.
    let mut steps = login_steps();
    steps.extend([Step::expect_line("STAT"), Step::send_line("+OK 0 0")]);
    steps.extend(quit());
    let server = ScriptedServer::start(steps);
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[accounts.this]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             allow_plaintext_credentials = true\nuser = \"alice\"\n\
             password_command = \"env > '{}'; echo hunter2\"\n\n\
             [accounts.other]\nhost = \"h\"\npassword_env = \"OTHER_ACCOUNT_PW\"\n",
            server.addr().port(),
            envs.join("command.env").display(),
        ),
    )
    .expect("write");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = pop3()
        .env("OTHER_ACCOUNT_PW", "other-secret")
        .env("PROXY_PW", "proxy-secret")
        .arg("--config")
        .arg(&config)
        .args([
            "--account",
            "this",
            "--proxy-password-env",
            "PROXY_PW",
            "stat",
        ])
        .output()
        .expect("run pop3");
    // No proxy to give the password to.
    assert_code(&out, 64);
    assert!(
        stderr(&out).contains("proxy URL with a user name"),
        "{}",
        stderr(&out)
    );
    let out = pop3()
        .env("OTHER_ACCOUNT_PW", "other-secret")
        .env("POP3_TEST_HARMLESS", "visible")
        .arg("--config")
        .arg(&config)
        .args(["--account", "this", "stat"])
        .output()
        .expect("run pop3");
    assert_code(&out, 0);
    server.join().expect("script followed");
    let env = fs::read_to_string(envs.join("command.env")).expect("env written");
    assert!(!env.contains("OTHER_ACCOUNT_PW"), "{env}");
    assert!(env.contains("POP3_TEST_HARMLESS=visible"), "{env}");
}

/// The proxy password comes from a variable or a command, never from the
/// URL: a URL with one is refused without repeating it, and the password
/// from either source reaches the proxy.
#[test]
fn the_proxy_password_comes_from_the_environment_or_a_command() {
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("pu", "proxy-pw"));
    let stat_session = || {
        let mut steps = login_steps();
        steps.extend([Step::expect_line("STAT"), Step::send_line("+OK 0 0")]);
        steps.extend(quit());
        steps
    };
    let server = ScriptedServer::start_sessions(
        vec![stat_session(), stat_session()],
        ScriptConfig::default(),
    );
    let user_url = format!("socks5://pu@{}", proxy.addr());
    for source in [
        ["--proxy-password-env", "PROXY_PW"],
        ["--proxy-password-command", "echo proxy-pw"],
    ] {
        let out = scripted_pop3(&server)
            .env("PROXY_PW", "proxy-pw")
            .args(["--proxy", &user_url])
            .args(source)
            .arg("stat")
            .output()
            .expect("run pop3");
        assert_code(&out, 0);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "0 0\n");
    }
    server.join().expect("both sessions through the proxy");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(
            request.credentials,
            Some(("pu".to_owned(), "proxy-pw".to_owned()))
        );
    }
    // In the URL: refused before anything connects, the password not shown.
    let out = pop3()
        .args(["--host", "127.0.0.1", "--proxy"])
        .arg(proxy.url(Some(("pu", "proxy-pw"))))
        .arg("capa")
        .output()
        .expect("run pop3");
    assert_code(&out, 64);
    let err = stderr(&out);
    assert!(err.contains("--proxy-password-env"), "{err}");
    assert!(!err.contains("proxy-pw"), "{err}");
    // Nor in the config file.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nproxy = {:?}\n",
            proxy.url(Some(("pu", "proxy-pw")))
        ),
    )
    .expect("write");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = pop3()
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "capa"])
        .output()
        .expect("run pop3");
    assert_code(&out, 64);
    let err = stderr(&out);
    assert!(err.contains("proxy_password_env"), "{err}");
    assert!(!err.contains("proxy-pw"), "{err}");
    assert_eq!(proxy.requests().len(), 2, "nothing more reached the proxy");
}
