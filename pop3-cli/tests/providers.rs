//! The `pop3` command against the scripted provider profiles of
//! `test_support::providers` (Microsoft 365, Gmail, a Courier-like server),
//! over implicit TLS with the test CA: OAuth logins with tokens of real
//! length into a Maildir, Gmail's refusal of a token, and `LOGIN-DELAY`
//! advertised (not enforced) and enforced.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use test_support::provider_scenarios::{provider_messages, token, TOKEN_LENGTHS};
use test_support::providers::{Provider, ProviderServer, SessionLog, GMAIL_SCOPE};
use test_support::TestPki;

mod common;
use common::{run, stderr};

const RUNTIMES: [&str; 3] = ["blocking", "tokio", "smol"];
const PASSWORD_VAR: &str = "POP3_TEST_PASSWORD";
const MS_USER: &str = "megan.bowen@contoso.onmicrosoft.com";
const GMAIL_USER: &str = "alice.example@gmail.com";

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

/// `pop3` over implicit TLS to `server` as `user`, its state under
/// `state`, without a secret; nothing inherited that could change its
/// behaviour.
fn pop3_bare(server: &ProviderServer, user: &str, state: &Path, runtime: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env("XDG_STATE_HOME", state)
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env_remove(PASSWORD_VAR)
        .stdin(Stdio::null())
        .args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--tls", "implicit", "--user", user, "--runtime", runtime])
        .args(["--timeout", "20", "--ca-file"])
        .arg(ca_file());
    command
}

/// [`pop3_bare`] with the secret in `POP3_TEST_PASSWORD`.
fn pop3(server: &ProviderServer, user: &str, secret: &str, state: &Path, runtime: &str) -> Command {
    let mut command = pop3_bare(server, user, state, runtime);
    command
        .env(PASSWORD_VAR, secret)
        .args(["--password-env", PASSWORD_VAR]);
    command
}

fn start(provider: Provider) -> ProviderServer {
    provider.timeout(Duration::from_secs(10)).start()
}

#[track_caller]
fn assert_code(output: &Output, code: i32, logs: &[SessionLog]) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}\nstdout: {}\nserver: {logs:#?}",
        stderr(output),
        String::from_utf8_lossy(&output.stdout)
    );
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

