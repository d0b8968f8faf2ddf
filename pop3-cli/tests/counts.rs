//! What a fetch that stops part way says it saved, against a real
//! Dovecot: the summary, `--json` and the error's note count what is in the
//! destination, and "left" is what the next fetch downloads. A full disk and other local failures are injected (debug
//! builds read `POP3_TEST_FAIL_AT`): `disk-full:N` fails every write from
//! the N-th message on with ENOSPC, `link-message:N` the N-th move into
//! `new/`, `record:N` the N-th append to the state.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use test_support::dovecot::{unique_user, Dovecot, Mailbox};

mod common;
use common::{assert_code, run, stderr, summary};

const PASSWORD_VAR: &str = "POP3_COUNTS_TEST_PASSWORD";

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

/// A new Dovecot user with `count` messages of about 3 KB.
fn mailbox_with(tag: &str, count: usize) -> Mailbox {
    let mailbox = Dovecot::shared().add_user(&unique_user(tag), "s3cret-pw");
    for i in 1..=count {
        let mut m = format!(
            "From: a@example.org\r\nSubject: {tag} {i}\r\nMessage-ID: <{i}.{tag}@test>\r\n\r\n"
        )
        .into_bytes();
        while m.len() < 3_000 {
            m.extend_from_slice(format!("{tag} {i} {}\r\n", "z".repeat(60)).as_bytes());
        }
        mailbox.add_message(&m);
    }
    mailbox
}

/// `pop3 --json fetch ARGS` for `mailbox`, failing as `fail_at` says
/// (`POP3_TEST_FAIL_AT`), in batches of `batch` messages.
fn fetch(mailbox: &Mailbox, args: &[&str], fail_at: Option<&str>, batch: usize) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
    command
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
        .env(PASSWORD_VAR, mailbox.password())
        .env("POP3_TEST_BATCH", batch.to_string())
        .stdin(Stdio::null())
        .arg(format!(
            "pop3s://{}@127.0.0.1:{}",
            mailbox.user(),
            Dovecot::shared().tls_addr().port()
        ))
        .args([
            "--password-env",
            PASSWORD_VAR,
            "--timeout",
            "60",
            "--ca-file",
        ])
        .arg(ca_file())
        .args(["--json", "fetch"])
        .args(args);
    match fail_at {
        Some(spec) => command.env("POP3_TEST_FAIL_AT", spec),
        None => command.env_remove("POP3_TEST_FAIL_AT"),
    };
    run(&mut command)
}

/// The `--json` summary of a fetch that failed: printed before the error
/// (which a later line may repeat as an object of its own).
fn first_summary(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("\"fetched\""))
        .unwrap_or_else(|| panic!("no summary on stdout: {text}\nstderr: {}", stderr(out)));
    serde_json::from_str(line).expect("JSON")
}

