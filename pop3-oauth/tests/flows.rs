//! The library against the scripted OAuth server of `test-support`: every
//! flow, refresh with and without rotation, dead refresh tokens, hostile
//! token endpoints, and concurrent refreshes.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use pop3_oauth::http::{HttpError, Limits};
use pop3_oauth::{
    to_store, AuthorizationRequest, Client, DeadReason, DeviceAuthorization, Error, HttpClient,
    Preset, ProviderSettings, Refreshed, Secret, StoredTokens, TokenStore, Tokens,
};
use test_support::oauth::{browse, DeviceStep, Fault, OAuthConfig, OAuthServer};

fn settings_for(server: &OAuthServer) -> ProviderSettings {
    let mut settings = Preset::Outlook.settings();
    settings.authorization_endpoint = server.authorization_url();
    settings.token_endpoint = server.token_url();
    settings.device_endpoint = Some(server.device_url());
    settings
}

fn client_for(server: &OAuthServer) -> Client {
    Client {
        id: server.config().client_id.clone(),
        secret: server.config().client_secret.clone().map(Secret::new),
    }
}

fn http() -> HttpClient {
    HttpClient::new().expect("a client").limits(Limits {
        timeout: Duration::from_secs(5),
        ..Limits::default()
    })
}

fn scratch(name: &str) -> TokenStore {
    let dir = std::env::temp_dir().join(format!("pop3-oauth-flows-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TokenStore::new(dir)
}

/// Stores an expired access token and a live refresh token, as a login
/// some time ago leaves them.
fn stale_login(server: &OAuthServer, store: &TokenStore, account: &str) -> String {
    let refresh = server.issue_refresh_token();
    let stored = to_store(
        &settings_for(server),
        Tokens {
            access_token: Secret::new("at-old"),
            expires_at: Some(pop3_oauth::now().saturating_sub(10)),
            refresh_token: Some(Secret::new(refresh.clone())),
            scope: None,
            obtained_at: None,
        },
    );
    store.save(account, &stored).expect("saved");
    refresh
}

#[test]
fn login_with_pkce_and_a_loopback_redirect() {
    let server = OAuthServer::start(OAuthConfig {
        client_secret: Some("not-so-secret".into()),
        ..OAuthConfig::default()
    });
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    assert!(request.redirect_uri().starts_with("http://127.0.0.1:"));
    assert!(request.url().contains("code_challenge_method=S256"));
    let url = request.url().to_owned();
    let browser = std::thread::spawn(move || browse(&url));
    let tokens = request
        .finish(&http(), &settings, &client, Duration::from_secs(10))
        .expect("tokens");
    let (status, page) = browser.join().expect("the browser").expect("browsed");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Signed in"));
    assert!(tokens.access_token.expose().starts_with("at-"));
    assert!(tokens.refresh_token.is_some());
    assert_eq!(server.grants(), ["authorization_code"]);
    // Nothing secret in the Debug form.
    let shown = format!("{tokens:?}");
    assert!(!shown.contains("at-") && !shown.contains("rt-"), "{shown}");
}

#[test]
fn a_redirect_with_another_state_is_ignored_and_the_real_one_still_counts() {
    let server = OAuthServer::start(OAuthConfig::default());
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let forged = format!("{}?code=code-1&state=forged", request.redirect_uri());
    let stateless = format!("{}?code=code-1", request.redirect_uri());
    let url = request.url().to_owned();
    let browser = std::thread::spawn(move || {
        let forged = browse(&forged).map(|(status, _)| status);
        let stateless = browse(&stateless).map(|(status, _)| status);
        (forged, stateless, browse(&url))
    });
    let outcome = request.finish(&http(), &settings, &client, Duration::from_secs(10));
    assert!(outcome.is_ok(), "{outcome:?}");
    let (forged, stateless, real) = browser.join().expect("the browser");
    assert_eq!((forged, stateless), (Ok(400), Ok(400)));
    assert_eq!(real.map(|(status, _)| status), Ok(200));
    assert_eq!(
        server.grants(),
        ["authorization_code"],
        "only the real code"
    );
}

#[test]
fn a_timeout_without_limit_is_no_panic() {
    let server = OAuthServer::start(OAuthConfig::default());
    let (settings, client) = (settings_for(&server), client_for(&server));
    let unlimited = HttpClient::new().expect("a client").limits(Limits {
        timeout: Duration::MAX,
        ..Limits::default()
    });
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let url = request.url().to_owned();
    let browser = std::thread::spawn(move || browse(&url));
    let tokens = request.finish(&unlimited, &settings, &client, Duration::MAX);
    assert!(tokens.is_ok(), "{tokens:?}");
    assert_eq!(
        browser.join().ok().and_then(Result::ok).map(|(s, _)| s),
        Some(200)
    );
}

#[test]
fn only_a_forged_redirect_waits_until_the_deadline() {
    let server = OAuthServer::start(OAuthConfig::default());
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let forged = format!("{}?code=code-1&state=forged", request.redirect_uri());
    let browser = std::thread::spawn(move || browse(&forged));
    let started = std::time::Instant::now();
    let outcome = request.finish(&http(), &settings, &client, Duration::from_millis(1500));
    assert!(
        matches!(outcome, Err(Error::AuthorizationTimedOut)),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(
        browser.join().ok().and_then(Result::ok).map(|(s, _)| s),
        Some(400)
    );
    assert!(server.grants().is_empty(), "no code was exchanged");
}

#[test]
fn a_refused_consent_and_a_browser_that_never_comes_are_errors() {
    let server = OAuthServer::start(OAuthConfig::default());
    server.deny_consent();
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let url = request.url().to_owned();
    let browser = std::thread::spawn(move || browse(&url));
    let outcome = request.finish(&http(), &settings, &client, Duration::from_secs(10));
    assert!(
        matches!(&outcome, Err(Error::AuthorizationDenied { error, .. }) if error == "access_denied"),
        "{outcome:?}"
    );
    let _ = browser.join();

    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let outcome = request.finish(&http(), &settings, &client, Duration::from_millis(200));
    assert!(matches!(outcome, Err(Error::AuthorizationTimedOut)));
}

#[test]
fn the_device_flow_waits_through_pending_and_slow_down() {
    let server = OAuthServer::start(OAuthConfig::default());
    server.device_script(&[
        DeviceStep::Pending,
        DeviceStep::SlowDown,
        DeviceStep::Pending,
        DeviceStep::Granted,
    ]);
    let (settings, client) = (settings_for(&server), client_for(&server));
    let mut device =
        DeviceAuthorization::start(&http(), &settings, &client).expect("a device code");
    assert_eq!(device.user_code, "ABCD-EFGH");
    assert!(device
        .message
        .as_deref()
        .is_some_and(|m| m.contains("ABCD-EFGH")));
    let mut waits = Vec::new();
    let tokens = device
        .wait(&http(), &settings, &client, |wait| {
            waits.push(wait.as_secs())
        })
        .expect("granted");
    assert!(tokens.refresh_token.is_some());
    // One second as asked, then five more after slow_down, kept.
    assert_eq!(waits, [1, 1, 6, 6]);
    assert_eq!(server.device_polls(), 4);
}

#[test]
fn an_expired_device_code_and_google_are_said_plainly() {
    let server = OAuthServer::start(OAuthConfig::default());
    server.device_script(&[DeviceStep::Pending, DeviceStep::Expired]);
    let (settings, client) = (settings_for(&server), client_for(&server));
    let mut device =
        DeviceAuthorization::start(&http(), &settings, &client).expect("a device code");
    let outcome = device.wait(&http(), &settings, &client, |_| {});
    assert!(
        matches!(outcome, Err(Error::DeviceCodeExpired)),
        "{outcome:?}"
    );

    let mut google = Preset::Gmail.settings();
    google.token_endpoint = server.token_url();
    let refused = DeviceAuthorization::start(&http(), &google, &client).err();
    let said = refused
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(matches!(refused, Some(Error::DeviceFlowUnavailable { .. })));
    assert!(
        said.contains("Google does not allow the device flow"),
        "{said}"
    );
    assert_eq!(server.device_polls(), 2, "Google was not asked");
}

#[test]
fn refresh_keeps_an_unrotated_token_and_skips_fresh_ones() {
    let server = OAuthServer::start(OAuthConfig::default());
    let store = scratch("plain");
    let refresh = stale_login(&server, &store, "alice");
    let (settings, client) = (settings_for(&server), client_for(&server));
    let (stored, refreshed) = store
        .access_token("alice", &http(), &settings, &client)
        .expect("refreshed");
    assert_eq!(refreshed, Refreshed::Yes);
    assert!(stored.tokens.access_token.expose().starts_with("at-"));
    assert_eq!(
        stored.tokens.refresh_token.as_ref().map(Secret::expose),
        Some(refresh.as_str())
    );
    let (again, refreshed) = store
        .access_token("alice", &http(), &settings, &client)
        .expect("fresh");
    assert_eq!(refreshed, Refreshed::No);
    assert_eq!(again, stored);
    assert_eq!(server.refreshes(), 1);
    let _ = std::fs::remove_dir_all(store.dir());
}

#[test]
fn refresh_happens_before_expiry_and_a_rotated_token_is_saved_at_once() {
    let server = OAuthServer::start(OAuthConfig {
        rotate: true,
        ..OAuthConfig::default()
    });
    let store = scratch("rotate");
    let old = stale_login(&server, &store, "bob");
    // Still valid for two minutes: inside the refresh margin.
    let mut stored = store.load("bob").ok().flatten().expect("stored");
    stored.tokens.expires_at = Some(pop3_oauth::now() + 120);
    store.save("bob", &stored).expect("saved");
    let (settings, client) = (settings_for(&server), client_for(&server));
    let (_, refreshed) = store
        .access_token("bob", &http(), &settings, &client)
        .expect("refreshed");
    assert_eq!(refreshed, Refreshed::Yes);
    let on_disk: StoredTokens = store.load("bob").ok().flatten().expect("stored");
    let new = on_disk.tokens.refresh_token.map(|t| t.expose().to_owned());
    assert_ne!(new.as_deref(), Some(old.as_str()));
    assert_eq!(
        server.live_refresh_tokens(),
        new.into_iter().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(store.dir());
}

#[test]
fn dead_refresh_tokens_are_typed() {
    let server = OAuthServer::start(OAuthConfig::default());
    let store = scratch("dead");
    let (settings, client) = (settings_for(&server), client_for(&server));
    for (description, reason) in [
        (
            "AADSTS700082: The refresh token has expired due to inactivity.",
            DeadReason::Inactive,
        ),
        (
            "Token has been expired or revoked.",
            DeadReason::ExpiredOrRevoked,
        ),
        ("Bad Request", DeadReason::InvalidGrant),
    ] {
        stale_login(&server, &store, "carol");
        server.fault(Fault::InvalidGrant(description.into()));
        let outcome = store.access_token("carol", &http(), &settings, &client);
        assert!(
            matches!(&outcome, Err(Error::RefreshTokenDead { reason: r, .. }) if *r == reason),
            "{outcome:?}"
        );
    }
    server.revoke_all();
    let outcome = store.access_token("carol", &http(), &settings, &client);
    assert!(matches!(
        outcome,
        Err(Error::RefreshTokenDead {
            reason: DeadReason::InvalidGrant,
            ..
        })
    ));
    assert!(matches!(
        store.access_token("nobody", &http(), &settings, &client),
        Err(Error::NotLoggedIn)
    ));
    let _ = std::fs::remove_dir_all(store.dir());
}

#[test]
fn hostile_token_endpoints_are_refused_without_leaking() {
    let server = OAuthServer::start(OAuthConfig::default());
    let store = scratch("hostile");
    let (settings, client) = (settings_for(&server), client_for(&server));
    let quick = http().limits(Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    type Expected = fn(&Error) -> bool;
    let cases: [(Fault, Expected); 5] = [
        (Fault::Huge, |e| {
            matches!(e, Error::Http(HttpError::TooLarge { part: "body", .. }))
        }),
        (Fault::WrongContentType, |e| {
            matches!(e, Error::UnexpectedContentType { .. })
        }),
        (Fault::Redirect, |e| {
            matches!(e, Error::Http(HttpError::Redirect { status: 307 }))
        }),
        (Fault::Malformed, |e| {
            matches!(e, Error::MalformedAnswer { .. })
        }),
        (Fault::Slow(Duration::from_secs(2)), |e| {
            matches!(e, Error::Http(HttpError::Timeout))
        }),
    ];
    for (fault, expected) in cases {
        let refresh = stale_login(&server, &store, "dave");
        server.fault(fault.clone());
        let Err(error) = store.access_token("dave", &quick, &settings, &client) else {
            panic!("{fault:?} was accepted");
        };
        assert!(expected(&error), "{fault:?}: {error:?}");
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains(&refresh) && !shown.contains("at-"),
            "{shown}"
        );
        // The stored tokens are untouched by a failed refresh.
        let kept = store
            .load("dave")
            .ok()
            .flatten()
            .and_then(|s| s.tokens.refresh_token);
        assert_eq!(kept.as_ref().map(Secret::expose), Some(refresh.as_str()));
    }
    assert_eq!(server.redirects_followed(), 0, "a redirect was followed");
    let _ = std::fs::remove_dir_all(store.dir());
}

#[test]
fn concurrent_refreshes_never_present_a_rotated_token() {
    let server = Arc::new(OAuthServer::start(OAuthConfig {
        rotate: true,
        // Shorter than the refresh margin, as some providers' tokens are:
        // a token another thread just got must still be taken.
        access_lifetime: 60,
        ..OAuthConfig::default()
    }));
    let store = scratch("race");
    stale_login(&server, &store, "erin");
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (server, store, barrier) =
                (Arc::clone(&server), store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let (settings, client) = (settings_for(&server), client_for(&server));
                barrier.wait();
                store
                    .access_token("erin", &http(), &settings, &client)
                    .map(|(s, r)| (s.tokens.access_token, r))
            })
        })
        .collect();
    let outcomes: Vec<_> = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .collect();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let refreshed = outcomes
        .iter()
        .flatten()
        .filter(|(_, r)| *r == Refreshed::Yes)
        .count();
    assert_eq!(refreshed, 1);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(server.stale_refreshes(), 0);
    let _ = std::fs::remove_dir_all(store.dir());
}

/// A one-answer HTTPS token endpoint with the test CA's certificate.
fn https_endpoint() -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = test_support::rustls_server_config(&test_support::TestPki::shared().server);
    let server = std::thread::spawn(move || {
        let Ok((socket, _)) = listener.accept() else {
            return;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(connection) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match tls.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return,
            }
        }
        let body = r#"{"access_token":"at-tls","token_type":"Bearer","expires_in":3600}"#;
        let _ = write!(
            tls,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (port, server)
}

#[test]
fn https_endpoints_work_over_the_workspace_provider_and_verify_certificates() {
    let (port, server) = https_endpoint();
    let trusting =
        HttpClient::with_roots(test_support::TestPki::shared().root_store()).expect("a client");
    let answer = trusting
        .post_form(
            &format!("https://localhost:{port}/token"),
            &[("grant_type", "refresh_token")],
        )
        .expect("an answer over TLS");
    assert_eq!(answer.status, 200);
    assert!(answer.body.starts_with(b"{\"access_token\":\"at-tls\""));
    let _ = server.join();

    // The built-in roots do not hold the test CA: the handshake fails.
    let (port, server) = https_endpoint();
    let refused = http().post_form(&format!("https://127.0.0.1:{port}/token"), &[]);
    assert!(matches!(refused, Err(HttpError::Tls(_))), "{refused:?}");
    let _ = server.join();
}

#[test]
fn a_long_lived_session_gets_a_fresh_token_from_its_source() {
    use pop3_oauth::{AccessTokenSource, StoredAccount};
    let server = OAuthServer::start(OAuthConfig::default());
    let store = scratch("source");
    stale_login(&server, &store, "frank");
    let source = StoredAccount {
        store: store.clone(),
        account: "frank".into(),
        http: http(),
        settings: settings_for(&server),
        client: client_for(&server),
    };
    // The stored token has expired: the source refreshes it, once.
    let first = source.access_token().expect("a token");
    assert_ne!(first.expose(), "at-old");
    assert_eq!(source.access_token().expect("a token"), first);
    assert_eq!(server.refreshes(), 1);
    // Any closure is a source too (a token from elsewhere).
    let fixed = || Ok::<_, Error>(Secret::new("from-a-vault"));
    assert_eq!(
        fixed
            .access_token()
            .map(|t| t.expose().to_owned())
            .ok()
            .as_deref(),
        Some("from-a-vault")
    );
    let _ = std::fs::remove_dir_all(store.dir());
}

#[test]
fn a_refresh_goes_through_the_socks5_proxy_when_one_is_set() {
    use pop3_transport::socks5::Socks5Proxy;
    use test_support::socks5::{Behaviour, Socks5Config, Socks5Server};

    let server = OAuthServer::start(OAuthConfig::default());
    let store = scratch("proxy");
    stale_login(&server, &store, "a");
    let proxy = Socks5Server::start(Socks5Config::relay().require_auth("tor", "circuit-7"));
    let through = http().through_proxy(
        Socks5Proxy::parse(&proxy.url(Some(("tor", "circuit-7")))).expect("a proxy URL"),
    );
    let (stored, refreshed) = store
        .access_token("a", &through, &settings_for(&server), &client_for(&server))
        .expect("refreshed through the proxy");
    assert_eq!(refreshed, Refreshed::Yes);
    assert!(stored.tokens.access_token.expose().starts_with("at-"));
    let asked = proxy.requests();
    let token_port = pop3_oauth::http::Endpoint::parse(&server.token_url())
        .expect("a URL")
        .port;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        (asked[0].host.as_str(), asked[0].port),
        ("127.0.0.1", token_port)
    );
    assert!(asked[0].credentials.is_some());

    // A proxy that refuses the tunnel is said, naming the proxy, and the
    // endpoint is not reached directly instead.
    let refusing = Socks5Server::start(Socks5Config::with_behaviour(Behaviour::Refuse(5)));
    let through = http().through_proxy(Socks5Proxy::parse(&refusing.url(None)).expect("a URL"));
    stale_login(&server, &store, "a");
    let refreshes = server.refreshes();
    let outcome = store.access_token("a", &through, &settings_for(&server), &client_for(&server));
    assert!(
        matches!(&outcome, Err(Error::Http(HttpError::Proxy { .. }))),
        "{outcome:?}"
    );
    assert_eq!(server.refreshes(), refreshes);
    let _ = std::fs::remove_dir_all(store.dir());
}

/// The loopback redirect the provider sends the browser to for `request`,
/// read from the authorization endpoint's `Location` without following it.
fn redirect_target(request: &AuthorizationRequest) -> String {
    use std::io::{Read, Write};
    let rest = request.url().strip_prefix("http://").expect("plain http");
    let (authority, target) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(authority).expect("the provider");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split("\r\n")
        .find_map(|line| {
            line.strip_prefix("Location: ")
                .or_else(|| line.strip_prefix("location: "))
        })
        .expect("a redirect")
        .trim()
        .to_owned()
}

#[test]
fn idle_browser_connections_do_not_hold_up_the_redirect() {
    let server = OAuthServer::start(OAuthConfig::default());
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let port = request
        .redirect_uri()
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse::<u16>()
        .expect("a port");
    // Two speculative connections that never say anything, opened first.
    let idle: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects"))
        .collect();
    let url = request.url().to_owned();
    let browser = std::thread::spawn(move || browse(&url));
    let started = std::time::Instant::now();
    let tokens = request.finish(&http(), &settings, &client, Duration::from_secs(30));
    assert!(tokens.is_ok(), "{tokens:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        browser.join().ok().and_then(Result::ok).map(|(s, _)| s),
        Some(200)
    );
    drop(idle);
}

#[test]
fn a_long_redirect_request_gets_its_whole_page() {
    use std::io::{Read, Write};
    let server = OAuthServer::start(OAuthConfig::default());
    let (settings, client) = (settings_for(&server), client_for(&server));
    let request = AuthorizationRequest::start(&settings, &client).expect("listening");
    let target = redirect_target(&request);
    let rest = target.strip_prefix("http://").expect("plain http");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let authority = authority.to_owned();
    // A browser's request: the line, then kilobytes of headers (cookies,
    // client hints) that the listener must read before it closes.
    let mut sent = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for index in 0..64 {
        sent.push_str(&format!("X-Filler-{index}: {}\r\n", "v".repeat(100)));
    }
    sent.push_str("\r\n");
    let browser = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(&authority).expect("connects");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        stream.write_all(sent.as_bytes()).expect("sent");
        let mut page = Vec::new();
        let read = stream.read_to_end(&mut page);
        (
            read.map(|_| ()),
            String::from_utf8_lossy(&page).into_owned(),
        )
    });
    let tokens = request.finish(&http(), &settings, &client, Duration::from_secs(10));
    assert!(tokens.is_ok(), "{tokens:?}");
    let (read, page) = browser.join().expect("the browser");
    assert!(read.is_ok(), "{read:?}");
    assert!(page.contains("Signed in"), "{page}");
}