/// `pop3 fetch --auth <auth>` with tokens of each length into a Maildir on
/// a runtime each; every message arrives byte for byte, the login went in
/// two steps, and the server saw nothing it would refuse.
fn fetch_with_tokens(profile: &str, auth: &str) {
    for (i, len) in TOKEN_LENGTHS.into_iter().enumerate() {
        let runtime = RUNTIMES[i % 3];
        let tok = token(len, i as u8 + 10);
        let messages = provider_messages(&format!("{profile}-{auth}-{len}"));
        let (provider, user) = match profile {
            "microsoft365" => (Provider::microsoft365(MS_USER, &tok), MS_USER),
            _ => (Provider::gmail(GMAIL_USER, &tok), GMAIL_USER),
        };
        let server = start(provider.messages(messages.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let out = run(
            pop3(&server, user, &tok, &dir.path().join("state"), runtime)
                .args(["--auth", auth, "--json", "fetch", "--maildir"])
                .arg(&maildir),
        );
        let logs = server.finish();
        let what = format!("{profile} {auth} {len} characters on {runtime}");
        assert_code(&out, 0, &logs);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
        assert_eq!(summary["fetched"], messages.len(), "{what}");
        assert_eq!(maildir_contents(&maildir), counted(&messages), "{what}");
        assert!(
            !stderr(&out).contains(&tok),
            "{what}: the token is never shown"
        );
        // Gmail hands out its mail a batch per session: the first brought
        // only new mail, so a second one looked for more and found none.
        let sessions = if profile == "gmail" { 2 } else { 1 };
        assert_eq!(summary["sessions"], sessions, "{what}");
        assert_eq!(logs.len(), sessions, "{what}: {logs:#?}");
        if let Some(second) = logs.get(1) {
            assert!(second.quit && second.violations.is_empty(), "{second:#?}");
            assert!(
                !second.lines.iter().any(|l| l.starts_with("RETR")),
                "{second:#?}"
            );
        }
        let log = &logs[0];
        assert!(log.violations.is_empty(), "{what}: {log:#?}");
        assert!(log.authenticated && log.quit, "{what}: {log:#?}");
        let mechanism = auth.to_ascii_uppercase();
        assert_eq!(log.logins, vec![(mechanism, false)], "{what}: two steps");
    }
}

#[test]
fn microsoft365_xoauth2_fetch_with_tokens_of_every_length() {
    fetch_with_tokens("microsoft365", "xoauth2");
}

#[test]
fn gmail_xoauth2_fetch_with_tokens_of_every_length() {
    fetch_with_tokens("gmail", "xoauth2");
}

#[test]
fn gmail_oauthbearer_fetch_with_tokens_of_every_length() {
    fetch_with_tokens("gmail", "oauthbearer");
}

/// The token can come from `--password-command` too (a token helper), and
/// Gmail's `recent:` user names go through unchanged.
#[test]
fn token_from_a_command_and_a_recent_user() {
    let tok = token(2000, 20);
    let messages = provider_messages("command");
    let server = start(Provider::gmail(GMAIL_USER, &tok).messages(messages.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    fs::write(&token_file, format!("{tok}\n")).expect("write token");
    let maildir = dir.path().join("Mail");
    let out = run(pop3_bare(
        &server,
        &format!("recent:{GMAIL_USER}"),
        &dir.path().join("state"),
        "tokio",
    )
    .arg("--password-command")
    .arg(format!("cat {}", token_file.display()))
    .args(["--auth", "xoauth2", "fetch", "--maildir"])
    .arg(&maildir));
    let logs = server.finish();
    assert_code(&out, 0, &logs);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
    assert!(
        logs[0].violations.is_empty() && logs[0].authenticated,
        "{logs:#?}"
    );
}

/// Gmail refuses the token: exit 77 (the credentials), one line that says
/// why in words and names the scope the token needs; nothing stored.
#[test]
fn refused_gmail_token_is_77_and_names_the_scope() {
    for (i, auth) in ["xoauth2", "oauthbearer"].into_iter().enumerate() {
        let runtime = RUNTIMES[i % 3];
        let server = start(Provider::gmail(GMAIL_USER, &token(2000, 30)));
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        let expired = token(2000, 31);
        let out = run(pop3(
            &server,
            GMAIL_USER,
            &expired,
            &dir.path().join("state"),
            runtime,
        )
        .args(["--auth", auth, "fetch", "--maildir"])
        .arg(&maildir));
        let logs = server.finish();
        assert_code(&out, 77, &logs);
        let err = stderr(&out);
        assert!(
            err.starts_with("pop3: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(err.contains("the token was refused"), "{auth}: {err}");
        assert!(err.contains(GMAIL_SCOPE), "{auth}: {err}");
        assert!(!err.contains(&expired), "{auth}: the token is never shown");
        assert!(maildir_contents(&maildir).is_empty());
        let log = &logs[0];
        assert!(log.violations.is_empty(), "{auth}: {log:#?}");
        assert!(!log.authenticated);
    }
}

/// Both runs of a `LOGIN-DELAY` test connected, logged in, and asked `CAPA`
/// (so the command knew the delay the server advertises).
#[track_caller]
fn both_logged_in_knowing_the_delay(logs: &[SessionLog]) {
    assert_eq!(logs.len(), 2, "both runs connected: {logs:#?}");
    for log in logs {
        assert!(log.authenticated && log.violations.is_empty(), "{log:#?}");
        assert!(log.lines.iter().any(|l| l == "CAPA"), "{log:#?}");
    }
}

/// Gmail advertises `LOGIN-DELAY 300` without enforcing it: `pop3 stat`
/// twice in a row (the login chosen from `CAPA`: PLAIN with an app
/// password) both connect and succeed.
#[test]
fn gmail_stat_twice_in_a_row() {
    let messages = provider_messages("gmail-twice");
    let server = start(
        Provider::gmail(GMAIL_USER, &token(2000, 40))
            .password("abcd efgh ijkl mnop")
            .messages(messages.clone()),
    );
    let state = tempfile::tempdir().expect("tempdir");
    let total: usize = messages.iter().map(Vec::len).sum();
    for (round, runtime) in RUNTIMES[..2].iter().enumerate() {
        let out = run(pop3(
            &server,
            GMAIL_USER,
            "abcd efgh ijkl mnop",
            state.path(),
            runtime,
        )
        .arg("stat"));
        assert_code(&out, 0, &server.sessions());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{} {total}\n", messages.len()),
            "round {round}"
        );
    }
    let logs = server.finish();
    both_logged_in_knowing_the_delay(&logs);
    assert!(
        logs.iter()
            .all(|l| l.logins == [("PLAIN".to_string(), true)]),
        "{logs:#?}"
    );
}

/// The Courier-like server advertises `LOGIN-DELAY 10` without enforcing
/// it: `pop3 stat` twice in a row both connect and succeed.
#[test]
fn courier_stat_twice_in_a_row() {
    let messages = provider_messages("courier-twice");
    let server = start(Provider::courier("bob", "b0b-pw").messages(messages.clone()));
    let state = tempfile::tempdir().expect("tempdir");
    for round in 0..2 {
        let out =
            run(pop3(&server, "bob", "b0b-pw", state.path(), RUNTIMES[round + 1]).arg("stat"));
        assert_code(&out, 0, &server.sessions());
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&format!("{} ", messages.len())),
            "round {round}"
        );
    }
    both_logged_in_knowing_the_delay(&server.finish());
}

/// A server that does enforce its delay refuses the login with
/// `-ERR [LOGIN-DELAY]`: exit 75, and the message says to try again.
#[test]
fn login_delay_refusal_is_75_and_says_to_try_again() {
    let server = start(Provider::courier("bob", "b0b-pw").refuse_login_delay());
    let state = tempfile::tempdir().expect("tempdir");
    let out = run(pop3(&server, "bob", "b0b-pw", state.path(), "blocking").arg("stat"));
    let logs = server.finish();
    assert_code(&out, 75, &logs);
    let err = stderr(&out);
    assert!(err.contains("LOGIN-DELAY"), "{err}");
    // "try again later", or "try again in N s" when the delay is known.
    assert!(err.contains("try again"), "{err}");
    assert_eq!(logs.len(), 1);
    assert!(!logs[0].authenticated);
}

/// `n` small distinct messages.
fn numbered(n: usize) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| format!("Subject: message {i}\r\n\r\nbody {i}\r\n").into_bytes())
        .collect()
}

/// `pop3 --json fetch` into `maildir` from a Gmail profile as `user`, with
/// more options; the summary, parsed.
fn gmail_fetch(
    server: &ProviderServer,
    user: &str,
    state: &Path,
    maildir: &Path,
    more: &[&str],
) -> (Output, serde_json::Value) {
    let out = run(pop3(server, user, "app-pw", state, "blocking")
        .args(["--json", "fetch"])
        .args(more)
        .arg("--maildir")
        .arg(maildir));
    assert_code(&out, 0, &server.sessions());
    let summary = serde_json::from_slice(&out.stdout).expect("json summary");
    (out, summary)
}

/// Every session logged in, quit, and did nothing the server objects to.
#[track_caller]
fn clean_sessions(logs: &[SessionLog]) {
    for log in logs {
        assert!(
            log.authenticated && log.quit && log.violations.is_empty(),
            "{log:#?}"
        );
    }
}

/// Gmail offers a window of its mail per session (here 4 for speed; about
/// 250 for real): one `pop3 fetch` opens sessions in a row, without waiting
/// for the LOGIN-DELAY Gmail advertises, until one brings nothing new; every
/// message arrives once, and `--json` counts the sessions.
#[test]
fn gmail_window_is_fetched_whole_across_sessions() {
    let messages = numbered(10);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .window(4)
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let (_, summary) = gmail_fetch(
        &server,
        GMAIL_USER,
        &dir.path().join("state"),
        &maildir,
        &[],
    );
    let logs = server.finish();
    // 4 + 4 + 2 new, then a session that lists nothing.
    assert_eq!(summary["sessions"], 4, "{summary}");
    assert_eq!(summary["fetched"], 10, "{summary}");
    assert_eq!(summary["on_server"], 10, "{summary}");
    assert_eq!(summary["left_on_server"], 10, "{summary}");
    assert!(summary.get("more_waiting").is_none(), "{summary}");
    assert_eq!(maildir_contents(&maildir), counted(&messages));
    assert_eq!(logs.len(), 4, "{logs:#?}");
    clean_sessions(&logs);
    let retrs: Vec<usize> = logs
        .iter()
        .map(|l| l.lines.iter().filter(|l| l.starts_with("RETR")).count())
        .collect();
    assert_eq!(retrs, [4, 4, 2, 0]);
}

/// `--max-sessions` bounds the run: it says in `--json` why it stopped and
/// the next fetch continues where it left off, fetching nothing twice.
#[test]
fn gmail_sessions_stop_at_the_bound_and_the_next_fetch_continues() {
    let messages = numbered(10);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .window(4)
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let maildir = dir.path().join("Mail");
    let (_, first) = gmail_fetch(
        &server,
        GMAIL_USER,
        &state,
        &maildir,
        &["--max-sessions", "2"],
    );
    assert_eq!(first["sessions"], 2, "{first}");
    assert_eq!(first["fetched"], 8, "{first}");
    assert_eq!(first["more_waiting"], "max_sessions", "{first}");
    assert_eq!(server.sessions().len(), 2);
    // Without --json (and no terminal): the one line cron mails.
    let out = run(pop3(&server, GMAIL_USER, "app-pw", &state, "tokio")
        .args(["fetch", "--max-sessions", "1", "--maildir"])
        .arg(&maildir));
    assert_code(&out, 0, &server.sessions());
    assert!(
        stderr(&out).contains("stopped after 1 session(s) because of --max-sessions 1"),
        "{}",
        stderr(&out)
    );
    let (_, last) = gmail_fetch(&server, GMAIL_USER, &state, &maildir, &[]);
    assert_eq!(last["fetched"], 0, "{last}");
    assert_eq!(last["sessions"], 1, "{last}");
    let logs = server.finish();
    clean_sessions(&logs);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
}

/// A session that brings nothing new ends the fetch: a `recent:` name
/// gets the same window in every session, so the second one, all of it
/// fetched already, is the last; its messages count once on the server.
#[test]
fn a_session_with_nothing_new_is_the_last() {
    let messages = numbered(3);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .window(4)
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let recent = format!("recent:{GMAIL_USER}");
    let (_, summary) = gmail_fetch(&server, &recent, &dir.path().join("state"), &maildir, &[]);
    let logs = server.finish();
    assert_eq!(summary["sessions"], 2, "{summary}");
    assert_eq!(summary["fetched"], 3, "{summary}");
    assert_eq!(summary["on_server"], 3, "{summary}");
    assert_eq!(logs.len(), 2, "{logs:#?}");
    clean_sessions(&logs);
    assert!(!logs[1].lines.iter().any(|l| l.starts_with("RETR")));
    assert_eq!(maildir_contents(&maildir), counted(&messages));
}

/// `--respect-login-delay` keeps the advertised delay between these
/// sessions too: one session, and `--json` says why no more.
#[test]
fn a_respected_login_delay_holds_between_sessions() {
    let messages = numbered(6);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .window(4)
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let (_, summary) = gmail_fetch(
        &server,
        GMAIL_USER,
        &dir.path().join("state"),
        &maildir,
        &["--respect-login-delay"],
    );
    let logs = server.finish();
    assert_eq!(summary["sessions"], 1, "{summary}");
    assert_eq!(summary["fetched"], 4, "{summary}");
    assert_eq!(summary["more_waiting"], "login_delay", "{summary}");
    assert_eq!(logs.len(), 1, "{logs:#?}");
}

/// With `--delete`, each session deletes only what it stored, and commits
/// it with its own QUIT; the mailbox ends empty, every message stored once.
/// `--max-messages` counts over all the sessions.
#[test]
fn gmail_sessions_delete_only_what_is_stored() {
    let messages = numbered(10);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .window(4)
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let maildir = dir.path().join("Mail");
    let (_, first) = gmail_fetch(
        &server,
        GMAIL_USER,
        &state,
        &maildir,
        &["--delete", "--max-messages", "6"],
    );
    // 4, then 2 of the next window (2 left for later): the limit ends it.
    assert_eq!(first["sessions"], 2, "{first}");
    assert_eq!(first["fetched"], 6, "{first}");
    assert_eq!(first["deleted"], 6, "{first}");
    assert_eq!(server.uidls().len(), 4);
    let (_, rest) = gmail_fetch(&server, GMAIL_USER, &state, &maildir, &["--delete"]);
    assert_eq!(rest["fetched"], 4, "{rest}");
    assert_eq!(rest["deleted"], 4, "{rest}");
    assert_eq!(rest["left_on_server"], 0, "{rest}");
    assert!(server.uidls().is_empty(), "{:?}", server.uidls());
    let logs = server.finish();
    clean_sessions(&logs);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
    // Each message was deleted once, by the session that stored it.
    let deles: usize = logs
        .iter()
        .map(|l| l.lines.iter().filter(|l| l.starts_with("DELE")).count())
        .sum();
    assert_eq!(deles, 10);
}

/// A server without a window (here the Courier-like one, which does not
/// advertise EXPIRE 0) is fetched in one session, even on the first
/// fetch, when every message is new.
#[test]
fn a_server_without_a_window_gets_one_session() {
    let messages = numbered(5);
    let server = start(Provider::courier("bob", "b0b-pw").messages(messages.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let out = run(
        pop3(&server, "bob", "b0b-pw", &dir.path().join("state"), "smol")
            .args(["--json", "fetch", "--maildir"])
            .arg(&maildir),
    );
    let logs = server.finish();
    assert_code(&out, 0, &logs);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(summary["sessions"], 1, "{summary}");
    assert_eq!(summary["fetched"], 5, "{summary}");
    assert_eq!(logs.len(), 1, "{logs:#?}");
}

/// Gmail's own window, 250 messages per session: 600 new messages take
/// three sessions, and a fourth finds nothing more.
#[test]
fn gmail_default_window_of_250() {
    let messages = numbered(600);
    let server = start(
        Provider::gmail(GMAIL_USER, "tok")
            .password("app-pw")
            .messages(messages.clone()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let (_, summary) = gmail_fetch(
        &server,
        GMAIL_USER,
        &dir.path().join("state"),
        &maildir,
        &[],
    );
    let logs = server.finish();
    assert_eq!(summary["sessions"], 4, "{summary}");
    assert_eq!(summary["fetched"], 600, "{summary}");
    clean_sessions(&logs);
    let retrs: Vec<usize> = logs
        .iter()
        .map(|l| l.lines.iter().filter(|l| l.starts_with("RETR")).count())
        .collect();
    assert_eq!(retrs, [250, 250, 100, 0]);
    assert_eq!(maildir_contents(&maildir), counted(&messages));
}
