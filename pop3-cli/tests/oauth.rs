//! OAuth accounts end to end: `pop3 oauth login` against the scripted OAuth
//! server of `test_support::oauth` (the test browser following the printed
//! URL, or the device flow), then `pop3 fetch` against the Gmail and
//! Microsoft 365 profiles of `test_support::providers`, logging in with
//! XOAUTH2. Refresh before expiry, a rotated refresh token kept, a dead
//! refresh token, concurrent refreshes, and tokens that never show.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use test_support::oauth::{browse, DeviceStep, Fault, OAuthConfig, OAuthServer};
use test_support::providers::{Provider, ProviderServer};
use test_support::TestPki;

mod common;
use common::{assert_code, run, stderr, stdout};

const GMAIL_USER: &str = "alice.example@gmail.com";
const MS_USER: &str = "megan.bowen@contoso.onmicrosoft.com";

/// A home for one test: config file, state, Maildir, CA file.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("ca.pem"), &TestPki::shared().ca_pem).expect("CA");
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    fn maildir(&self) -> PathBuf {
        self.path().join("Mail")
    }

    fn token_file(&self, account: &str) -> PathBuf {
        self.path().join(format!("state/pop3/{account}.oauth.json"))
    }

    /// Writes an account `name` for `provider` at `pop3_port`, with the
    /// OAuth endpoints of `oauth`.
    fn account(&self, name: &str, provider: &str, user: &str, oauth: &OAuthServer, pop3_port: u16) {
        let text = format!(
            "[accounts.{name}]\nprovider = \"{provider}\"\nuser = \"{user}\"\n\
             client_id = \"{}\"\nhost = \"127.0.0.1\"\nport = {pop3_port}\n\
             ca_file = \"{}\"\ntimeout = 20\nmaildir = \"{}\"\n\
             authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\ndevice_endpoint = \"{}\"\n",
            oauth.config().client_id,
            self.path().join("ca.pem").display(),
            self.maildir().display(),
            oauth.authorization_url(),
            oauth.token_url(),
            oauth.device_url(),
        );
        let mut all = fs::read_to_string(self.config()).unwrap_or_default();
        all.push_str(&text);
        fs::write(self.config(), all).expect("config");
        fs::set_permissions(self.config(), fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn pop3(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pop3"));
        command
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CONFIG_HOME", "/nonexistent/pop3-test-config")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .arg("--config")
            .arg(self.config());
        command
    }

    /// `pop3 oauth login NAME`, with the test browser following the URL it
    /// prints.
    fn login(&self, name: &str) -> Output {
        let mut child = self
            .pop3()
            .args(["oauth", "login", name, "--no-browser"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pop3 oauth login");
        let mut said = String::new();
        let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            said.push_str(&line);
            if line.starts_with("http://127.0.0.1:") && line.contains("/authorize?") {
                let (status, page) = browse(line.trim()).expect("the browser");
                assert_eq!(status, 200, "{page}");
            }
            line.clear();
        }
        let mut output = child.wait_with_output().expect("login ends");
        output.stderr = said.into_bytes();
        output
    }

    /// Makes the stored access token expire `seconds` from now (negative:
    /// already expired), as time passing would.
    fn age_token(&self, account: &str, seconds: i64) {
        let mut stored = self.stored(account);
        let at = pop3_oauth_now() as i64 + seconds;
        stored["expires_at"] = at.into();
        stored["obtained_at"] = (at - 3600).into();
        fs::write(self.token_file(account), stored.to_string()).expect("token file");
    }

    fn stored(&self, account: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.token_file(account)).expect("token file"))
            .expect("JSON")
    }
}

fn pop3_oauth_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn start(provider: Provider) -> ProviderServer {
    provider
        .messages(vec![
            b"Subject: one\r\n\r\nfirst\r\n".to_vec(),
            b"Subject: two\r\n\r\nsecond\r\n".to_vec(),
        ])
        .timeout(Duration::from_secs(10))
        .start()
}

fn delivered(home: &Home) -> usize {
    fs::read_dir(home.maildir().join("new")).map_or(0, |d| d.count())
}

