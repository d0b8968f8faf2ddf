//! The provider suite every Rust transport runs: OAuth logins against the
//! scripted Microsoft 365 and Gmail profiles of [`crate::providers`], with
//! tokens of real length, then the mailbox read byte for byte; Gmail's
//! refusal of a token; `recent:` user names; `LOGIN-DELAY` advertised but not
//! enforced, and enforced.
//!
//! Written once over [`Connection`](crate::scenarios::Connection) like
//! [`crate::scenarios`], with the same [`Transport`] plug; a transport's
//! `tests/providers.rs` expands [`provider_tests!`](crate::provider_tests):
//!
//! ```ignore
//! mod common;
//! test_support::provider_tests!(common::Blocking);
//! ```
//!
//! Every wait is bounded: the servers give up a read after 5 s, the clients
//! after 10 s.

use std::time::Duration;

use pop3_proto::{AuthMethod, ResponseCode};

use crate::pki::TestPki;
use crate::providers::{base64_decode, Profile, Provider, ProviderServer, SessionLog, GMAIL_SCOPE};
use crate::scenarios::{n, retr_bytes, timeouts, top_bytes, trusting, Conn, Error, Transport};

/// Expands to one `#[test]` per scenario of [`crate::provider_scenarios`],
/// each running the scenario with `&$transport` on the transport's executor.
#[macro_export]
macro_rules! provider_tests {
    ($transport:expr) => {
        $crate::provider_tests!(@each $transport;
            microsoft365_xoauth2_short_token,
            microsoft365_xoauth2_2000_character_token,
            microsoft365_xoauth2_16_kib_token,
            microsoft365_refuses_a_wrong_token,
            microsoft365_refuses_basic_auth,
            gmail_xoauth2_short_token,
            gmail_xoauth2_2000_character_token,
            gmail_xoauth2_16_kib_token,
            gmail_oauthbearer_short_token,
            gmail_oauthbearer_2000_character_token,
            gmail_oauthbearer_16_kib_token,
            gmail_refused_xoauth2_token_is_typed,
            gmail_refused_oauthbearer_token_is_typed,
            gmail_recent_user,
            gmail_login_delay_is_advertised_not_enforced,
            courier_login_delay_is_advertised_not_enforced,
            login_delay_refusal_has_its_code,
        );
    };
    (@each $transport:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let transport = $transport;
                $crate::scenarios::Transport::block_on(
                    &transport,
                    $crate::provider_scenarios::$name(&transport),
                );
            }
        )*
    };
}

const HOST: &str = "localhost";
const MS_USER: &str = "megan.bowen@contoso.onmicrosoft.com";
const GMAIL_USER: &str = "alice.example@gmail.com";

/// A token of `len` characters shaped like the services' (a JWT-like
/// base64url text with dots for Microsoft, `ya29.` for Google).
pub fn token(len: usize, seed: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut t = String::from("ya29.");
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    while t.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let c = ALPHABET[(x % 64) as usize];
        t.push(if t.len() % 700 == 699 {
            '.'
        } else {
            char::from(c)
        });
    }
    t.truncate(len);
    t
}

/// The three token lengths: a short one, a typical Microsoft or Google
/// access token (2,000 characters) and a 16 KiB one (large group claims).
pub const TOKEN_LENGTHS: [usize; 3] = [60, 2000, 16 * 1024];

/// Messages that stress the framing a little, each ending in CRLF.
pub fn provider_messages(tag: &str) -> Vec<Vec<u8>> {
    let mut long =
        format!("Subject: {tag} long\r\nMessage-ID: <long.{tag}@test>\r\n\r\n").into_bytes();
    for i in 0..300 {
        long.extend_from_slice(format!("{tag} line {i:04} {}\r\n", "w".repeat(i % 90)).as_bytes());
        if i % 50 == 0 {
            long.extend_from_slice(b".a line with a leading dot\r\n.\r\n");
        }
    }
    vec![
        format!("From: a@example.org\r\nSubject: {tag} one\r\n\r\nHello\r\n").into_bytes(),
        format!("Subject: {tag} dots\r\n\r\n.\r\n..\r\n. \r\nend.\r\n").into_bytes(),
        long,
        format!("Subject: {tag} 8bit\r\n\r\ncaf\u{e9} \u{2603}\r\n").into_bytes(),
    ]
}

