//! The HTTP client: one `POST` of a form, one bounded JSON answer.
//!
//! OAuth needs very little of HTTP: a form posted to a token endpoint and a
//! small JSON document back. This client does exactly that over a std
//! `TcpStream`, with rustls for `https` (using the workspace's one crypto
//! provider, [`pop3_transport::crypto_provider`]), and enforces the rules a
//! token client should keep:
//!
//! * **No redirects.** A `3xx` is an error ([`HttpError::Redirect`]): a
//!   token endpoint that redirects is misconfigured or hostile, and following
//!   it could send the client's secrets or a request to an internal address
//!   (server-side request forgery).
//! * **Bounded.** The status line and headers may take [`Limits::max_head`]
//!   bytes and the body [`Limits::max_body`]; a larger answer is refused
//!   before it is read whole.
//! * **Timed.** Connecting, writing and reading share one deadline
//!   ([`Limits::timeout`]); each of the host's addresses gets a share of
//!   the connect time, so one that never answers does not keep the next
//!   from being tried. Resolving the name comes before the deadline and is
//!   bounded only by the system resolver's own settings (std offers no
//!   timeout for it).
//! * **Encrypted.** `http://` is refused unless the host is a loopback
//!   address (a test server, or a local proxy the user runs); a name such
//!   as `localhost` must resolve to loopback addresses, and only those are
//!   used.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_transport::socks5::{Next, Socks5Handshake, Socks5Proxy};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::ServerName;

/// A parsed endpoint URL: `http(s)://host[:port]/path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `true` for `https`.
    pub tls: bool,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port, given or the scheme's.
    pub port: u16,
    /// The path and query, at least `/`.
    pub target: String,
}

