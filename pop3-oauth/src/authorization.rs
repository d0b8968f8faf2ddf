//! The authorization code flow with PKCE (RFC 7636, S256) and a loopback
//! redirect (RFC 8252): the browser signs in and consents, the provider
//! sends it back to `http://127.0.0.1:PORT/` with a code, and this process,
//! listening there, exchanges the code for tokens.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{clean_text, Error};
use crate::http::{parse_query, percent_encode_into, HttpClient};
use crate::provider::{Client, ProviderSettings};
use crate::token::{post_grant, refused, Answer, Tokens};
use crate::Secret;

/// `bytes` random bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> Result<String, Error> {
    let mut buffer = zeroize::Zeroizing::new(vec![0u8; bytes]);
    getrandom::getrandom(&mut buffer).map_err(|_| Error::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(&*buffer))
}

/// Listens for the browser at `address`; a failure is the loopback's, not
/// the token store's.
fn listen_on(address: SocketAddr) -> Result<(TcpListener, u16), Error> {
    let listener = TcpListener::bind(address).map_err(Error::Loopback)?;
    let port = listener.local_addr().map_err(Error::Loopback)?.port();
    Ok((listener, port))
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// One login in progress: the loopback listener, the URL to open, and what
/// must come back.
#[derive(Debug)]
pub struct AuthorizationRequest {
    listener: TcpListener,
    redirect_uri: String,
    url: String,
    state: Secret,
    verifier: Secret,
}

impl AuthorizationRequest {
    /// Listens on `127.0.0.1` on a port the system chooses and builds the
    /// authorization URL (with a fresh `state` and PKCE verifier).
    pub fn start(
        settings: &ProviderSettings,
        client: &Client,
    ) -> Result<AuthorizationRequest, Error> {
        let (listener, port) = listen_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        // 32 random bytes: 43 characters, the shortest verifier RFC 7636 allows
        // at full strength.
        let verifier = Secret::new(random_token(32)?);
        let state = Secret::new(random_token(16)?);
        let mut parameters: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", &redirect_uri),
        ];
        let scope = settings.scope();
        let challenge = pkce_challenge(verifier.expose());
        parameters.extend([
            ("scope", scope.as_str()),
            ("state", state.expose()),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        for (name, value) in &settings.extra_authorization_parameters {
            parameters.push((name, value));
        }
        let mut url = settings.authorization_endpoint.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        for (index, (name, value)) in parameters.iter().enumerate() {
            if index > 0 {
                url.push('&');
            }
            percent_encode_into(&mut url, name);
            url.push('=');
            percent_encode_into(&mut url, value);
        }
        Ok(AuthorizationRequest {
            listener,
            redirect_uri,
            url,
            state,
            verifier,
        })
    }

    /// The URL the user opens in a browser. It holds no secret (the state
    /// and the PKCE challenge are useless to anyone else).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the provider sends the browser back.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `timeout` for the browser to come back, checks `state`,
    /// and exchanges the code for tokens.
    pub fn finish(
        self,
        http: &HttpClient,
        settings: &ProviderSettings,
        client: &Client,
        timeout: Duration,
    ) -> Result<Tokens, Error> {
        let code = self.wait_for_code(crate::http::deadline_after(timeout))?;
        let answer = post_grant(
            http,
            settings,
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", self.verifier.expose()),
            ],
        )?;
        match answer {
            Answer::Granted(tokens) => Ok(tokens),
            Answer::Error { status, body } => Err(refused(status, body)),
        }
    }

    fn wait_for_code(&self, deadline: Instant) -> Result<Secret, Error> {
        let listen_error = Error::Loopback;
        self.listener.set_nonblocking(true).map_err(listen_error)?;
        loop {
            if Instant::now() >= deadline {
                return Err(Error::AuthorizationTimedOut);
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Some(outcome) = self.handle(stream, peer, deadline) {
                        return outcome;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(listen_error(error)),
            }
        }
    }

    /// Answers one browser request. `None`: not the redirect (a favicon,
    /// a stray connection); keep waiting.
    fn handle(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Option<Result<Secret, Error>> {
        if !peer.ip().is_loopback() {
            return None;
        }
        let _ = stream.set_nonblocking(false);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        // A browser opens spare connections it may never use: one that says
        // nothing for a second is dropped, so that it does not hold up the
        // real redirect queued behind it. The redirect itself arrives at
        // once.
        let _ = stream.set_read_timeout(Some(left.min(IDLE_READ)));
        let _ = stream.set_write_timeout(Some(left.min(Duration::from_secs(10))));
        let head = read_request_head(&mut stream)?;
        let line = head.split("\r\n").next().unwrap_or_default();
        let target = line
            .strip_prefix("GET ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/" {
            respond(&mut stream, "404 Not Found", "Not the sign-in page.");
            return None;
        }
        let pairs = WipedPairs(parse_query(query));
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let state_matches = field("state").is_some_and(|state| {
            // Compared whole; both are short and the state is single-use.
            state.as_bytes() == self.state.expose().as_bytes()
        });
        if !state_matches {
            // Anything on this machine can reach the port (another page, a
            // stale tab of an earlier login): only the redirect carrying this
            // login's state may end the wait, so anything else is answered
            // and the wait goes on until the deadline.
            respond(&mut stream, "400 Bad Request", "The sign-in did not match this login; it was ignored. Close this page and try again.");
            return None;
        }
        if let Some(error) = field("error") {
            respond(
                &mut stream,
                "200 OK",
                "The sign-in was refused. You can close this page.",
            );
            return Some(Err(Error::AuthorizationDenied {
                error: clean_text(error),
                description: field("error_description").map(clean_text),
            }));
        }
        match field("code").filter(|code| !code.is_empty()) {
            Some(code) => {
                respond(
                    &mut stream,
                    "200 OK",
                    "Signed in: pop3 has its token. You can close this page.",
                );
                Some(Ok(Secret::new(code)))
            }
            None => {
                respond(&mut stream, "400 Bad Request", "The provider sent no code.");
                Some(Err(Error::MalformedAnswer {
                    why: "the redirect holds neither a code nor an error".into(),
                }))
            }
        }
    }
}

/// A redirect's query pairs, which hold the authorization code: wiped
/// when dropped.
struct WipedPairs(Vec<(String, String)>);

impl std::ops::Deref for WipedPairs {
    type Target = [(String, String)];
    fn deref(&self) -> &[(String, String)] {
        &self.0
    }
}

impl Drop for WipedPairs {
    fn drop(&mut self) {
        for (name, value) in &mut self.0 {
            zeroize::Zeroize::zeroize(name);
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// How long a connection to the loopback port may stay silent.
const IDLE_READ: Duration = Duration::from_secs(1);

/// The most bytes of request head read (a browser's request with its
/// cookies and a Microsoft code of a few KiB fits many times).
const MAX_REQUEST_HEAD: usize = 32 * 1024;

/// The request line and headers, up to the empty line; `None` if they do
/// not come whole within [`MAX_REQUEST_HEAD`] bytes. Reading all of them
/// matters: closing a socket with unread bytes makes the kernel reset the
/// connection, and the browser may then lose the page it was sent.
fn read_request_head(stream: &mut TcpStream) -> Option<zeroize::Zeroizing<String>> {
    let mut buffer = zeroize::Zeroizing::new(Vec::new());
    let mut chunk = zeroize::Zeroizing::new([0u8; 4096]);
    while buffer.len() < MAX_REQUEST_HEAD {
        let read = stream.read(&mut chunk[..]).ok()?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|four| four == b"\r\n\r\n") {
            buffer.truncate(end);
            return std::str::from_utf8(&buffer)
                .ok()
                .map(|text| zeroize::Zeroizing::new(text.to_owned()));
        }
    }
    None
}

fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><meta charset=utf-8><title>pop3</title><p>{text}</p>\n");
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser's page is a courtesy: the login's outcome does not depend on it.
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
    // Say that nothing more comes, then read briefly what the browser may
    // still send, so that closing does not reset the connection before the
    // page is read.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_REQUEST_HEAD {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_that_cannot_listen_is_a_loopback_error() {
        let (_taken, port) =
            listen_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("a free port");
        let again = listen_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        assert!(matches!(again, Err(Error::Loopback(_))), "{again:?}");
    }

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // The example of RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let (a, b) = (random_token(32).ok(), random_token(32).ok());
        assert_ne!(a, b);
        assert_eq!(a.map(|t| t.len()), Some(43));
    }
}
