//! `pop3 fetch` on a schedule, as README.md shows it: the systemd unit
//! (checked by `systemd-analyze verify` where it exists, and its ExecStart
//! run as written), the cron line, and what a run under cron reports.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use test_support::scripted::{ScriptedServer, Step};

mod common;
use common::{assert_code, run, stderr, stuffed};

/// The blocks of README.md fenced as `lang`, in order.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The value of `key=` in a unit file (the last one given).
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// A home directory as `cargo install` leaves it: the binary in
/// `~/.cargo/bin`, and a config file with one account, `account`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(account: &str) -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join(".cargo/bin");
        fs::create_dir_all(&bin).expect("mkdir bin");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pop3"), bin.join("pop3")).expect("symlink");
        let config = dir.path().join(".config/pop3");
        fs::create_dir_all(&config).expect("mkdir config");
        let file = config.join("config.toml");
        fs::write(&file, account).expect("write config");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `sh -c line` with only what cron or systemd gives: HOME, and PATH
    /// with the directory `cargo install` uses.
    fn shell(&self, line: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(line)
            .env_clear()
            .env("HOME", self.path())
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.path().join(".cargo/bin").display()),
            )
            .stdin(Stdio::null());
        command
    }
}

/// An account at `port` of 127.0.0.1 without TLS (a scripted server),
/// whose password a command prints, fetched into `~/Mail`.
fn account(port: u16) -> String {
    format!(
        "[accounts.mail]\nurl = \"pop3://alice@127.0.0.1:{port}\"\ntls = \"none\"\n\
         allow_plaintext_credentials = true\npassword_command = \"echo hunter2\"\n\
         maildir = \"~/Mail\"\n"
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A session that logs in and lists one message of `size` octets.
fn listing_session(size: usize) -> Vec<Step> {
    vec![
        Step::send_line("+OK scripted POP3 ready"),
        Step::expect_line("CAPA"),
        Step::send_line("-ERR no CAPA here"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("+OK logged in"),
        Step::expect_line("UIDL"),
        Step::send_line("+OK\r\n1 uid-one\r\n."),
        Step::expect_line("LIST"),
        Step::send_line(&format!("+OK\r\n1 {size}\r\n.")),
    ]
}

/// A session that logs in and fetches one message of `message`.
fn one_message_session(message: &[u8]) -> Vec<Step> {
    let mut steps = listing_session(message.len());
    steps.extend([
        Step::expect_line("RETR 1"),
        Step::Send([&b"+OK\r\n"[..], &stuffed(message)].concat()),
        Step::expect_line("QUIT"),
        Step::send_line("+OK bye"),
    ]);
    steps
}

const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n";

/// The README's systemd unit is valid (`systemd-analyze
/// verify`, where it exists), and its ExecStart, run as written, ends in
/// a status the unit counts as success when offline (75, through
/// `SuccessExitStatus`) and when the fetch works (0).
#[test]
fn the_readmes_systemd_unit_counts_offline_as_success() {
    let units = readme_blocks("ini");
    let service = units
        .iter()
        .find(|u| u.contains("ExecStart="))
        .expect("a service unit in README.md");
    let timer = units
        .iter()
        .find(|u| u.contains("[Timer]"))
        .expect("a timer unit in README.md");
    let success: Vec<i32> = unit_value(service, "SuccessExitStatus")
        .expect("SuccessExitStatus")
        .split_whitespace()
        .map(|code| code.parse().expect("a number"))
        .collect();
    assert!(success.contains(&75), "{success:?}");
    let exec = unit_value(service, "ExecStart").expect("ExecStart");

    let offline = Home::new(&account(closed_port()));
    let units_dir = offline.path().join(".config/systemd/user");
    fs::create_dir_all(&units_dir).expect("mkdir units");
    fs::write(units_dir.join("pop3-fetch.service"), service).expect("write unit");
    fs::write(units_dir.join("pop3-fetch.timer"), timer).expect("write timer");
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_ok_and(|o| o.status.success()) {
        let runtime_dir = offline.path().join("run");
        fs::create_dir(&runtime_dir).expect("mkdir run");
        fs::set_permissions(&runtime_dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(units_dir.join("pop3-fetch.service"))
            .arg(units_dir.join("pop3-fetch.timer"))
            .env("HOME", offline.path())
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .output()
            .expect("run systemd-analyze");
        let said = stderr(&out);
        assert!(out.status.success(), "systemd-analyze verify: {said}");
        // It warns about unknown keys and bad values without failing.
        assert!(
            !said.contains("pop3-fetch"),
            "systemd-analyze verify: {said}"
        );
    } else {
        eprintln!("systemd-analyze is not installed: skipped verifying the unit");
    }

    // ExecStart as systemd runs it: %h is the home directory.
    let home = offline.path().display().to_string();
    let command_line = exec.replace("%h", &home);
    let out = run(&mut offline.shell(&command_line));
    let code = out.status.code().expect("exit status");
    assert!(success.contains(&code), "offline: {code}: {}", stderr(&out));
    assert_eq!(code, 75, "{}", stderr(&out));

    let server = ScriptedServer::start(one_message_session(MESSAGE));
    let online = Home::new(&account(server.addr().port()));
    let command_line = exec.replace("%h", &online.path().display().to_string());
    let out = run(&mut online.shell(&command_line));
    assert_code(&out, 0);
    server.join().expect("script followed");
    let new: Vec<PathBuf> = fs::read_dir(online.path().join("Mail/new"))
        .expect("Mail/new")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
}

/// The command of the README's cron line, as cron runs it (`\\%` is `%`).
fn readme_cron_command() -> String {
    let cron = readme_blocks("cron");
    let line = cron
        .first()
        .and_then(|block| block.lines().next())
        .expect("a cron line in README.md");
    // Minute, hour, day, month, weekday, then the command.
    let command = line.splitn(6, ' ').nth(5).expect("a command");
    assert!(
        !command.replace("\\%", "").contains('%'),
        "cron turns an unescaped % into a newline: {command}"
    );
    // cron passes `\%` on as `%`.
    command.replace("\\%", "%")
}

/// The README's cron line stays quiet when offline (exit
/// 75) and passes on what pop3 said about any other failure.
#[test]
fn the_readmes_cron_line_is_quiet_only_about_temporary_failures() {
    let command = &readme_cron_command();

    let offline = Home::new(&account(closed_port()));
    let out = run(&mut offline.shell(command));
    assert_code(&out, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    let server = ScriptedServer::start(vec![
        Step::send_line("+OK scripted POP3 ready"),
        Step::expect_line("CAPA"),
        Step::send_line("-ERR no CAPA here"),
        Step::expect_line("USER alice"),
        Step::send_line("+OK"),
        Step::expect_line("PASS hunter2"),
        Step::send_line("-ERR [AUTH] wrong password"),
    ]);
    let refused = Home::new(&account(server.addr().port()));
    let out = run(&mut refused.shell(command));
    let said = common::stdout(&out);
    assert!(said.contains("credentials refused"), "{out:?}");
    let _ = server.join();
}

/// A session that lists `big` and is asked for nothing but QUIT.
fn left_behind_session(big: &[u8]) -> Vec<Step> {
    let mut steps = listing_session(big.len());
    steps.extend([Step::expect_line("QUIT"), Step::send_line("+OK bye")]);
    steps
}

/// Under cron (stderr not a terminal) a fetch that
/// leaves mail on the server because of a limit says so, in one line.
#[test]
fn mail_left_behind_by_a_limit_is_reported_without_a_terminal() {
    let big = [MESSAGE, &b"x".repeat(3000)[..], b"\r\n"].concat();
    let server = ScriptedServer::start(left_behind_session(&big));
    let home = Home::new(&format!(
        "{}max_size = \"1k\"\n",
        account(server.addr().port())
    ));
    let out = run(&mut home.shell("pop3 fetch"));
    assert_code(&out, 0);
    let said = stderr(&out);
    let note = "pop3: mail: 1 message(s) left on the server, not fetched: 1 over --max-size\n";
    assert_eq!(said, note);
    server.join().expect("script followed");
    // The README's cron line passes that note on (cron would mail it).
    let server = ScriptedServer::start(left_behind_session(&big));
    let home = Home::new(&format!(
        "{}max_size = \"1k\"\n",
        account(server.addr().port())
    ));
    let out = run(&mut home.shell(&readme_cron_command()));
    assert_eq!(common::stdout(&out), note, "{out:?}");
    server.join().expect("script followed");
}