fn options() -> crate::scenarios::Options {
    trusting(&TestPki::shared().ca_pem).timeouts(timeouts(Duration::from_secs(10)))
}

fn start(provider: Provider) -> ProviderServer {
    provider.timeout(Duration::from_secs(5)).start()
}

async fn connect<T: Transport>(t: &T, server: &ProviderServer) -> Conn<T> {
    match t.connect_tls(HOST, server.port(), &options()).await {
        Ok(c) => c,
        Err(e) => panic!("connect_tls to the {:?} profile: {e:?}", server.profile()),
    }
}

#[track_caller]
fn clean(log: &SessionLog, what: &str) {
    assert!(log.violations.is_empty(), "{what}: {log:#?}");
}

/// The session logged in with `mechanism` in two steps: `AUTH <mechanism>`
/// alone, then the base64 message on a line of its own.
#[track_caller]
fn two_step(log: &SessionLog, mechanism: &str, what: &str) {
    assert_eq!(
        log.logins,
        vec![(mechanism.to_string(), false)],
        "{what}: {log:#?}"
    );
    let at = log
        .lines
        .iter()
        .position(|l| *l == format!("AUTH {mechanism}"))
        .unwrap_or_else(|| panic!("{what}: no bare AUTH {mechanism} line: {:?}", log.lines));
    assert!(
        log.lines.get(at + 1).is_some_and(|l| !l.is_empty()),
        "{what}: no response line after AUTH"
    );
}

/// Logs in with `method` and `secret`, checks UIDL and every message byte for
/// byte, quits, and returns the session's log.
async fn login_and_read<T: Transport>(
    t: &T,
    server: &ProviderServer,
    user: &str,
    secret: &str,
    method: AuthMethod,
    messages: &[Vec<u8>],
) -> SessionLog {
    let what = format!(
        "{:?} {method:?} with {} characters",
        server.profile(),
        secret.len()
    );
    let mut s = connect(t, server).await;
    if let Err(e) = s.login_with(user, secret.to_string(), method).await {
        let logs = server.sessions();
        panic!("{what}: login: {e:?}\nserver saw: {logs:#?}");
    }
    let stat = s
        .stat()
        .await
        .unwrap_or_else(|e| panic!("{what}: STAT: {e:?}"));
    assert_eq!(stat.count as usize, messages.len(), "{what}");
    assert_eq!(
        stat.size,
        messages.iter().map(|m| m.len() as u64).sum::<u64>(),
        "{what}"
    );
    let uidl = s
        .uidl()
        .await
        .unwrap_or_else(|e| panic!("{what}: UIDL: {e:?}"));
    let uids: Vec<String> = uidl.iter().map(|u| u.uid.clone()).collect();
    assert_eq!(uids, server.uidls(), "{what}");
    for (i, want) in messages.iter().enumerate() {
        let msg = n(i as u32 + 1);
        let got = retr_bytes(&mut s, msg)
            .await
            .unwrap_or_else(|e| panic!("{what}: RETR {}: {e:?}", i + 1));
        assert!(got == *want, "{what}: message {} differs", i + 1);
    }
    let head = top_bytes(&mut s, n(1), 0)
        .await
        .unwrap_or_else(|e| panic!("{what}: TOP: {e:?}"));
    assert!(
        messages[0].starts_with(&head) && head.ends_with(b"\r\n\r\n"),
        "{what}"
    );
    s.quit()
        .await
        .unwrap_or_else(|e| panic!("{what}: QUIT: {e:?}"));
    let logs = server.sessions();
    assert_eq!(logs.len(), 1, "{what}: {logs:#?}");
    logs.into_iter().next().expect("one session")
}

