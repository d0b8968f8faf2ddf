//! How the shared suites (`tests/scenarios.rs`, `tests/hostile.rs`) reach
//! pop3-tokio: its stream and runtime, a current-thread tokio runtime per
//! test, and its connect functions.

use std::future::Future;

use pop3_tokio::{MaybeTls, Options, Result};
use test_support::scenarios::{Conn, Transport};
use tokio::net::TcpStream;

/// The tokio transport: one current-thread runtime per test, which drives
/// every connection the test opens.
pub(crate) struct Tokio(tokio::runtime::Runtime);

impl Tokio {
    pub(crate) fn new() -> Tokio {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Tokio(runtime)
    }
}

impl Transport for Tokio {
    type Stream = MaybeTls<TcpStream>;
    type Runtime = pop3_tokio::Tokio;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_plain(host, port, o)
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_tls(host, port, o)
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_tokio::connect_starttls(host, port, o)
    }
}
