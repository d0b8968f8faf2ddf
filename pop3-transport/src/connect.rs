//! What every transport's connect functions do once they have a TCP
//! connection: the SOCKS5 tunnel when [`Options::proxy`] is set, and the
//! implicit TLS handshake. The transports only open TCP connections their
//! own way and pass them in.
//!
//! Public (and hidden from the docs) only for `pop3-blocking`, `pop3-tokio`
//! and `pop3-smol`, whose `connect_*` functions are [`connect`] with their
//! TCP connect: users call those.

use std::time::Duration;

use crate::connection::SessionDeadline;
use crate::runtime::{with_timeout, IoStream, Runtime, StartTls};
use crate::socks5::{socks5_connect_async, Socks5ConnectError, Socks5Proxy};
use crate::{Connection, Error, IoContext, IoSubject, Options, Phase, Result};

/// How a new connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS (credentials refused unless allowed).
    Plain,
    /// Implicit TLS: the handshake before the greeting (port 995).
    ImplicitTls,
    /// Plaintext, upgraded with `STLS` before anything else; never a
    /// fallback to plaintext.
    StartTls,
}

/// A whole connection, as every transport's `connect_*` functions make it:
/// the stream from `open_stream` (with `tcp`, the transport's own TCP
/// connect), the greeting, and `STLS` for [`Security::StartTls`], all in a
/// `pop3` tracing span with the host and port.
pub async fn connect<R: Runtime, S: StartTls>(
    host: &str,
    port: u16,
    options: &Options,
    security: Security,
    tcp: impl AsyncFnOnce(&str, u16) -> Result<S>,
) -> Result<Connection<S, R>> {
    let implicit = security == Security::ImplicitTls;
    // As for implicit TLS, a TLS configuration that cannot be built (an
    // unusable `SSL_CERT_FILE`, say) fails before anything is connected.
    let starttls = match security {
        Security::StartTls => Some((options.tls.client_config()?, options.tls_server_name(host)?)),
        Security::Plain | Security::ImplicitTls => None,
    };
    // The overall limit counts from here: connecting is part of the session.
    let session = SessionDeadline::starting_now(options.timeouts.session);
    let mut conn = Connection::traced(host, port, async {
        let stream = open_stream::<R, S>(host, port, options, implicit, &session, tcp).await?;
        let greeting_wait = greeting_wait(options, port, security);
        let on_implicit_tls_port = greeting_wait_is_shortened(port, security);
        Connection::start_waiting(stream, options, implicit, session, greeting_wait)
            .await
            .map_err(|error| match error {
                Error::Timeout(Phase::Greeting) if on_implicit_tls_port => {
                    Error::Timeout(Phase::GreetingOnImplicitTlsPort)
                }
                error => error,
            })
    })
    .await?;
    if let Some((config, name)) = starttls {
        conn.start_tls_with(config, name).await?;
    }
    Ok(conn)
}

/// The port of POP3 over implicit TLS (POP3S, RFC 8314).
const IMPLICIT_TLS_PORT: u16 = 995;

/// How long a connection without TLS to [`IMPLICIT_TLS_PORT`] waits for
/// the greeting before it says that the port may expect TLS.
const IMPLICIT_TLS_PORT_SILENCE: Duration = Duration::from_secs(10);