async fn oauth_login<T: Transport>(t: &T, profile: Profile, method: AuthMethod, len: usize) {
    let tok = token(len, len as u8);
    let tag = format!("{profile:?}-{len}");
    let messages = provider_messages(&tag);
    let (provider, user) = match profile {
        Profile::Microsoft365 => (Provider::microsoft365(MS_USER, &tok), MS_USER),
        _ => (Provider::gmail(GMAIL_USER, &tok), GMAIL_USER),
    };
    let mechanism = match method {
        AuthMethod::XOAuth2 => "XOAUTH2",
        _ => "OAUTHBEARER",
    };
    let server = start(provider.messages(messages.clone()));
    let log = login_and_read(t, &server, user, &tok, method, &messages).await;
    let logs = server.finish();
    let what = format!("{tag} {mechanism}");
    clean(&logs[0], &what);
    two_step(&log, mechanism, &what);
    assert!(
        logs[0].authenticated && logs[0].quit,
        "{what}: {:#?}",
        logs[0]
    );
}

/// Microsoft 365, `XOAUTH2` with a 60-character token: two steps even when
/// the inline form would fit (Exchange refuses it and closes).
pub async fn microsoft365_xoauth2_short_token<T: Transport>(t: &T) {
    oauth_login(
        t,
        Profile::Microsoft365,
        AuthMethod::XOAuth2,
        TOKEN_LENGTHS[0],
    )
    .await;
}

/// Microsoft 365, `XOAUTH2` with a 2,000-character token.
pub async fn microsoft365_xoauth2_2000_character_token<T: Transport>(t: &T) {
    oauth_login(
        t,
        Profile::Microsoft365,
        AuthMethod::XOAuth2,
        TOKEN_LENGTHS[1],
    )
    .await;
}

/// Microsoft 365, `XOAUTH2` with a 16 KiB token.
pub async fn microsoft365_xoauth2_16_kib_token<T: Transport>(t: &T) {
    oauth_login(
        t,
        Profile::Microsoft365,
        AuthMethod::XOAuth2,
        TOKEN_LENGTHS[2],
    )
    .await;
}

/// Microsoft 365 refuses another token with a plain `-ERR`; the connection
/// stays usable (a second attempt with the right token logs in).
pub async fn microsoft365_refuses_a_wrong_token<T: Transport>(t: &T) {
    let good = token(2000, 1);
    let server = start(Provider::microsoft365(MS_USER, &good).messages(provider_messages("ms")));
    let mut s = connect(t, &server).await;
    let err = s
        .login_with(MS_USER, token(2000, 2), AuthMethod::XOAuth2)
        .await
        .expect_err("a wrong token");
    let Error::Server(e) = err else {
        panic!("a wrong token: expected a -ERR, got {err:?}")
    };
    assert!(e.text.as_str().contains("Authentication failure"), "{e:?}");
    assert_eq!(e.token_refusal, None, "Microsoft sends no JSON report");
    s.login_with(MS_USER, good, AuthMethod::XOAuth2)
        .await
        .expect("the right token after a wrong one");
    s.quit().await.expect("QUIT");
    let logs = server.finish();
    clean(&logs[0], "wrong then right token");
    assert_eq!(logs[0].logins.len(), 2, "{:#?}", logs[0]);
    assert!(logs[0]
        .logins
        .iter()
        .all(|(m, inline)| m == "XOAUTH2" && !inline));
}

/// Basic auth is off at Microsoft 365: `USER`/`PASS` and `AUTH PLAIN` are
/// refused with `-ERR`, and `auto` (which never picks a token mechanism for
/// a password) does not get in either.
pub async fn microsoft365_refuses_basic_auth<T: Transport>(t: &T) {
    let server = start(Provider::microsoft365(MS_USER, &token(100, 3)));
    let mut s = connect(t, &server).await;
    for (name, method) in [("USER", AuthMethod::UserPass), ("PLAIN", AuthMethod::Plain)] {
        let err = s
            .login_with(MS_USER, "a password".to_string(), method)
            .await
            .expect_err("basic auth is off");
        assert!(matches!(err, Error::Server(_)), "{name}: {err:?}");
    }
    drop(s);
    let logs = server.finish();
    assert!(!logs[0].authenticated, "{:#?}", logs[0]);
}