impl Endpoint {
    /// Parses `url`, refusing user information, other schemes, and
    /// characters that would let it split an HTTP request.
    pub fn parse(url: &str) -> Result<Endpoint, HttpError> {
        let bad = |why: &'static str| HttpError::BadUrl { why };
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("it contains spaces or control characters"));
        }
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(bad("it is neither https:// nor http://"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(bad("it holds a user name or password"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(bad("an IPv6 address lacks its closing bracket"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad("its port is not a number"))?,
            None if tls => 443,
            None => 80,
        };
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(Endpoint {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// Whether the host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|address| address.is_loopback())
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// How much the client waits for and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One deadline for connecting, sending and receiving.
    pub timeout: Duration,
    /// The most bytes of status line and headers.
    pub max_head: usize,
    /// The most bytes of body (a token answer is a few KiB).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(30),
            max_head: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// What went wrong talking HTTP. None of these carries a request or
/// response body, so none can hold a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be used.
    BadUrl {
        /// Why, in words.
        why: &'static str,
    },
    /// A plain `http://` URL for a host that is not this machine.
    PlainHttpRefused {
        /// The host.
        host: String,
    },
    /// Resolving the endpoint's name or connecting to it failed (a
    /// connection that timed out has the kind `TimedOut`).
    Connect {
        /// The host as the URL names it.
        host: String,
        /// The port.
        port: u16,
        /// The failure (of the last address tried).
        source: io::Error,
    },
    /// The trust roots could not be loaded (`SSL_CERT_FILE` names a file
    /// without a usable certificate).
    Roots(pop3_transport::Error),
    /// The SOCKS5 proxy refused or failed the tunnel.
    Proxy {
        /// The proxy, without its password.
        proxy: String,
        /// What went wrong.
        why: String,
    },
    /// Sending or receiving failed.
    Io(io::Error),
    /// The TLS handshake or session failed.
    Tls(rustls::Error),
    /// The deadline passed.
    Timeout,
    /// The endpoint answered with a redirect, which is not followed.
    Redirect {
        /// The status (301, 302, 303, 307, 308).
        status: u16,
    },
    /// The answer is bigger than [`Limits`] allows.
    TooLarge {
        /// `head` or `body`.
        part: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The answer is not HTTP/1.x as it should be.
    Malformed {
        /// What was wrong.
        why: &'static str,
    },
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadUrl { why } => write!(f, "unusable endpoint URL: {why}"),
            HttpError::PlainHttpRefused { host } => write!(
                f,
                "refusing plain http:// to {host}: only https is allowed except on this machine"
            ),
            HttpError::Connect { host, port, source } => {
                if host.contains(':') {
                    write!(f, "connecting to [{host}]:{port}: {source}")
                } else {
                    write!(f, "connecting to {host}:{port}: {source}")
                }
            }
            HttpError::Roots(error) => write!(f, "trust roots: {error}"),
            HttpError::Proxy { proxy, why } => write!(f, "SOCKS5 proxy {proxy}: {why}"),
            HttpError::Io(error) => write!(f, "{error}"),
            HttpError::Tls(error) => write!(f, "TLS: {error}"),
            HttpError::Timeout => f.write_str("the endpoint did not answer in time"),
            HttpError::Redirect { status } => write!(
                f,
                "the endpoint answered with a redirect (HTTP {status}), which is not followed"
            ),
            HttpError::TooLarge { part, limit } => {
                write!(f, "the endpoint's answer {part} exceeds {limit} bytes")
            }
            HttpError::Malformed { why } => write!(f, "malformed HTTP answer: {why}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Io(error) | HttpError::Connect { source: error, .. } => Some(error),
            HttpError::Tls(error) => Some(error),
            HttpError::Roots(error) => Some(error),
            _ => None,
        }
    }
}

/// An answer: status, `Content-Type` and body.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The media type, lowercased, without parameters (`application/json`).
    pub content_type: Option<String>,
    /// The body (may hold tokens: never printed by `Debug`).
    pub body: Vec<u8>,
}

/// A token answer's body holds the tokens: it is wiped when dropped, as
/// the request that carried the secrets is.
impl Drop for Response {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The client: trust roots, limits, and the SOCKS5 proxy if any.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<ClientConfig>,
    limits: Limits,
    proxy: Option<Socks5Proxy>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("limits", &self.limits)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client trusting what the POP3 connections trust by default
    /// ([`pop3_transport::TrustRoots::System`]: the operating system's
    /// store, `SSL_CERT_FILE` / `SSL_CERT_DIR`, the Mozilla roots when the
    /// store is empty), so that a company's own root works for the token
    /// endpoint as for the mail server; with the default [`Limits`].
    pub fn new() -> Result<HttpClient, HttpError> {
        HttpClient::trusting(pop3_transport::TrustRoots::System)
    }

    /// A client trusting `roots`, built as the POP3 connections build them.
    pub fn trusting(roots: pop3_transport::TrustRoots) -> Result<HttpClient, HttpError> {
        HttpClient::with_roots(roots.root_store().map_err(HttpError::Roots)?)
    }

    /// A client trusting `roots` only.
    pub fn with_roots(roots: RootCertStore) -> Result<HttpClient, HttpError> {
        let tls = ClientConfig::builder_with_provider(pop3_transport::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(HttpError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpClient {
            tls: Arc::new(tls),
            limits: Limits::default(),
            proxy: None,
        })
    }

    /// The same client connecting through a SOCKS5 proxy: every request
    /// goes through it, and the endpoint's name is resolved by the proxy,
    /// never here (as Tor needs, so that neither the address nor the DNS
    /// query leaves the machine directly).
    pub fn through_proxy(mut self, proxy: Socks5Proxy) -> HttpClient {
        self.proxy = Some(proxy);
        self
    }

    /// The same client with other limits.
    pub fn limits(mut self, limits: Limits) -> HttpClient {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn current_limits(&self) -> Limits {
        self.limits
    }

    /// Posts `form` (name, value pairs, sent `application/x-www-form-urlencoded`)
    /// to `url` and returns the answer, whatever its status.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Response, HttpError> {
        let endpoint = Endpoint::parse(url)?;
        if !endpoint.tls && !endpoint.is_loopback() {
            return Err(HttpError::PlainHttpRefused {
                host: endpoint.host,
            });
        }
        let deadline = deadline_after(self.limits.timeout);
        let body = form_encode(form);
        let host_header = if endpoint.host.contains(':') {
            format!("[{}]", endpoint.host)
        } else {
            endpoint.host.clone()
        };
        let default_port = if endpoint.tls { 443 } else { 80 };
        let host_header = if endpoint.port == default_port {
            host_header
        } else {
            format!("{host_header}:{}", endpoint.port)
        };
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: pop3-oauth/{}\r\n\
             Accept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            endpoint.target,
            env!("CARGO_PKG_VERSION"),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        let request = zeroize::Zeroizing::new(request);
        drop(zeroize::Zeroizing::new(body));

        let socket = match &self.proxy {
            Some(proxy) => DeadlineStream::through_proxy(proxy, &endpoint, deadline)?,
            None => DeadlineStream::connect(&endpoint, deadline)?,
        };
        if endpoint.tls {
            let name =
                ServerName::try_from(endpoint.host.clone()).map_err(|_| HttpError::BadUrl {
                    why: "its host is not a valid server name",
                })?;
            let connection =
                ClientConnection::new(Arc::clone(&self.tls), name).map_err(HttpError::Tls)?;
            exchange(StreamOwned::new(connection, socket), &request, &self.limits)
        } else {
            exchange(socket, &request, &self.limits)
        }
    }
}

/// How long one connection attempt may take: what is left shared equally
/// by the `remaining` addresses (this one included), so that a first
/// address that never answers (an IPv6 route that black-holes) leaves the
/// others time to be tried. The last address gets all that is left.
fn attempt_budget(left: Duration, remaining: usize) -> Duration {
    let remaining = u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
    (left / remaining).max(Duration::from_millis(1))
}

/// The addresses worth connecting to. Plain `http://` is allowed to this
/// machine only, so a host that is not an address literal (`localhost`)
/// must resolve to loopback addresses: the others are dropped, and a name
/// with no loopback address is refused, whatever the resolver (or a
/// hosts file entry) says.
fn usable_addresses(
    endpoint: &Endpoint,
    addresses: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, HttpError> {
    if endpoint.tls {
        return Ok(addresses);
    }
    let loopback: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|address| address.ip().is_loopback())
        .collect();
    if loopback.is_empty() {
        return Err(HttpError::PlainHttpRefused {
            host: endpoint.host.clone(),
        });
    }
    Ok(loopback)
}

/// The instant `timeout` from now. A timeout the clock cannot add
/// (`Duration::MAX` meaning "no limit") is a century rather than a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(timeout.min(CENTURY)))
        .unwrap_or(now)
}

/// A TCP stream whose every read and write waits at most until one
/// deadline.
struct DeadlineStream {
    socket: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<DeadlineStream, HttpError> {
        let failed = |source| HttpError::Connect {
            host: endpoint.host.clone(),
            port: endpoint.port,
            source,
        };
        // The system resolver has no timeout to give it: resolving the name
        // is not bounded by the deadline, only by the resolver's own
        // settings (resolv.conf's timeout and attempts). The deadline
        // starts counting for the connections.
        let addresses: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(failed)?
            .collect();
        let addresses = usable_addresses(endpoint, addresses)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for (index, address) in addresses.iter().enumerate() {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| failed(io::ErrorKind::TimedOut.into()))?;
            let budget = attempt_budget(left, addresses.len() - index);
            match TcpStream::connect_timeout(address, budget) {
                Ok(socket) => {
                    // Small requests and answers: send without waiting for more.
                    let _ = socket.set_nodelay(true);
                    return Ok(DeadlineStream { socket, deadline });
                }
                // An address that does not answer in its share of the time
                // gives way to the next one, as one that refuses does.
                Err(error) => last = error,
            }
        }
        Err(failed(last))
    }

    /// Connects to `proxy` and asks it for a tunnel to the endpoint, all
    /// within the deadline.
    fn through_proxy(
        proxy: &Socks5Proxy,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<DeadlineStream, HttpError> {
        let proxy_endpoint = Endpoint {
            tls: true,
            host: proxy.host.clone(),
            port: proxy.port,
            target: "/".into(),
        };
        let mut stream = DeadlineStream::connect(&proxy_endpoint, deadline)?;
        let failed = |why: String| HttpError::Proxy {
            proxy: proxy.to_string(),
            why,
        };
        let credentials = proxy.credentials();
        let mut handshake = Socks5Handshake::new(&endpoint.host, endpoint.port, credentials)
            .map_err(|error| failed(error.to_string()))?;
        let mut buffer = [0u8; 512];
        loop {
            match handshake.next() {
                Next::Send(bytes) => {
                    let written = stream.write(bytes).map_err(io_error)?;
                    if written == 0 {
                        return Err(failed("the proxy closed the connection".into()));
                    }
                    handshake.sent(written);
                }
                Next::Receive { max } => {
                    let read = stream.read(&mut buffer[..max.min(512)]).map_err(io_error)?;
                    if read == 0 {
                        let error = handshake.receive_eof();
                        return Err(failed(error.map_or_else(
                            || "the proxy closed the connection".into(),
                            |error| error.to_string(),
                        )));
                    }
                    handshake
                        .receive(&buffer[..read])
                        .map_err(|error| failed(error.to_string()))?;
                }
                Next::Connected(_) => return Ok(stream),
                Next::Failed => {
                    return Err(failed(handshake.error().map_or_else(
                        || "the handshake failed".into(),
                        ToString::to_string,
                    )))
                }
            }
        }
    }

    fn arm(&self) -> io::Result<()> {
        let left = self
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))?;
        self.socket.set_read_timeout(Some(left))?;
        self.socket.set_write_timeout(Some(left))
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.socket.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

fn io_error(error: io::Error) -> HttpError {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout,
        _ => match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => HttpError::Tls(tls.clone()),
            None => HttpError::Io(error),
        },
    }
}

/// Sends `request` and reads one answer within `limits`.
fn exchange<S: Read + Write>(
    mut stream: S,
    request: &[u8],
    limits: &Limits,
) -> Result<Response, HttpError> {
    stream.write_all(request).map_err(io_error)?;
    stream.flush().map_err(io_error)?;
    let mut reader = Bounded::new(stream);

    let head = reader.read_head(limits.max_head)?;
    let head = std::str::from_utf8(&head).map_err(|_| HttpError::Malformed {
        why: "the headers are not UTF-8",
    })?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed {
            why: "the status line is not HTTP/1.x",
        });
    }
    let status: u16 = words
        .next()
        .and_then(|code| code.parse().ok())
        .filter(|code| (100..600).contains(code))
        .ok_or(HttpError::Malformed {
            why: "the status code is not a number",
        })?;
    let mut content_type = None;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HttpError::Malformed {
            why: "a header line has no colon",
        })?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            let media = value.split(';').next().unwrap_or_default().trim();
            content_type = Some(media.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse().map_err(|_| HttpError::Malformed {
                why: "Content-Length is not a number",
            })?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(HttpError::Malformed {
                    why: "two different Content-Length headers",
                });
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    if (300..400).contains(&status) {
        return Err(HttpError::Redirect { status });
    }
    let body = if chunked {
        reader.read_chunked(limits.max_body)?
    } else if let Some(length) = content_length {
        if length > limits.max_body {
            return Err(HttpError::TooLarge {
                part: "body",
                limit: limits.max_body,
            });
        }
        reader.read_exact_len(length)?
    } else {
        reader.read_to_end(limits.max_body)?
    };
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// A reader with its own small buffer, so the head and the body can be
/// read apart without reading past what is allowed.
struct Bounded<S> {
    stream: S,
    buffer: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<S: Read> Bounded<S> {
    fn new(stream: S) -> Bounded<S> {
        Bounded {
            stream,
            buffer: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 4096];
        let read = match self.stream.read(&mut chunk) {
            Ok(read) => read,
            // A peer that closes without TLS close_notify: the end of a
            // `Connection: close` answer. Truncation is caught by the
            // lengths below or by the JSON parser.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(error) => return Err(io_error(error)),
        };
        if read == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(true)
    }

    fn take(&mut self, count: usize) -> Vec<u8> {
        let taken = self.buffer[self.start..self.start + count].to_vec();
        self.start += count;
        taken
    }

    fn read_head(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(end) = find(self.buffered(), b"\r\n\r\n") {
                if end > limit {
                    break;
                }
                let head = self.take(end);
                self.start += 4;
                return Ok(head);
            }
            if self.buffered().len() > limit + 3 {
                break;
            }
            if !self.fill()? {
                return Err(HttpError::Malformed {
                    why: "the connection closed before the headers ended",
                });
            }
        }
        Err(HttpError::TooLarge {
            part: "head",
            limit,
        })
    }

    fn read_exact_len(&mut self, length: usize) -> Result<Vec<u8>, HttpError> {
        while self.buffered().len() < length {
            if !self.fill()? {
                return Err(HttpError::Malformed {
                    why: "the connection closed before the body ended",
                });
            }
        }
        Ok(self.take(length))
    }

    fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        while self.fill()? {
            if self.buffered().len() > limit {
                return Err(HttpError::TooLarge {
                    part: "body",
                    limit,
                });
            }
        }
        let length = self.buffered().len();
        Ok(self.take(length))
    }

    fn read_line(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(end) = find(self.buffered(), b"\r\n") {
                let line = self.take(end);
                self.start += 2;
                return Ok(line);
            }
            if self.buffered().len() > limit + 2 {
                return Err(HttpError::Malformed {
                    why: "a chunk header line is too long",
                });
            }
            if !self.fill()? {
                return Err(HttpError::Malformed {
                    why: "the connection closed inside a chunk",
                });
            }
        }
    }

    fn read_chunked(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(256)?;
            let size = std::str::from_utf8(&line)
                .ok()
                .map(|line| line.split(';').next().unwrap_or_default().trim())
                .filter(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|hex| usize::from_str_radix(hex, 16).ok())
                .ok_or(HttpError::Malformed {
                    why: "a chunk size is not hexadecimal",
                })?;
            if size == 0 {
                // Trailers, if any, are not needed: stop here.
                return Ok(body);
            }
            if size > limit.saturating_sub(body.len()) {
                return Err(HttpError::TooLarge {
                    part: "body",
                    limit,
                });
            }
            body.extend(self.read_exact_len(size)?);
            if self.read_line(0)? != b"" {
                return Err(HttpError::Malformed {
                    why: "a chunk does not end with CRLF",
                });
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `application/x-www-form-urlencoded`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        percent_encode_into(&mut out, name);
        out.push('=');
        percent_encode_into(&mut out, value);
    }
    out
}