fn number(json: &serde_json::Value, key: &str) -> usize {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {json}")) as usize
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The UIDs recorded in the state file at `path`.
fn recorded(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Entries of the mbox at `path`.
fn entries(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.matches("\n\nFrom ").count() + usize::from(text.starts_with("From "))
}

/// The disk fills up while the fifth of eight messages is stored: the
/// fetch stops (exit 74, naming the file), and what it says it saved —
/// in `--json` and in the error — is what is in `new/` (or the mbox) and
/// recorded, `tmp/` is empty, and the next fetch downloads exactly the
/// number it said was left. Before, a failed fetch printed no summary at
/// all, and a batch that stopped part way counted none of the files it
/// had put in `new/`.
#[test]
fn a_full_disk_counts_what_is_stored() {
    for destination in ["--maildir", "--mbox"] {
        let mailbox = mailbox_with(&format!("full{}", &destination[2..]), 8);
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("dest");
        let target_arg = target.display().to_string();
        let args = [destination, target_arg.as_str()];
        let out = fetch(&mailbox, &args, Some("disk-full:5"), 2);
        assert_code(&out, 74);
        let err = stderr(&out);
        assert!(err.contains("No space left on device"), "{err}");
        let json = first_summary(&out);
        let saved = number(&json, "fetched");
        let (stored, state) = match destination {
            "--maildir" => {
                assert_eq!(count(&target.join("tmp")), 0, "no debris: {err}");
                // The message being written names its file.
                assert!(
                    err.contains(&target.join("tmp").display().to_string()),
                    "{err}"
                );
                (
                    count(&target.join("new")),
                    target
                        .join("pop3-state")
                        .join(format!("{}@127.0.0.1", mailbox.user())),
                )
            }
            _ => (
                entries(&target),
                dir.path()
                    .join("dest.pop3-state")
                    .join(format!("{}@127.0.0.1", mailbox.user())),
            ),
        };
        assert_eq!(
            saved, stored,
            "{destination}: counted what is there: {json}"
        );
        // Recorded too, unless the disk filled up between a batch's move
        // and its record (the next fetch then finds them by the intent).
        let unrecorded = stored - recorded(&state);
        assert!(saved < 5, "{destination}: {json}");
        assert_eq!(number(&json, "left_to_fetch"), 8 - saved, "{json}");
        assert_eq!(number(&json, "left_on_server"), 8, "{json}");
        assert!(
            err.contains(&format!("{saved} message(s) saved ("))
                && err.contains(&format!("{} left for the next fetch", 8 - saved)),
            "{err}"
        );

        let out = fetch(&mailbox, &args, None, 2);
        assert_code(&out, 0);
        let json = summary(&out);
        assert_eq!(number(&json, "fetched"), 8 - saved, "{destination}: {json}");
        assert_eq!(number(&json, "recovered"), unrecorded, "{json}");
        let stored = match destination {
            "--maildir" => count(&target.join("new")),
            _ => entries(&target),
        };
        assert_eq!(stored, 8, "{destination}: every message once");
    }
}

/// Moving the third of four messages into `new/` fails (ENOSPC): the two
/// moved before it are counted, recorded and not downloaded again; the
/// error names both directories; the other files are removed from
/// `tmp/`. Before, the whole batch counted as not saved ("0 message(s)
/// saved") while two of its files were in `new/`, and its files stayed in
/// `tmp/`.
#[test]
fn a_batch_that_stops_part_way_counts_what_it_linked() {
    let mailbox = mailbox_with("link", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let target = maildir.display().to_string();
    let args = ["--delete", "--maildir", target.as_str()];
    let out = fetch(&mailbox, &args, Some("link-message:3"), 4);
    assert_code(&out, 74);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("moving {}", maildir.join("tmp").display()))
            && err.contains(&format!("into {}", maildir.join("new").display())),
        "{err}"
    );
    assert!(
        err.contains("2 message(s) saved") && err.contains("2 left"),
        "{err}"
    );
    let json = first_summary(&out);
    assert_eq!(number(&json, "fetched"), 2, "{json}");
    assert_eq!(count(&maildir.join("new")), 2);
    assert_eq!(count(&maildir.join("tmp")), 0, "no debris");
    let state = maildir
        .join("pop3-state")
        .join(format!("{}@127.0.0.1", mailbox.user()));
    assert_eq!(recorded(&state), 2);
    assert_eq!(mailbox.count(), 4, "nothing deleted");

    let out = fetch(&mailbox, &args, None, 4);
    assert_code(&out, 0);
    let json = summary(&out);
    assert_eq!(number(&json, "fetched"), 2, "{json}");
    assert_eq!(count(&maildir.join("new")), 4);
    assert_eq!(mailbox.count(), 0);
}

/// The "59 saved, 1911 left" when 1,941 came next: a fetch whose
/// state cannot be written leaves two messages in `new/` unrecorded
/// (counted saved: they are there); the next one recognises them by their
/// intent (`recovered`) and then stops on a full disk. What it says is left
/// is what the third fetch downloads, whatever it recovered.
#[test]
fn left_is_what_the_next_fetch_downloads() {
    let mailbox = mailbox_with("left", 6);
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Mail");
    let target = maildir.display().to_string();
    let args = ["--maildir", target.as_str()];

    let out = fetch(&mailbox, &args, Some("record:1"), 2);
    assert_code(&out, 74);
    let json = first_summary(&out);
    assert_eq!(number(&json, "fetched"), 2, "{json}: in new/, not recorded");
    assert_eq!(count(&maildir.join("new")), 2);
    assert_eq!(count(&maildir.join("tmp")), 0);

    let out = fetch(&mailbox, &args, Some("disk-full:2"), 2);
    assert_code(&out, 74);
    let json = first_summary(&out);
    assert_eq!(number(&json, "recovered"), 2, "{json}");
    let saved = number(&json, "fetched");
    let left = number(&json, "left_to_fetch");
    assert_eq!(left, 4 - saved, "{json}");
    assert_eq!(count(&maildir.join("new")), 2 + saved);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{left} left for the next fetch")),
        "{err}"
    );

    let out = fetch(&mailbox, &args, None, 2);
    assert_code(&out, 0);
    let json = summary(&out);
    assert_eq!(number(&json, "fetched"), left, "{json}");
    assert_eq!(count(&maildir.join("new")), 6);
}