/// Gmail, `XOAUTH2` with a 60-character token.
pub async fn gmail_xoauth2_short_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::XOAuth2, TOKEN_LENGTHS[0]).await;
}

/// Gmail, `XOAUTH2` with a 2,000-character token.
pub async fn gmail_xoauth2_2000_character_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::XOAuth2, TOKEN_LENGTHS[1]).await;
}

/// Gmail, `XOAUTH2` with a 16 KiB token.
pub async fn gmail_xoauth2_16_kib_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::XOAuth2, TOKEN_LENGTHS[2]).await;
}

/// Gmail, `OAUTHBEARER` with a 60-character token.
pub async fn gmail_oauthbearer_short_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::OAuthBearer, TOKEN_LENGTHS[0]).await;
}

/// Gmail, `OAUTHBEARER` with a 2,000-character token.
pub async fn gmail_oauthbearer_2000_character_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::OAuthBearer, TOKEN_LENGTHS[1]).await;
}

/// Gmail, `OAUTHBEARER` with a 16 KiB token.
pub async fn gmail_oauthbearer_16_kib_token<T: Transport>(t: &T) {
    oauth_login(t, Profile::Gmail, AuthMethod::OAuthBearer, TOKEN_LENGTHS[2]).await;
}

async fn gmail_refusal<T: Transport>(t: &T, method: AuthMethod, ack: &str) {
    let name = format!("{method:?}");
    let server = start(Provider::gmail(GMAIL_USER, &token(2000, 4)));
    let mut s = connect(t, &server).await;
    let err = s
        .login_with(GMAIL_USER, token(2000, 5), method)
        .await
        .expect_err("an expired token");
    let Error::Server(e) = err else {
        panic!("{name}: expected the final -ERR, got {err:?}")
    };
    assert_eq!(e.code, Some(ResponseCode::Auth), "{e:?}");
    assert!(e.text.as_str().contains("Invalid credentials"), "{e:?}");
    let refusal = e
        .token_refusal
        .clone()
        .unwrap_or_else(|| panic!("{name}: the JSON report is in the error: {e:?}"));
    assert_eq!(refusal.status.as_str(), "400");
    assert_eq!(
        refusal.scope.as_ref().map(|s| s.as_str()),
        Some(GMAIL_SCOPE)
    );
    assert_eq!(refusal.schemes.as_ref().map(|s| s.as_str()), Some("Bearer"));
    let shown = e.to_string();
    assert!(
        shown.contains("the token was refused") && shown.contains(GMAIL_SCOPE),
        "{shown}"
    );
    // The session is still in step: NOOP is refused before login, but
    // answered.
    let noop = s.noop().await;
    assert!(
        !matches!(noop, Err(Error::Closed | Error::Protocol(_))),
        "{noop:?}"
    );
    drop(s);
    let logs = server.finish();
    let log = &logs[0];
    clean(log, &format!("{name} refusal"));
    let auth = log
        .lines
        .iter()
        .position(|l| l.starts_with("AUTH "))
        .expect("an AUTH line");
    assert_eq!(
        log.lines.get(auth + 2).map(String::as_str),
        Some(ack),
        "{name}: the refusal is answered with {ack:?}: {:?}",
        log.lines
    );
    assert!(!log.authenticated);
}

/// Gmail refuses an `XOAUTH2` token: the JSON challenge is answered with an
/// empty line, and the final `-ERR [AUTH]` carries the typed refusal
/// (status 400, the scope) into the error and its words.
pub async fn gmail_refused_xoauth2_token_is_typed<T: Transport>(t: &T) {
    gmail_refusal(t, AuthMethod::XOAuth2, "").await;
}

/// The same for `OAUTHBEARER`, whose acknowledgement is `AQ==` (0x01).
pub async fn gmail_refused_oauthbearer_token_is_typed<T: Transport>(t: &T) {
    gmail_refusal(t, AuthMethod::OAuthBearer, "AQ==").await;
}