/// Percent-encodes every byte but the unreserved ones of RFC 3986.
pub fn percent_encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
/// `None` for a bad escape or non-UTF-8. The escapes are decoded by the
/// workspace's one percent-decoder (`socks5_client`'s, re-exported as
/// [`pop3_transport::socks5::percent_decode`]); a literal `+` arrives as
/// `%2B`, so turning every bare `+` into a space first is exact.
pub fn percent_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    String::from_utf8(pop3_transport::socks5::percent_decode(&spaced)?).ok()
}

/// The `name=value` pairs of a query string, decoded; bad pairs skipped.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &[u8], limits: Limits) -> Result<Response, HttpError> {
        struct Canned<'a>(&'a [u8], Vec<u8>);
        impl Read for Canned<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                // One byte at a time: every boundary is crossed mid-read.
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                match buf.first_mut() {
                    Some(slot) => *slot = first,
                    None => return Ok(0),
                }
                self.0 = rest;
                Ok(1)
            }
        }
        impl Write for Canned<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        exchange(Canned(raw, Vec::new()), b"", &limits)
    }

    #[test]
    fn urls_parse_and_loopback_is_recognised() {
        let endpoint = Endpoint::parse("https://oauth2.googleapis.com/token").ok();
        assert_eq!(
            endpoint,
            Some(Endpoint {
                tls: true,
                host: "oauth2.googleapis.com".into(),
                port: 443,
                target: "/token".into()
            })
        );
        let local = Endpoint::parse("http://[::1]:8080?x=1").ok();
        assert!(local.as_ref().is_some_and(Endpoint::is_loopback));
        assert_eq!(
            local.map(|e| (e.port, e.target)),
            Some((8080, "/?x=1".into()))
        );
        assert!(Endpoint::parse("http://127.0.0.2/t").is_ok_and(|e| e.is_loopback()));
        assert!(Endpoint::parse("http://localhost.evil.example/t").is_ok_and(|e| !e.is_loopback()));
        for bad in [
            "ftp://x/",
            "https://user:pw@host/",
            "https://host:99999/",
            "https:///x",
            "https://host/a b",
            "https://host/\r\nX: y",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_failures_name_the_host_and_port() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or(9);
        let client = HttpClient::new().map(|client| {
            client.limits(Limits {
                timeout: Duration::from_secs(5),
                ..Limits::default()
            })
        });
        let error = client.ok().and_then(|client| {
            client
                .post_form(&format!("http://127.0.0.1:{port}/t"), &[])
                .err()
        });
        let shown = error.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(error, Some(HttpError::Connect { .. })),
            "{error:?}"
        );
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    }

    #[test]
    fn localhost_over_plain_http_keeps_only_loopback_addresses() {
        let plain = Endpoint::parse("http://localhost:8080/t").expect("parses");
        let v4: SocketAddr = "127.0.0.1:8080".parse().expect("an address");
        let v6: SocketAddr = "[::1]:8080".parse().expect("an address");
        let outside: SocketAddr = "192.0.2.7:8080".parse().expect("an address");
        assert_eq!(
            usable_addresses(&plain, vec![outside, v6, v4]).ok(),
            Some(vec![v6, v4])
        );
        assert!(matches!(
            usable_addresses(&plain, vec![outside]),
            Err(HttpError::PlainHttpRefused { .. })
        ));
        let tls = Endpoint::parse("https://login.example/t").expect("parses");
        assert_eq!(
            usable_addresses(&tls, vec![outside]).ok(),
            Some(vec![outside])
        );
    }

    #[test]
    fn every_address_gets_a_share_of_the_connect_time() {
        let left = Duration::from_secs(30);
        assert_eq!(attempt_budget(left, 3), Duration::from_secs(10));
        assert_eq!(attempt_budget(left, 1), left);
        assert_eq!(attempt_budget(left, 0), left);
        assert_eq!(attempt_budget(Duration::ZERO, 2), Duration::from_millis(1));
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let client = HttpClient::new().ok();
        let refused = client.map(|c| c.post_form("http://oauth.example.org/token", &[]));
        assert!(matches!(
            refused,
            Some(Err(HttpError::PlainHttpRefused { .. }))
        ));
    }

    #[test]
    fn bodies_by_length_by_chunks_and_to_the_end() {
        let limits = Limits::default();
        let by_length =
            answer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}", limits);
        assert!(
            matches!(&by_length, Ok(r) if r.body == b"{}" && r.content_type.as_deref() == Some("application/json"))
        );
        let chunked = answer(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2;x=y\r\n\":\r\n1\r\n1\r\n1\r\n}\r\n0\r\n\r\n",
            limits,
        );
        assert!(matches!(&chunked, Ok(r) if r.body == b"{\"a\":1}" && r.status == 400));
        let to_end = answer(b"HTTP/1.0 200 OK\r\n\r\nabc", limits);
        assert!(matches!(&to_end, Ok(r) if r.body == b"abc"));
    }

    #[test]
    fn redirects_are_not_followed() {
        let redirect = answer(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
            Limits::default(),
        );
        assert!(matches!(redirect, Err(HttpError::Redirect { status: 307 })));
    }

    #[test]
    fn oversized_answers_are_refused() {
        let limits = Limits {
            max_head: 64,
            max_body: 8,
            ..Limits::default()
        };
        let long_head = [
            b"HTTP/1.1 200 OK\r\nX: ".as_slice(),
            &[b'a'; 100],
            b"\r\n\r\n",
        ]
        .concat();
        assert!(matches!(
            answer(&long_head, limits),
            Err(HttpError::TooLarge { part: "head", .. })
        ));
        let declared = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9999999999\r\n\r\n",
            limits,
        );
        assert!(matches!(
            declared,
            Err(HttpError::TooLarge { part: "body", .. })
        ));
        let chunked = answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
            limits,
        );
        assert!(matches!(
            chunked,
            Err(HttpError::TooLarge { part: "body", .. })
        ));
        let endless = answer(b"HTTP/1.1 200 OK\r\n\r\n0123456789", limits);
        assert!(matches!(
            endless,
            Err(HttpError::TooLarge { part: "body", .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for raw in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            b"HTTP/1.1 200 \xff\r\n\r\n",
        ] {
            assert!(
                matches!(
                    answer(raw, Limits::default()),
                    Err(HttpError::Malformed { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn forms_round_trip() {
        let encoded = form_encode(&[("scope", "a b/c"), ("x", "é&=")]);
        assert_eq!(encoded, "scope=a%20b%2Fc&x=%C3%A9%26%3D");
        assert_eq!(
            parse_query(&encoded),
            vec![("scope".into(), "a b/c".into()), ("x".into(), "é&=".into())]
        );
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("a+b"), Some("a b".into()));
        assert_eq!(percent_decode("a%2Bb"), Some("a+b".into()));
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%C3"), None);
    }
}
