//! The smol transport's `Transport` and `Session` impls, shared by the
//! scenario suite (`tests/scenarios.rs`) and the hostile-server suite
//! (`tests/hostile.rs`): each call runs with the executor's `block_on`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

use futures_lite::AsyncReadExt;
use pop3_proto::sasl::Mechanism;
use pop3_proto::{Capabilities, Greeting, Language, ListEntry, MsgNum, Stat, UidlEntry};
use pop3_smol::{
    Connection, Error, MaybeTls, MessageSink, Options, TcpStream, Timeouts, TlsOptions,
};
use test_support::scenarios::{ConnectOpts, Failure, SaslMech, Session, Transport};

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

/// A smol session.
pub(crate) struct SmolSession<E> {
    conn: Connection<MaybeTls<TcpStream>>,
    rt: PhantomData<E>,
}

fn failure(error: Error) -> Failure {
    test_support::hostile::note_error(&error);
    match error {
        Error::Io(e) => Failure::Io(e),
        Error::Tls(e) => Failure::Tls(e),
        Error::Protocol(e) => Failure::Protocol(e),
        Error::Usage(e) => Failure::Usage(e),
        Error::Server(e) => Failure::Server(e),
        Error::Timeout(_) => Failure::Timeout,
        Error::Closed => Failure::Closed,
        Error::StlsUnavailable => Failure::StlsUnavailable,
        other => Failure::Other(other.to_string()),
    }
}

fn options(opts: &ConnectOpts) -> Options {
    let mut tls = TlsOptions::new();
    if let Some(pem) = &opts.ca_pem {
        tls = tls.add_root_pem(pem.as_bytes()).unwrap();
    }
    let mut options = Options::new()
        .tls(tls)
        .allow_plaintext_auth(opts.allow_plaintext_auth)
        .timeouts(Timeouts {
            connect: Some(opts.connect_timeout),
            tls_handshake: Some(opts.tls_handshake_timeout),
            read: Some(opts.read_timeout),
            write: Some(opts.write_timeout),
        });
    if let Some(name) = &opts.server_name {
        options = options.server_name(name.clone());
    }
    if let Some(limits) = opts.limits {
        options = options.limits(limits);
    }
    options
}

