//! A scripted OAuth 2.0 authorization server on loopback, and a test
//! "browser" that follows an authorization URL to its loopback redirect.
//!
//! [`OAuthServer::start`] binds `127.0.0.1:0` and answers, each connection on
//! its own thread:
//!
//! * `GET /authorize` — checks `response_type=code`, the client ID, a
//!   `code_challenge` with `code_challenge_method=S256`, a `state` and a
//!   loopback `redirect_uri`, then redirects (302) there with a fresh code
//!   and the same `state`; a request lacking any of them is redirected with
//!   `error=invalid_request`. [`OAuthServer::deny_consent`] makes it
//!   redirect with `error=access_denied`.
//! * `POST /token` — `authorization_code` (the PKCE verifier must hash to
//!   the challenge, the `redirect_uri` must match, a code works once),
//!   `refresh_token` (rotating the refresh token or not, per
//!   [`OAuthConfig::rotate`]; a rotated-away or unknown token is
//!   `invalid_grant`, and each presentation of a rotated-away token is
//!   counted in [`OAuthServer::stale_refreshes`]), and the device code grant.
//! * `POST /devicecode` — a device code whose polls follow
//!   [`OAuthServer::device_script`] (pending, slow_down, granted, expired).
//!
//! [`OAuthServer::fault`] queues faults for the next token answers: slow,
//! malformed JSON, a huge body, a wrong content type, a redirect (to
//! `/elsewhere`, whose visits are counted: a client must never follow), or
//! `invalid_grant` with a chosen description (Microsoft's `AADSTS700082`,
//! Google's "expired or revoked").
//!
//! Issued access tokens are `at-N` and refresh tokens `rt-N`, N counting
//! from 1 for each server, so tests can predict them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The registered application the server knows.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The client ID it accepts.
    pub client_id: String,
    /// The client secret it requires, if any.
    pub client_secret: Option<String>,
    /// `expires_in` of each access token.
    pub access_lifetime: u64,
    /// Whether each refresh hands out a new refresh token (Microsoft) and
    /// retires the old one.
    pub rotate: bool,
}

impl Default for OAuthConfig {
    fn default() -> OAuthConfig {
        OAuthConfig {
            client_id: "test-client".into(),
            client_secret: None,
            access_lifetime: 3600,
            rotate: false,
        }
    }
}

/// A fault for the next token endpoint answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Wait this long before answering (normally).
    Slow(Duration),
    /// A 200 `application/json` whose body is not JSON.
    Malformed,
    /// 1 MiB of JSON-looking body without a length.
    Huge,
    /// A 200 `text/html` page.
    WrongContentType,
    /// A 307 redirect to `/elsewhere` on this server.
    Redirect,
    /// `invalid_grant` with this `error_description`.
    InvalidGrant(String),
    /// Exactly this answer: a status line's status (`503 Service
    /// Unavailable`), a `Content-Type` and a body, as an overloaded provider
    /// or the gateway in front of it sends.
    Answer {
        /// The status and its reason phrase.
        status: &'static str,
        /// The media type.
        content_type: &'static str,
        /// The body.
        body: &'static str,
    },
}

/// What one poll of a device code gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStep {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`.
    SlowDown,
    /// Tokens.
    Granted,
    /// `expired_token`.
    Expired,
}

#[derive(Default)]
struct State {
    /// code → (challenge, redirect URI)
    codes: HashMap<String, (String, String)>,
    live_refresh: HashSet<String>,
    retired_refresh: HashSet<String>,
    issued: u64,
    faults: VecDeque<Fault>,
    device_script: VecDeque<DeviceStep>,
    device_codes: HashSet<String>,
    deny_consent: bool,
    refreshes: usize,
    stale_refreshes: usize,
    redirects_followed: usize,
    device_polls: usize,
    grants: Vec<String>,
}