#[test]
fn gmail_login_with_the_browser_then_fetch_with_xoauth2() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    // The code is the first thing issued (1), the tokens the second.
    let pop = start(Provider::gmail(GMAIL_USER, "at-2"));
    home.account("gmail", "gmail", GMAIL_USER, &oauth, pop.port());

    let login = home.login("gmail");
    assert_code(&login, 0);
    assert!(stderr(&login).contains("Logged in"), "{}", stderr(&login));
    let mode = fs::metadata(home.token_file("gmail")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
    assert_eq!(home.stored("gmail")["refresh_token"], "rt-2");

    let fetch = run(home
        .pop3()
        .args(["--account", "gmail", "-v", "--json", "fetch"]));
    assert_code(&fetch, 0);
    assert_eq!(delivered(&home), 2);
    let logs = pop.finish();
    // Gmail hands out mail in turns: the first session brought only new
    // mail, so a second one (which found none) logged in with the token
    // again, asked of the store once more.
    assert_eq!(logs.len(), 2, "{logs:#?}");
    assert!(logs.iter().all(|l| l.authenticated), "{logs:#?}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout(&fetch).trim()).expect("json summary");
    assert_eq!(summary["sessions"], 2, "{summary}");
    assert_eq!(
        stderr(&fetch)
            .matches("OAuth access token for gmail: stored")
            .count(),
        2,
        "{}",
        stderr(&fetch)
    );
    let shown = format!("{}{}{}", stdout(&fetch), stderr(&fetch), stderr(&login));
    for secret in ["at-2", "rt-2", "code-1"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    assert!(
        stderr(&fetch).contains("OAuth access token for gmail: stored"),
        "{}",
        stderr(&fetch)
    );
}

#[test]
fn outlook_device_login_then_fetch() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    oauth.device_script(&[DeviceStep::Pending, DeviceStep::Granted]);
    let pop = start(Provider::microsoft365(MS_USER, "at-2"));
    home.account("work", "outlook", MS_USER, &oauth, pop.port());
    let login = run(home.pop3().args(["oauth", "login", "work", "--device"]));
    assert_code(&login, 0);
    assert!(stderr(&login).contains("ABCD-EFGH"), "{}", stderr(&login));
    assert_eq!(oauth.device_polls(), 2);
    let fetch = run(home.pop3().args(["fetch", "work"]));
    assert_code(&fetch, 0);
    assert_eq!(delivered(&home), 2);
    drop(pop);
}

#[test]
fn gmail_refuses_the_device_flow_in_words() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    home.account("gmail", "gmail", GMAIL_USER, &oauth, 9);
    // The file's device endpoint would be used: take it out.
    let text = fs::read_to_string(home.config()).expect("config");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("device_endpoint"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(home.config(), text).expect("config");
    let login = run(home.pop3().args(["oauth", "login", "gmail", "--device"]));
    assert_code(&login, 64);
    assert!(
        stderr(&login).contains("Google does not allow the device flow"),
        "{}",
        stderr(&login)
    );
    assert_eq!(oauth.device_polls(), 0);
}

#[test]
fn a_token_near_expiry_is_refreshed_and_the_rotated_one_kept() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig {
        rotate: true,
        ..OAuthConfig::default()
    });
    let pop = start(Provider::microsoft365(MS_USER, "at-3"));
    home.account("work", "outlook", MS_USER, &oauth, pop.port());
    assert_code(&home.login("work"), 0);
    assert_eq!(home.stored("work")["refresh_token"], "rt-2");
    // Two minutes left of an hour: inside the five-minute margin.
    home.age_token("work", 120);
    let fetch = run(home.pop3().args(["--account", "work", "-v", "fetch"]));
    assert_code(&fetch, 0);
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(home.stored("work")["refresh_token"], "rt-3");
    assert_eq!(home.stored("work")["access_token"], "at-3");
    assert_eq!(oauth.live_refresh_tokens(), ["rt-3"]);
    assert!(!stderr(&fetch).contains("at-3") && !stderr(&fetch).contains("rt-3"));
    drop(pop);
}

#[test]
fn a_provider_outage_during_refresh_is_exit_75() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    home.account("gmail", "gmail", GMAIL_USER, &oauth, 9);
    assert_code(&home.login("gmail"), 0);
    home.age_token("gmail", -10);
    let json = "application/json";
    for (status, content_type, body) in [
        (
            "503 Service Unavailable",
            json,
            r#"{"error":"temporarily_unavailable"}"#,
        ),
        (
            "500 Internal Server Error",
            json,
            r#"{"error":"server_error"}"#,
        ),
        (
            "400 Bad Request",
            json,
            r#"{"error":"temporarily_unavailable"}"#,
        ),
        ("429 Too Many Requests", json, r#"{"error":"rate_limited"}"#),
        (
            "503 Service Unavailable",
            json,
            r#"{"message":"overloaded"}"#,
        ),
        ("502 Bad Gateway", "text/html", "<html>Bad gateway</html>"),
    ] {
        oauth.fault(Fault::Answer {
            status,
            content_type,
            body,
        });
        let fetch = run(home.pop3().args(["--account", "gmail", "fetch"]));
        assert_code(&fetch, 75);
        assert!(stderr(&fetch).contains("account gmail"), "{status} {body}");
    }
    // The refresh token is still the one stored: nothing was lost.
    assert_eq!(home.stored("gmail")["refresh_token"], "rt-2");
}

