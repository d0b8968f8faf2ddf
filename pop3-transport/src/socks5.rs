//! Connecting through a SOCKS5 proxy: the protocol-neutral client of the
//! [`socks5_client`] crate (the sans-IO [`Socks5Handshake`], the proxy URL
//! [`Socks5Proxy`], their errors), re-exported here, and
//! [`socks5_connect_async`], its pump over a [`runtime::IoStream`].
//!
//! The transports use all of this through [`Options::proxy`](crate::Options::proxy):
//! set it, and every connect function goes through the proxy.
//!
//! [`runtime::IoStream`]: crate::runtime::IoStream

use std::future::poll_fn;
use std::io;

pub use socks5_client::{
    percent_decode, BoundAddress, Next, ProxyUrlError, ReplyCode, Socks5ConnectError, Socks5Error,
    Socks5Handshake, Socks5Proxy, Stage, DEFAULT_PORT,
};

use crate::runtime::IoStream;

/// What a pump reports if the handshake failed without an error recorded,
/// which cannot happen.
const FAILED: Socks5Error = Socks5Error::MalformedReply {
    stage: Stage::Connect,
    reason: "handshake failed",
};

/// Opens a tunnel through the SOCKS5 proxy at the other end of `stream` to
/// `host`:`port`: the pump around [`Socks5Handshake`] for every runtime's
/// [`IoStream`]. It reads no byte past the proxy's reply, so the stream is
/// at the server's first byte when this returns: run TLS (with the mail
/// server's name, not the proxy's) or POP3 over it next. Wrap it in the
/// runtime's timeout: a silent proxy otherwise waits forever.
pub async fn socks5_connect_async<S: IoStream + ?Sized>(
    stream: &mut S,
    host: &str,
    port: u16,
    credentials: Option<(&str, &str)>,
) -> Result<BoundAddress, Socks5ConnectError> {
    let mut handshake = Socks5Handshake::new(host, port, credentials)?;
    let mut buf = [0u8; 512];
    loop {
        match handshake.next() {
            Next::Send(bytes) => {
                let n = poll_fn(|cx| stream.poll_write(cx, bytes)).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero).into());
                }
                handshake.sent(n);
                if handshake.bytes_to_send().is_empty() {
                    poll_fn(|cx| stream.poll_flush(cx)).await?;
                }
            }
            Next::Receive { max } => {
                let max = max.min(buf.len());
                let n = poll_fn(|cx| stream.poll_read(cx, &mut buf[..max])).await?;
                if n == 0 {
                    return Err(handshake
                        .receive_eof()
                        .unwrap_or(Socks5Error::Truncated(Stage::Connect))
                        .into());
                }
                handshake.receive(&buf[..n])?;
            }
            Next::Connected(bound) => return Ok(bound.clone()),
            // `receive` returned the error already, which ended the loop;
            // this only keeps the match complete.
            Next::Failed => return Err(handshake.error().cloned().unwrap_or(FAILED).into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::io::{Cursor, Read, Write};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    const HOST: &str = "pop.example.org";

    /// The CONNECT request for HOST:995.
    fn connect_to_host() -> Vec<u8> {
        let mut r = vec![5, 1, 0, 3, HOST.len() as u8];
        r.extend_from_slice(HOST.as_bytes());
        r.extend_from_slice(&995u16.to_be_bytes());
        r
    }

    const OK_V4: [u8; 10] = [5, 0, 0, 1, 10, 0, 0, 1, 0x9c, 0x40];

    /// A proxy on the other end of an in-memory stream.
    struct Scripted {
        input: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Scripted {
        fn new(replies: &[u8]) -> Self {
            Scripted {
                input: Cursor::new(replies.to_vec()),
                written: Vec::new(),
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl IoStream for Scripted {
        fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(self.read(buf))
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            // One byte at a time, to exercise partial writes.
            Poll::Ready(self.write(&buf[..buf.len().min(1)]))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn proxy_replies(greeting: &[u8]) -> Vec<u8> {
        let mut replies = vec![5, 2, 1, 0];
        replies.extend_from_slice(&OK_V4);
        replies.extend_from_slice(greeting);
        replies
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    fn expected_client_bytes() -> Vec<u8> {
        let mut sent = vec![5, 2, 0, 2];
        sent.extend_from_slice(b"\x01\x05alice\x02pw");
        sent.extend_from_slice(&connect_to_host());
        sent
    }

    #[test]
    fn the_greeting_stays_on_the_stream() {
        let mut stream = Scripted::new(&proxy_replies(b"+OK hello\r\n"));
        let bound = block_on(socks5_connect_async(
            &mut stream,
            HOST,
            995,
            Some(("alice", "pw")),
        ))
        .unwrap();
        assert_eq!(bound, BoundAddress::Ip("10.0.0.1:40000".parse().unwrap()));
        assert_eq!(stream.written, expected_client_bytes());
        let mut rest = String::new();
        stream.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "+OK hello\r\n");
    }

    #[test]
    fn errors_stay_typed() {
        let mut stream = Scripted::new(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(matches!(
            block_on(socks5_connect_async(&mut stream, HOST, 995, None)),
            Err(Socks5ConnectError::Socks5(Socks5Error::NotSocks5 {
                version: b'H',
                ..
            }))
        ));
        let mut stream = Scripted::new(&[5, 0, 5, 0]);
        assert!(matches!(
            block_on(socks5_connect_async(&mut stream, HOST, 995, None)),
            Err(Socks5ConnectError::Socks5(Socks5Error::Truncated(
                Stage::Connect
            )))
        ));
        let mut stream = Scripted::new(&[]);
        assert!(matches!(
            block_on(socks5_connect_async(&mut stream, "", 995, None)),
            Err(Socks5ConnectError::Socks5(Socks5Error::InvalidTarget(_)))
        ));
        assert!(
            stream.written.is_empty(),
            "nothing is sent for a bad target"
        );
    }

    #[test]
    fn partial_writes_and_failures() {
        let mut stream = Scripted::new(&proxy_replies(b"+OK"));
        let bound = block_on(socks5_connect_async(
            &mut stream,
            HOST,
            995,
            Some(("alice", "pw")),
        ))
        .unwrap();
        assert_eq!(bound, BoundAddress::Ip("10.0.0.1:40000".parse().unwrap()));
        assert_eq!(stream.written, expected_client_bytes());
        assert_eq!(stream.input.position() as usize, proxy_replies(b"").len());

        let mut stream = Scripted::new(&[5, 0, 5, 1]);
        assert!(matches!(
            block_on(socks5_connect_async(&mut stream, HOST, 995, None)),
            Err(Socks5ConnectError::Socks5(Socks5Error::ConnectFailed(
                ReplyCode::GeneralFailure
            )))
        ));
    }
}
