//! How the shared suites (`tests/scenarios.rs`, `tests/hostile.rs`) reach
//! pop3-blocking: its stream, the blocking runtime, and its connect
//! functions, whose futures complete in one poll.

use std::future::Future;
use std::net::TcpStream;

use pop3_blocking::{Blocking as Runtime, MaybeTls, Options, Result, Wait};
use test_support::scenarios::{Conn, Transport};

/// The blocking transport.
pub(crate) struct Blocking;

impl Transport for Blocking {
    type Stream = MaybeTls<TcpStream>;
    type Runtime = Runtime;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        future.wait()
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_blocking::connect_plain(host, port, o)
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_blocking::connect_tls(host, port, o)
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_blocking::connect_starttls(host, port, o)
    }
}
