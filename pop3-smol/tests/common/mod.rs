//! How the shared suites (`tests/scenarios.rs`, `tests/hostile.rs`) reach
//! pop3-smol: its stream and runtime, an executor's `block_on` (smol's or
//! async-std's), and its connect functions.

use std::future::Future;
use std::marker::PhantomData;

use pop3_smol::{MaybeTls, Options, Result, TcpStream};
use test_support::scenarios::{Conn, Transport};

/// An executor's `block_on`.
pub(crate) trait Exec {
    fn block_on<F: Future>(future: F) -> F::Output;
}

/// `smol::block_on`.
pub(crate) struct SmolExec;

impl Exec for SmolExec {
    fn block_on<F: Future>(future: F) -> F::Output {
        smol::block_on(future)
    }
}

/// `async_std::task::block_on`.
pub(crate) struct AsyncStdExec;

impl Exec for AsyncStdExec {
    fn block_on<F: Future>(future: F) -> F::Output {
        async_std::task::block_on(future)
    }
}

/// The smol transport, driven by the executor `E`.
pub(crate) struct Smol<E>(pub(crate) PhantomData<E>);

impl<E: Exec> Transport for Smol<E> {
    type Stream = MaybeTls<TcpStream>;
    type Runtime = pop3_smol::Smol;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        E::block_on(future)
    }

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_plain(host, port, o)
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_tls(host, port, o)
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        o: &Options,
    ) -> impl Future<Output = Result<Conn<Self>>> {
        pop3_smol::connect_starttls(host, port, o)
    }
}