/// The server; stops when dropped.
pub struct OAuthServer {
    addr: SocketAddr,
    config: OAuthConfig,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OAuthServer {
    /// Starts a server for `config`.
    pub fn start(config: OAuthConfig) -> OAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, config) = (Arc::clone(&state), Arc::clone(&stop), config.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (state, config) = (Arc::clone(&state), config.clone());
                            thread::spawn(move || serve(stream, &config, &state, addr));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        OAuthServer {
            addr,
            config,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorization endpoint's URL.
    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The device authorization endpoint's URL.
    pub fn device_url(&self) -> String {
        format!("{}/devicecode", self.base_url())
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Queues `fault` for the next token answer.
    pub fn fault(&self, fault: Fault) {
        lock(&self.state).faults.push_back(fault);
    }

    /// The answers to the polls of every device code, in order (after the
    /// script runs out, polls are granted).
    pub fn device_script(&self, steps: &[DeviceStep]) {
        lock(&self.state).device_script = steps.iter().copied().collect();
    }

    /// Makes the authorization endpoint refuse consent.
    pub fn deny_consent(&self) {
        lock(&self.state).deny_consent = true;
    }

    /// Issues a refresh token as a previous login would have, and returns it.
    pub fn issue_refresh_token(&self) -> String {
        let mut state = lock(&self.state);
        state.issued += 1;
        let token = format!("rt-{}", state.issued);
        state.live_refresh.insert(token.clone());
        token
    }

    /// Retires every refresh token (a revocation).
    pub fn revoke_all(&self) {
        let mut state = lock(&self.state);
        let live: Vec<String> = state.live_refresh.drain().collect();
        state.retired_refresh.extend(live);
    }

    /// Refresh requests received.
    pub fn refreshes(&self) -> usize {
        lock(&self.state).refreshes
    }

    /// Presentations of a refresh token that had been rotated away.
    pub fn stale_refreshes(&self) -> usize {
        lock(&self.state).stale_refreshes
    }

    /// Requests to `/elsewhere`, where [`Fault::Redirect`] points.
    pub fn redirects_followed(&self) -> usize {
        lock(&self.state).redirects_followed
    }

    /// Polls of device codes.
    pub fn device_polls(&self) -> usize {
        lock(&self.state).device_polls
    }

    /// The `grant_type` of each token request, in order.
    pub fn grants(&self) -> Vec<String> {
        lock(&self.state).grants.clone()
    }

    /// The refresh tokens currently valid.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        let mut live: Vec<String> = lock(&self.state).live_refresh.iter().cloned().collect();
        live.sort();
        live
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request, as far as the server needs it.
struct Request {
    method: String,
    path: String,
    query: String,
    body: String,
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut words = lines.next()?.split(' ');
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        body: String::from_utf8(body).ok()?,
    })
}

/// Decodes a form or query.
pub fn parse_form(text: &str) -> HashMap<String, String> {
    let decode = |part: &str| {
        let bytes = part.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 3 <= bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                byte => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn write_answer(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn json(stream: &mut TcpStream, status: &str, body: &str) {
    write_answer(
        stream,
        status,
        &[("Content-Type", "application/json; charset=utf-8")],
        body.as_bytes(),
    );
}

fn oauth_error(stream: &mut TcpStream, error: &str, description: &str) {
    json(
        stream,
        "400 Bad Request",
        &format!(r#"{{"error":"{error}","error_description":"{description}"}}"#),
    );
}

fn redirect(stream: &mut TcpStream, location: &str) {
    write_answer(stream, "302 Found", &[("Location", location)], b"");
}

fn serve(mut stream: TcpStream, config: &OAuthConfig, state: &Mutex<State>, addr: SocketAddr) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/authorize") => authorize(&mut stream, config, state, &request),
        ("POST", "/token") => token(&mut stream, config, state, &request, addr),
        ("POST", "/devicecode") => {
            let form = parse_form(&request.body);
            if form.get("client_id") != Some(&config.client_id) {
                return oauth_error(&mut stream, "invalid_client", "unknown client");
            }
            let mut state = lock(state);
            state.issued += 1;
            let code = format!("dc-{}", state.issued);
            state.device_codes.insert(code.clone());
            drop(state);
            json(
                &mut stream,
                "200 OK",
                &format!(
                    r#"{{"device_code":"{code}","user_code":"ABCD-EFGH","verification_uri":"http://{addr}/device","expires_in":900,"interval":1,"message":"To sign in, open http://{addr}/device and enter ABCD-EFGH."}}"#
                ),
            );
        }
        (_, "/elsewhere") => {
            lock(state).redirects_followed += 1;
            json(
                &mut stream,
                "200 OK",
                r#"{"access_token":"stolen","expires_in":3600}"#,
            );
        }
        _ => write_answer(&mut stream, "404 Not Found", &[], b""),
    }
}

fn authorize(
    stream: &mut TcpStream,
    config: &OAuthConfig,
    state: &Mutex<State>,
    request: &Request,
) {
    let query = parse_form(&request.query);
    let Some(redirect_uri) = query
        .get("redirect_uri")
        .filter(|uri| uri.starts_with("http://127.0.0.1:") || uri.starts_with("http://localhost:"))
    else {
        return write_answer(stream, "400 Bad Request", &[], b"no loopback redirect_uri");
    };
    let state_value = query.get("state").cloned().unwrap_or_default();
    let back = |stream: &mut TcpStream, fields: &str| {
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        redirect(
            stream,
            &format!(
                "{redirect_uri}{separator}{fields}&state={}",
                encode(&state_value)
            ),
        );
    };
    let valid = query.get("response_type").map(String::as_str) == Some("code")
        && query.get("client_id") == Some(&config.client_id)
        && query.get("code_challenge_method").map(String::as_str) == Some("S256")
        && query.get("code_challenge").is_some_and(|c| c.len() == 43)
        && !state_value.is_empty();
    if !valid {
        return back(stream, "error=invalid_request");
    }
    let mut guard = lock(state);
    if guard.deny_consent {
        drop(guard);
        return back(
            stream,
            "error=access_denied&error_description=The+user+declined",
        );
    }
    guard.issued += 1;
    let code = format!("code-{}", guard.issued);
    let challenge = query.get("code_challenge").cloned().unwrap_or_default();
    guard
        .codes
        .insert(code.clone(), (challenge, redirect_uri.clone()));
    drop(guard);
    back(stream, &format!("code={code}"));
}

fn grant_tokens(state: &mut State, config: &OAuthConfig, with_refresh: bool) -> String {
    state.issued += 1;
    let access = format!("at-{}", state.issued);
    let refresh = if with_refresh {
        let token = format!("rt-{}", state.issued);
        state.live_refresh.insert(token.clone());
        format!(r#","refresh_token":"{token}""#)
    } else {
        String::new()
    };
    format!(
        r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{}{refresh},"scope":"mail"}}"#,
        config.access_lifetime
    )
}

fn token(
    stream: &mut TcpStream,
    config: &OAuthConfig,
    state: &Mutex<State>,
    request: &Request,
    addr: SocketAddr,
) {
    let form = parse_form(&request.body);
    let fault = lock(state).faults.pop_front();
    match fault {
        Some(Fault::Slow(wait)) => thread::sleep(wait),
        Some(Fault::Malformed) => {
            return json(stream, "200 OK", r#"{"access_token": "at-x", "expires_in"#)
        }
        Some(Fault::Huge) => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"access_token\":\"",
            );
            let block = [b'a'; 16 * 1024];
            for _ in 0..64 {
                if stream.write_all(&block).is_err() {
                    return;
                }
            }
            return;
        }
        Some(Fault::WrongContentType) => {
            return write_answer(
                stream,
                "200 OK",
                &[("Content-Type", "text/html")],
                b"<html>Sign in</html>",
            )
        }
        Some(Fault::Redirect) => {
            return write_answer(
                stream,
                "307 Temporary Redirect",
                &[("Location", &format!("http://{addr}/elsewhere"))],
                b"",
            )
        }
        Some(Fault::InvalidGrant(description)) => {
            return oauth_error(stream, "invalid_grant", &description)
        }
        Some(Fault::Answer {
            status,
            content_type,
            body,
        }) => {
            return write_answer(
                stream,
                status,
                &[("Content-Type", content_type)],
                body.as_bytes(),
            )
        }
        None => {}
    }
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret") != config.client_secret.as_ref()
    {
        return json(
            stream,
            "401 Unauthorized",
            r#"{"error":"invalid_client","error_description":"unknown client or wrong secret"}"#,
        );
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let mut guard = lock(state);
    guard.grants.push(grant.clone());
    match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect_uri)) = guard.codes.remove(&code) else {
                drop(guard);
                return oauth_error(stream, "invalid_grant", "unknown or used code");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.len() < 43 || computed != challenge {
                drop(guard);
                return oauth_error(stream, "invalid_grant", "PKCE verification failed");
            }
            if form.get("redirect_uri") != Some(&redirect_uri) {
                drop(guard);
                return oauth_error(stream, "invalid_grant", "redirect_uri differs");
            }
            let body = grant_tokens(&mut guard, config, true);
            drop(guard);
            json(stream, "200 OK", &body);
        }
        "refresh_token" => {
            guard.refreshes += 1;
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if guard.retired_refresh.contains(&presented) {
                guard.stale_refreshes += 1;
            }
            if !guard.live_refresh.contains(&presented) {
                drop(guard);
                return oauth_error(stream, "invalid_grant", "The refresh token is not valid.");
            }
            if config.rotate {
                guard.live_refresh.remove(&presented);
                guard.retired_refresh.insert(presented);
            }
            let body = grant_tokens(&mut guard, config, config.rotate);
            drop(guard);
            json(stream, "200 OK", &body);
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            guard.device_polls += 1;
            let code = form.get("device_code").cloned().unwrap_or_default();
            if !guard.device_codes.contains(&code) {
                drop(guard);
                return oauth_error(stream, "invalid_grant", "unknown device code");
            }
            let step = guard
                .device_script
                .pop_front()
                .unwrap_or(DeviceStep::Granted);
            match step {
                DeviceStep::Pending => {
                    drop(guard);
                    oauth_error(stream, "authorization_pending", "waiting for the user")
                }
                DeviceStep::SlowDown => {
                    drop(guard);
                    oauth_error(stream, "slow_down", "polling too fast")
                }
                DeviceStep::Expired => {
                    guard.device_codes.remove(&code);
                    drop(guard);
                    oauth_error(stream, "expired_token", "the code expired")
                }
                DeviceStep::Granted => {
                    guard.device_codes.remove(&code);
                    let body = grant_tokens(&mut guard, config, true);
                    drop(guard);
                    json(stream, "200 OK", &body);
                }
            }
        }
        _ => {
            drop(guard);
            oauth_error(stream, "unsupported_grant_type", "unknown grant")
        }
    }
}

/// The test "browser": fetches `url` (plain HTTP on loopback) and, while
/// the answer is a redirect, its `Location` (at most 5 hops). Returns the
/// last status and body.
pub fn browse(url: &str) -> Result<(u16, String), String> {
    let mut url = url.to_owned();
    for _ in 0..5 {
        let rest = url.strip_prefix("http://").ok_or("not http://")?;
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let target = if target.is_empty() { "/" } else { target };
        let mut stream = TcpStream::connect(authority).map_err(|e| format!("{authority}: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        let location = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.trim().to_owned());
        match location {
            Some(next) if (300..400).contains(&status) => url = next,
            _ => return Ok((status, body.to_owned())),
        }
    }
    Err("too many redirects".into())
}