#[test]
fn the_token_refresh_goes_through_the_socks5_proxy_too() {
    use test_support::socks5::{Socks5Config, Socks5Server};

    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    let pop = start(Provider::microsoft365(MS_USER, "at-3"));
    home.account("work", "outlook", MS_USER, &oauth, pop.port());
    assert_code(&home.login("work"), 0);
    home.age_token("work", -10);
    let proxy = Socks5Server::start(Socks5Config::relay());
    let fetch = run(home
        .pop3()
        .args(["--proxy", &proxy.url(None), "--account", "work", "fetch"]));
    assert_code(&fetch, 0);
    assert_eq!(oauth.refreshes(), 1);
    let token_port = oauth
        .token_url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse::<u16>().ok());
    let ports: Vec<u16> = proxy.requests().iter().map(|r| r.port).collect();
    assert!(
        token_port.is_some_and(|port| ports.contains(&port)),
        "the proxy saw {ports:?}, the token endpoint is {}",
        oauth.token_url()
    );
    assert!(ports.contains(&pop.port()), "{ports:?}");
    drop(pop);
}

#[test]
fn a_dead_refresh_token_is_one_line_and_exit_77() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    home.account("gmail", "gmail", GMAIL_USER, &oauth, 9);
    assert_code(&home.login("gmail"), 0);
    home.age_token("gmail", -10);
    oauth.revoke_all();
    let fetch = run(home.pop3().args(["--account", "gmail", "fetch"]));
    assert_code(&fetch, 77);
    let said = stderr(&fetch);
    assert_eq!(said.lines().count(), 1, "{said}");
    let again = format!(
        "pop3 --config {} oauth login gmail",
        home.config().display()
    );
    assert!(
        said.contains("account gmail") && said.contains(&again),
        "{said}"
    );
    assert!(!said.contains("rt-2") && !said.contains('{'), "{said}");
    // Nothing was sent to the POP3 server's port, and nothing stored changed.
    assert_eq!(home.stored("gmail")["refresh_token"], "rt-2");
}

#[test]
fn processes_refreshing_at_once_never_lose_a_rotated_token() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig {
        rotate: true,
        // Shorter than the refresh margin: a process that finds a token
        // another has just refreshed must use it, not refresh again.
        access_lifetime: 60,
        ..OAuthConfig::default()
    });
    let pop = start(Provider::microsoft365(MS_USER, "at-3"));
    home.account("work", "outlook", MS_USER, &oauth, pop.port());
    assert_code(&home.login("work"), 0);
    home.age_token("work", -1);
    let children: Vec<_> = (0..4)
        .map(|_| {
            home.pop3()
                .args(["--account", "work", "stat"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pop3 stat")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("stat ends");
        assert_code(&output, 0);
    }
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(oauth.stale_refreshes(), 0);
    assert_eq!(home.stored("work")["refresh_token"], "rt-3");
    drop(pop);
}

#[test]
fn status_shows_everything_but_the_tokens() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    home.account("gmail", "gmail", GMAIL_USER, &oauth, 9);
    home.account("work", "outlook", MS_USER, &oauth, 9);
    assert_code(&home.login("gmail"), 0);
    let status = run(home.pop3().args(["oauth", "status"]));
    assert_code(&status, 0);
    let text = stdout(&status);
    assert!(
        text.contains("gmail: gmail, scopes mail; access token expires in"),
        "{text}"
    );
    assert!(
        text.contains(&home.token_file("gmail").display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("work: outlook") && text.contains("not logged in (pop3 oauth login work)"),
        "{text}"
    );
    let json = run(home.pop3().args(["--json", "oauth", "status"]));
    assert_code(&json, 0);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(rows[0]["provider"], "gmail");
    assert_eq!(rows[0]["refresh_token"], true);
    assert_eq!(rows[1]["logged_in"], false);
    for shown in [text, stdout(&json)] {
        assert!(
            !shown.contains("at-2") && !shown.contains("rt-2"),
            "{shown}"
        );
    }
}

/// The token goes out through XOAUTH2 even when the server is named on the
/// command line (so the provider's defaults are not laid over it), and a
/// password mechanism named for an OAuth account is refused before anything
/// is sent, rather than presenting the token as a password.
#[test]
fn an_oauth_account_logs_in_with_a_token_mechanism_only() {
    let home = Home::new();
    let oauth = OAuthServer::start(OAuthConfig::default());
    oauth.device_script(&[DeviceStep::Granted]);
    let pop = start(Provider::microsoft365(MS_USER, "at-2"));
    home.account("work", "outlook", MS_USER, &oauth, pop.port());
    assert_code(
        &run(home.pop3().args(["oauth", "login", "work", "--device"])),
        0,
    );
    let port = pop.port().to_string();
    let named_here = ["--host", "127.0.0.1", "--port", &port, "--tls", "implicit"];
    let fetch = run(home
        .pop3()
        .args(["--account", "work"])
        .args(named_here)
        .arg("fetch"));
    assert_code(&fetch, 0);
    assert_eq!(delivered(&home), 2);
    for mechanism in ["plain", "user", "scram-sha-256"] {
        let refused = run(home
            .pop3()
            .args(["--account", "work", "--auth", mechanism])
            .arg("stat"));
        assert_code(&refused, 64);
        assert!(
            stderr(&refused).contains("auth must be xoauth2 or oauthbearer"),
            "{}",
            stderr(&refused)
        );
    }
    drop(pop);
}
