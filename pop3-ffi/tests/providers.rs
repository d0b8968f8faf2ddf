//! The C example, `examples/fetch.c`, against the scripted provider profiles
//! of `test_support::providers` over implicit TLS: `POP3_AUTH=xoauth2` /
//! `oauthbearer` with tokens of 60, 2,000 and 16 KiB characters into OUTDIR
//! (every message byte for byte), and Gmail's refusal of a token as one
//! line that says why. Some runs are under AddressSanitizer.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use test_support::provider_scenarios::{provider_messages, token, TOKEN_LENGTHS};
use test_support::providers::{Provider, ProviderServer, SessionLog, GMAIL_SCOPE};
use test_support::TestPki;

const MS_USER: &str = "megan.bowen@contoso.onmicrosoft.com";
const GMAIL_USER: &str = "alice.example@gmail.com";

/// The directory holding `libpop3.a` (cargo builds it into `deps/`, next to
/// the test binary).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// Compiles the example once per test binary (with ASan when asked), under
/// names of its own so that `tests/fetch_c.rs` may build at the same time.
fn fetch_binary(asan: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static ASAN: OnceLock<PathBuf> = OnceLock::new();
    let cell = if asan { &ASAN } else { &PLAIN };
    cell.get_or_init(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lib = target_dir().join("libpop3.a");
        assert!(lib.exists(), "{} was not built", lib.display());
        let name = if asan {
            "fetch-c-providers-asan"
        } else {
            "fetch-c-providers"
        };
        let out = target_dir().join(name);
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

/// The test CA, written once to a file.
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

struct Run {
    output: Output,
    outdir: tempfile::TempDir,
    logs: Vec<SessionLog>,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    fn assert_ok(&self, what: &str) {
        assert!(
            self.output.status.success(),
            "{what}: fetch failed: {}\nserver: {:#?}",
            self.stderr(),
            self.logs
        );
        assert!(!self.stderr().contains("Sanitizer"), "{}", self.stderr());
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

/// Runs `fetch 127.0.0.1 PORT implicit USER CA OUTDIR` with `POP3_AUTH=auth`
/// and the token in `POP3_PASSWORD`, then finishes the server.
fn fetch(server: ProviderServer, user: &str, auth: &str, secret: &str, asan: bool) -> Run {
    let outdir = tempfile::tempdir().expect("OUTDIR");
    let mut cmd = Command::new(fetch_binary(asan));
    cmd.arg("127.0.0.1")
        .arg(server.port().to_string())
        .arg("implicit")
        .arg(user)
        .arg(ca_file())
        .arg(outdir.path())
        .env("POP3_PASSWORD", secret)
        .env("POP3_AUTH", auth)
        .env_remove("POP3_ALLOW_PLAINTEXT")
        .env_remove("POP3_TRACE");
    if asan {
        cmd.env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:exitcode=86:strict_string_checks=1",
        );
    }
    let output = cmd.output().expect("run fetch");
    let logs = server.finish();
    Run {
        output,
        outdir,
        logs,
    }
}

fn start(provider: Provider) -> ProviderServer {
    provider.timeout(Duration::from_secs(10)).start()
}

/// Every message arrived as `N.eml`, byte for byte, and nothing else.
#[track_caller]
fn assert_all_retrieved(run: &Run, messages: &[Vec<u8>], what: &str) {
    run.assert_ok(what);
    for (i, want) in messages.iter().enumerate() {
        let got = fs::read(run.outdir.path().join(format!("{}.eml", i + 1)))
            .unwrap_or_else(|e| panic!("{what}: message {} missing: {e}", i + 1));
        assert!(got == *want, "{what}: message {} differs", i + 1);
    }
    assert_eq!(
        run.files().len(),
        messages.len(),
        "{what}: {:?}",
        run.files()
    );
}

/// The one session logged in with `mechanism` in two steps and the server
/// saw nothing it would refuse.
#[track_caller]
fn assert_two_step(run: &Run, mechanism: &str, what: &str) {
    assert_eq!(run.logs.len(), 1, "{what}: {:#?}", run.logs);
    let log = &run.logs[0];
    assert!(log.violations.is_empty(), "{what}: {log:#?}");
    assert!(log.authenticated && log.quit, "{what}: {log:#?}");
    assert_eq!(
        log.logins,
        vec![(mechanism.to_string(), false)],
        "{what}: {log:#?}"
    );
}

fn tokens_of_every_length(profile: &str, auth: &str) {
    for (i, len) in TOKEN_LENGTHS.into_iter().enumerate() {
        let tok = token(len, i as u8 + 50);
        let messages = provider_messages(&format!("ffi-{profile}-{auth}-{len}"));
        let (provider, user) = match profile {
            "microsoft365" => (Provider::microsoft365(MS_USER, &tok), MS_USER),
            _ => (Provider::gmail(GMAIL_USER, &tok), GMAIL_USER),
        };
        let server = start(provider.messages(messages.clone()));
        // The longest token also under AddressSanitizer.
        let asan = len == TOKEN_LENGTHS[2];
        let run = fetch(server, user, auth, &tok, asan);
        let what = format!("{profile} {auth} {len} characters");
        assert_all_retrieved(&run, &messages, &what);
        assert_two_step(&run, &auth.to_ascii_uppercase(), &what);
    }
}

#[test]
fn microsoft365_xoauth2_with_tokens_of_every_length() {
    tokens_of_every_length("microsoft365", "xoauth2");
}

#[test]
fn gmail_xoauth2_with_tokens_of_every_length() {
    tokens_of_every_length("gmail", "xoauth2");
}

#[test]
fn gmail_oauthbearer_with_tokens_of_every_length() {
    tokens_of_every_length("gmail", "oauthbearer");
}

/// Gmail refuses the token: one line on stderr with the server's `-ERR`
/// and the refusal in words, naming the scope; no file; the refusal was
/// acknowledged as the mechanism wants. Under AddressSanitizer.
#[test]
fn refused_gmail_token_is_one_line_naming_the_scope() {
    for auth in ["xoauth2", "oauthbearer"] {
        let server = start(Provider::gmail(GMAIL_USER, &token(2000, 60)));
        let run = fetch(server, GMAIL_USER, auth, &token(2000, 61), true);
        assert!(!run.output.status.success(), "{auth}: fetch succeeded");
        let stderr = run.stderr();
        assert!(!stderr.contains("Sanitizer"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{auth}: {stderr}");
        assert!(
            stderr.starts_with("fetch: login refused: AUTH Invalid credentials"),
            "{auth}: {stderr}"
        );
        assert!(
            stderr.contains("the token was refused") && stderr.contains(GMAIL_SCOPE),
            "{auth}: {stderr}"
        );
        assert!(run.files().is_empty(), "{:?}", run.files());
        let log = &run.logs[0];
        assert!(log.violations.is_empty(), "{auth}: {log:#?}");
        assert!(!log.authenticated);
    }
}

/// A refusal without a JSON report (Microsoft 365) is the server's line
/// alone: no refusal words are made up.
#[test]
fn refused_microsoft_token_has_no_refusal_words() {
    let server = start(Provider::microsoft365(MS_USER, &token(2000, 62)));
    let run = fetch(server, MS_USER, "xoauth2", &token(2000, 63), false);
    assert!(!run.output.status.success());
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("fetch: login refused: Authentication failure"),
        "{stderr}"
    );
    assert!(!stderr.contains("token was refused"), "{stderr}");
}

/// An unknown `POP3_AUTH` is refused by the library before anything is
/// sent.
#[test]
fn unknown_auth_method_sends_nothing() {
    let server = start(Provider::gmail(GMAIL_USER, &token(60, 64)));
    let run = fetch(server, GMAIL_USER, "kerberos-please", "x", false);
    assert!(!run.output.status.success());
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("fetch: login: "), "{stderr}");
    assert!(run.logs[0].lines.is_empty(), "{:#?}", run.logs);
}