/// How long to wait for the greeting: the read limit, except on a
/// connection without TLS (plain, or `STLS` to come) to port 995, where at
/// most [`IMPLICIT_TLS_PORT_SILENCE`].
///
/// A server that speaks implicit TLS waits for the client's TLS hello and
/// never greets, so a plaintext client would sit out the whole read limit
/// (60 s by default) before being told that the port may expect TLS. Cutting the wait short everywhere would break real servers that
/// greet slowly (a reverse DNS lookup that has to time out first, a busy
/// or deliberately slow server): those are on 110 or a port of their own,
/// while a plaintext POP3 server on 995 is almost unheard of, so there ten
/// seconds of silence are enough to say so
/// ([`Phase::GreetingOnImplicitTlsPort`], kind `Tls`: a misconfiguration
/// that retrying would repeat). On other ports silence is
/// [`Phase::Greeting`] at the read limit, a timeout like any other. A server that answers with TLS records instead
/// of a greeting is recognised at its first bytes, whatever the port
/// ([`ProtocolError::TlsInsteadOfGreeting`](pop3_proto::ProtocolError::TlsInsteadOfGreeting)).
fn greeting_wait(options: &Options, port: u16, security: Security) -> Option<Duration> {
    let read = options.timeouts.read;
    if !greeting_wait_is_shortened(port, security) {
        return read;
    }
    Some(read.map_or(IMPLICIT_TLS_PORT_SILENCE, |limit| {
        limit.min(IMPLICIT_TLS_PORT_SILENCE)
    }))
}

/// Whether the greeting is awaited without TLS on the implicit-TLS port:
/// the wait is then cut short, and silence is
/// [`Phase::GreetingOnImplicitTlsPort`] (a misconfiguration) rather than
/// [`Phase::Greeting`] (a slow server).
fn greeting_wait_is_shortened(port: u16, security: Security) -> bool {
    security != Security::ImplicitTls && port == IMPLICIT_TLS_PORT
}

/// Opens the stream to the mail server `host`:`port`, ready for the
/// greeting: `tcp` opens a TCP connection (within [`Timeouts::connect`]);
/// with [`Options::proxy`] it is opened to the proxy and a SOCKS5 tunnel to
/// `host`:`port` is set up over it ([`socks5_tunnel`]). With `implicit_tls`,
/// the TLS handshake then runs for [`Options::server_name`] (default `host`:
/// the mail server, never the proxy), within [`Timeouts::tls_handshake`]
/// and what remains of the `session`.
///
/// The TLS configuration is built before anything is connected, so a bad
/// one fails without touching the network. Failures to reach the proxy are
/// [`Error::Proxy`] (or [`Error::Timeout`] with [`Phase::Proxy`]), so they
/// cannot be taken for the mail server's.
///
/// [`Timeouts::connect`]: crate::Timeouts::connect
/// [`Timeouts::tls_handshake`]: crate::Timeouts::tls_handshake
async fn open_stream<R: Runtime, S: StartTls>(
    host: &str,
    port: u16,
    options: &Options,
    implicit_tls: bool,
    session: &SessionDeadline,
    tcp: impl AsyncFnOnce(&str, u16) -> Result<S>,
) -> Result<S> {
    let tls = if implicit_tls {
        Some((options.tls.client_config()?, options.tls_server_name(host)?))
    } else {
        None
    };
    let mut stream = match &options.proxy {
        None => tcp(host, port).await.map_err(|e| naming(e, host, port))?,
        Some(proxy) => {
            let mut stream = tcp(&proxy.host, proxy.port)
                .await
                .map_err(|e| naming(e, &proxy.host, proxy.port))
                .map_err(|error| match error {
                    Error::Io(e) => Error::Proxy(Socks5ConnectError::Io(e)),
                    Error::Timeout(_) => Error::Timeout(Phase::Proxy),
                    other => other,
                })?;
            socks5_tunnel::<R, S>(&mut stream, proxy, host, port, options).await?;
            stream
        }
    };
    if let Some((config, name)) = tls {
        session.check()?;
        let (phase, limit) = session.bound(Phase::TlsHandshake, options.timeouts.tls_handshake);
        let socket_limit = session.bound_socket(limit);
        with_timeout::<R, _>(limit, phase, stream.start_tls(config, name, socket_limit))
            .await
            .map_err(|error| match error {
                // Blocking sockets report their own time limit as an I/O error.
                Error::Io(e) => session.blame(Error::from_io(e, Phase::TlsHandshake)),
                other => other,
            })?;
        tracing::debug!("TLS established");
    }
    Ok(stream)
}