impl<E: Exec> Transport for Smol<E> {
    type Conn = SmolSession<E>;

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<SmolSession<E>, Failure> {
        let conn =
            E::block_on(pop3_smol::connect_plain(host, port, &options(opts))).map_err(failure)?;
        Ok(SmolSession {
            conn,
            rt: PhantomData,
        })
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<SmolSession<E>, Failure> {
        let conn =
            E::block_on(pop3_smol::connect_tls(host, port, &options(opts))).map_err(failure)?;
        Ok(SmolSession {
            conn,
            rt: PhantomData,
        })
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<SmolSession<E>, Failure> {
        let conn = E::block_on(pop3_smol::connect_starttls(host, port, &options(opts)))
            .map_err(failure)?;
        Ok(SmolSession {
            conn,
            rt: PhantomData,
        })
    }
}

/// Collects `retr_many` output per position.
struct Collect {
    index: HashMap<MsgNum, usize>,
    messages: Vec<Vec<u8>>,
}

impl MessageSink for Collect {
    fn on_chunk(&mut self, msg: MsgNum, chunk: &[u8]) {
        if let Some(&i) = self.index.get(&msg) {
            self.messages[i].extend_from_slice(chunk);
        }
    }

    fn on_end(&mut self, msg: MsgNum, result: Result<u64, &Error>) {
        if let (Some(&i), Err(_)) = (self.index.get(&msg), result) {
            self.messages[i].clear();
        }
    }
}

impl<E: Exec> Session for SmolSession<E> {
    fn greeting(&self) -> Greeting {
        self.conn.greeting().clone()
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.conn.capabilities().cloned()
    }

    fn is_encrypted(&self) -> bool {
        self.conn.client().is_encrypted()
    }

    fn is_pipelining(&self) -> bool {
        self.conn.client().is_pipelining()
    }

    fn capa(&mut self) -> Result<Capabilities, Failure> {
        E::block_on(self.conn.capa()).map_err(failure)
    }

    fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        E::block_on(self.conn.login(user, password)).map_err(failure)
    }

    fn apop(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        E::block_on(self.conn.apop(user, password)).map_err(failure)
    }

    fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<(), Failure> {
        E::block_on(self.conn.auth(mechanism)).map_err(failure)
    }

    fn auth_with(&mut self, mech: SaslMech, user: &str, password: &str) -> Result<(), Failure> {
        let conn = &mut self.conn;
        let result = match mech {
            SaslMech::Plain => E::block_on(conn.auth_plain(user, password)),
            SaslMech::Login => E::block_on(conn.auth_login(user, password)),
            SaslMech::CramMd5 => E::block_on(conn.auth_cram_md5(user, password)),
            SaslMech::ScramSha1 => E::block_on(conn.auth_scram_sha1(user, password)),
            SaslMech::ScramSha256 => E::block_on(conn.auth_scram_sha256(user, password)),
        };
        result.map_err(failure)
    }

    fn utf8(&mut self) -> Result<(), Failure> {
        E::block_on(self.conn.utf8()).map_err(failure)
    }

    fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>, Failure> {
        E::block_on(self.conn.lang(tag)).map_err(failure)
    }

    fn stat(&mut self) -> Result<Stat, Failure> {
        E::block_on(self.conn.stat()).map_err(failure)
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, Failure> {
        E::block_on(self.conn.list()).map_err(failure)
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Failure> {
        E::block_on(self.conn.list_one(msg)).map_err(failure)
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, Failure> {
        E::block_on(self.conn.uidl()).map_err(failure)
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, Failure> {
        E::block_on(self.conn.uidl_one(msg)).map_err(failure)
    }

    fn retr(&mut self, msg: MsgNum) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        let n = E::block_on(self.conn.retr_to(msg, &mut out)).map_err(failure)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    fn retr_streamed(&mut self, msg: MsgNum, buf_size: usize) -> Result<Vec<u8>, Failure> {
        let conn = &mut self.conn;
        E::block_on(async {
            let mut reader = conn.retr(msg).await?;
            let mut out = Vec::new();
            let mut buf = vec![0u8; buf_size];
            loop {
                let k = reader.read(&mut buf).await?;
                if k == 0 {
                    return Ok(out);
                }
                out.extend_from_slice(&buf[..k]);
            }
        })
        .map_err(failure)
    }

    fn retr_partial(&mut self, msg: MsgNum, bytes: usize) -> Result<Vec<u8>, Failure> {
        let conn = &mut self.conn;
        E::block_on(async {
            let mut reader = conn.retr(msg).await?;
            let mut out = Vec::new();
            let mut buf = [0u8; 100];
            while out.len() < bytes {
                let want = buf.len().min(bytes - out.len());
                let k = reader.read(&mut buf[..want]).await?;
                if k == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..k]);
            }
            Ok::<_, Error>(out)
        })
        .map_err(failure)
    }

    fn top(&mut self, msg: MsgNum, lines: u32) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        E::block_on(self.conn.top_to(msg, lines, &mut out)).map_err(failure)?;
        Ok(out)
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), Failure> {
        E::block_on(self.conn.dele(msg)).map_err(failure)
    }

    fn rset(&mut self) -> Result<(), Failure> {
        E::block_on(self.conn.rset()).map_err(failure)
    }

    fn noop(&mut self) -> Result<(), Failure> {
        E::block_on(self.conn.noop()).map_err(failure)
    }

    fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure> {
        let mut sink = Collect {
            index: msgs.iter().enumerate().map(|(i, m)| (*m, i)).collect(),
            messages: vec![Vec::new(); msgs.len()],
        };
        let results = E::block_on(self.conn.retr_many(msgs, &mut sink)).map_err(failure)?;
        Ok(results
            .into_iter()
            .zip(sink.messages)
            .map(|(result, message)| result.map(|_| message).map_err(failure))
            .collect())
    }

    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), Failure>>, Failure> {
        let results = E::block_on(self.conn.dele_many(msgs)).map_err(failure)?;
        Ok(results.into_iter().map(|r| r.map_err(failure)).collect())
    }

    fn quit(self) -> Result<(), Failure> {
        E::block_on(self.conn.quit()).map_err(failure)
    }
}