/// `recent:user@gmail.com` logs in to the same mailbox, and the name goes to
/// the server as given.
pub async fn gmail_recent_user<T: Transport>(t: &T) {
    let tok = token(2000, 6);
    let messages = provider_messages("recent");
    let server = start(Provider::gmail(GMAIL_USER, &tok).messages(messages.clone()));
    let recent = format!("recent:{GMAIL_USER}");
    let log = login_and_read(t, &server, &recent, &tok, AuthMethod::XOAuth2, &messages).await;
    let logs = server.finish();
    clean(&logs[0], "recent:");
    two_step(&log, "XOAUTH2", "recent:");
    // The name went to the server as given, prefix and all.
    let at = log
        .lines
        .iter()
        .position(|l| l == "AUTH XOAUTH2")
        .expect("AUTH XOAUTH2");
    let message = base64_decode(&log.lines[at + 1]).expect("base64");
    let want = format!("user={recent}\x01auth=Bearer {tok}\x01\x01");
    assert!(
        message == want.as_bytes(),
        "the XOAUTH2 message names {recent}"
    );
    assert!(logs[0].authenticated);
}

/// Gmail advertises `LOGIN-DELAY 300` but a second session right after the
/// first logs in; the capabilities are read as Gmail sends them.
pub async fn gmail_login_delay_is_advertised_not_enforced<T: Transport>(t: &T) {
    let tok = token(60, 7);
    let messages = provider_messages("delay");
    let server = start(Provider::gmail(GMAIL_USER, &tok).messages(messages.clone()));
    for round in 0..2 {
        let mut s = connect(t, &server).await;
        let caps = s.capa().await.expect("CAPA");
        assert!(caps.top() && caps.uidl() && caps.user(), "{caps:?}");
        assert!(caps.has_sasl("OAUTHBEARER") && caps.has_sasl("XOAUTH2"));
        s.login_with(GMAIL_USER, tok.clone(), AuthMethod::XOAuth2)
            .await
            .unwrap_or_else(|e| panic!("login {round}: {e:?}"));
        assert_eq!(s.stat().await.expect("STAT").count, 4);
        s.quit().await.expect("QUIT");
    }
    let logs = server.finish();
    assert_eq!(logs.len(), 2);
    for log in &logs {
        clean(log, "two sessions");
        assert!(log.authenticated && log.quit, "{log:#?}");
    }
}

/// The Courier-like server advertises `LOGIN-DELAY 10`; two `USER`/`PASS`
/// sessions in a row both log in.
pub async fn courier_login_delay_is_advertised_not_enforced<T: Transport>(t: &T) {
    let messages = provider_messages("courier");
    let server = start(Provider::courier("bob", "b0b-pw").messages(messages.clone()));
    for _ in 0..2 {
        let mut s = connect(t, &server).await;
        s.login("bob", "b0b-pw".to_string())
            .await
            .expect("USER/PASS");
        let got = retr_bytes(&mut s, n(3)).await.expect("RETR 3");
        assert!(got == messages[2]);
        s.quit().await.expect("QUIT");
    }
    let logs = server.finish();
    assert_eq!(logs.len(), 2);
    assert!(logs
        .iter()
        .all(|l| l.authenticated && l.violations.is_empty()));
}

/// A server that does enforce the delay: the `-ERR [LOGIN-DELAY]` of the
/// login is a server error with that code.
pub async fn login_delay_refusal_has_its_code<T: Transport>(t: &T) {
    let server = start(Provider::courier("bob", "b0b-pw").refuse_login_delay());
    let mut s = connect(t, &server).await;
    let err = s
        .login("bob", "b0b-pw".to_string())
        .await
        .expect_err("the delay is enforced");
    match err {
        Error::Server(e) => assert_eq!(e.code, Some(ResponseCode::LoginDelay), "{e:?}"),
        other => panic!("expected -ERR [LOGIN-DELAY], got {other:?}"),
    }
    drop(s);
    let logs = server.finish();
    assert!(!logs[0].authenticated);
}