/// A failure to open the TCP connection to `host`:`port`, naming them
/// (`localhost:995: Connection refused`): with several accounts or a
/// proxy, the bare cause does not say which connection failed.
fn naming(error: Error, host: &str, port: u16) -> Error {
    match error {
        Error::Io(e) => {
            let subject = IoSubject::Server {
                host: host.to_owned(),
                port,
            };
            Error::Io(IoContext::wrap(subject, e))
        }
        other => other,
    }
}

/// Asks the SOCKS5 `proxy` at the other end of `stream` to connect to
/// `host`:`port`, sending the host name for the proxy to resolve, with the
/// proxy's user name and password if it asks for them (a user name without
/// a password sends an empty one, which proxies that only tell users apart,
/// such as Tor, accept).
///
/// The handshake is bounded by [`Timeouts::connect`], or [`Timeouts::read`]
/// when there is no connect limit: it is part of connecting, and the proxy
/// connects to the server meanwhile. It fails with [`Error::Timeout`] with
/// [`Phase::Proxy`], or [`Error::Proxy`]; nothing is read past the proxy's
/// reply, so the server's first bytes stay on the stream.
///
/// [`Timeouts::connect`]: crate::Timeouts::connect
/// [`Timeouts::read`]: crate::Timeouts::read
async fn socks5_tunnel<R: Runtime, S: IoStream + ?Sized>(
    stream: &mut S,
    proxy: &Socks5Proxy,
    host: &str,
    port: u16,
    options: &Options,
) -> Result<()> {
    let limit = options.timeouts.connect.or(options.timeouts.read);
    // Blocking sockets keep time themselves; async runtimes use the timer.
    stream
        .set_timeouts(limit, limit)
        .map_err(|e| Error::Proxy(Socks5ConnectError::Io(e)))?;
    let credentials = proxy.username.as_deref().map(|user| {
        let password = proxy.password.as_ref().map_or("", |p| p.expose().as_str());
        (user, password)
    });
    // The handshake's own error is the inner result, so it stays typed
    // instead of going through `io::Error`.
    let handshake = async { Ok(socks5_connect_async(stream, host, port, credentials).await) };
    match with_timeout::<R, _>(limit, Phase::Proxy, handshake).await? {
        Ok(bound) => {
            tracing::debug!(?bound, "SOCKS5 tunnel open");
            Ok(())
        }
        Err(Socks5ConnectError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Error::Timeout(Phase::Proxy))
        }
        Err(e) => Err(Error::Proxy(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading_for(read: Option<Duration>) -> Options {
        let mut options = Options::new();
        options.timeouts.read = read;
        options
    }

    /// The decision the 995 scenario test checks end to end, checked here
    /// without needing to listen on a privileged port.
    #[test]
    fn only_a_connection_without_tls_to_995_waits_less_for_the_greeting() {
        let minute = Some(Duration::from_secs(60));
        let options = reading_for(minute);
        let short = Some(IMPLICIT_TLS_PORT_SILENCE);
        assert_eq!(greeting_wait(&options, 995, Security::Plain), short);
        assert_eq!(greeting_wait(&options, 995, Security::StartTls), short);
        assert_eq!(greeting_wait(&options, 995, Security::ImplicitTls), minute);
        assert_eq!(greeting_wait(&options, 110, Security::Plain), minute);
        assert_eq!(greeting_wait(&options, 1995, Security::StartTls), minute);
        // A read limit already shorter is kept; none at all still gets one.
        let brief = Some(Duration::from_secs(3));
        assert_eq!(
            greeting_wait(&reading_for(brief), 995, Security::Plain),
            brief
        );
        assert_eq!(
            greeting_wait(&reading_for(None), 995, Security::Plain),
            short
        );
        assert_eq!(
            greeting_wait(&reading_for(None), 110, Security::Plain),
            None
        );
        // Silence is named for the port only where the wait was cut short.
        assert!(greeting_wait_is_shortened(995, Security::Plain));
        assert!(greeting_wait_is_shortened(995, Security::StartTls));
        assert!(!greeting_wait_is_shortened(995, Security::ImplicitTls));
        assert!(!greeting_wait_is_shortened(110, Security::Plain));
    }
}
