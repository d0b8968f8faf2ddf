//! The tokio transport's `Transport` and `Session` impls, shared by the
//! scenario suite (`tests/scenarios.rs`) and the hostile-server suite
//! (`tests/hostile.rs`): each call runs with `Runtime::block_on` on a
//! current-thread tokio runtime per session.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use pop3_proto::sasl::Mechanism;
use pop3_proto::{Capabilities, Greeting, Language, ListEntry, MsgNum, Stat, UidlEntry};
use pop3_tokio::{Connection, Error, MaybeTls, MessageSink, Options, Timeouts, TlsOptions};
use test_support::scenarios::{ConnectOpts, Failure, SaslMech, Session, Transport};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// The tokio transport: a current-thread runtime per session.
pub(crate) struct Tokio;

/// A tokio session and the runtime that drives it.
pub(crate) struct TokioSession {
    // Dropped before the runtime that drives it.
    conn: Connection<MaybeTls<TcpStream>>,
    rt: Runtime,
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

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Transport for Tokio {
    type Conn = TokioSession;

    fn connect_plain(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<TokioSession, Failure> {
        let rt = runtime();
        let conn = rt
            .block_on(pop3_tokio::connect_plain(host, port, &options(opts)))
            .map_err(failure)?;
        Ok(TokioSession { conn, rt })
    }

    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<TokioSession, Failure> {
        let rt = runtime();
        let conn = rt
            .block_on(pop3_tokio::connect_tls(host, port, &options(opts)))
            .map_err(failure)?;
        Ok(TokioSession { conn, rt })
    }

    fn connect_starttls(
        &self,
        host: &str,
        port: u16,
        opts: &ConnectOpts,
    ) -> Result<TokioSession, Failure> {
        let rt = runtime();
        let conn = rt
            .block_on(pop3_tokio::connect_starttls(host, port, &options(opts)))
            .map_err(failure)?;
        Ok(TokioSession { conn, rt })
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

impl Session for TokioSession {
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
        self.rt.block_on(self.conn.capa()).map_err(failure)
    }

    fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        self.rt
            .block_on(self.conn.login(user, password))
            .map_err(failure)
    }

    fn apop(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        self.rt
            .block_on(self.conn.apop(user, password))
            .map_err(failure)
    }

    fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<(), Failure> {
        self.rt.block_on(self.conn.auth(mechanism)).map_err(failure)
    }

    fn auth_with(&mut self, mech: SaslMech, user: &str, password: &str) -> Result<(), Failure> {
        let conn = &mut self.conn;
        let result = match mech {
            SaslMech::Plain => self.rt.block_on(conn.auth_plain(user, password)),
            SaslMech::Login => self.rt.block_on(conn.auth_login(user, password)),
            SaslMech::CramMd5 => self.rt.block_on(conn.auth_cram_md5(user, password)),
            SaslMech::ScramSha1 => self.rt.block_on(conn.auth_scram_sha1(user, password)),
            SaslMech::ScramSha256 => self.rt.block_on(conn.auth_scram_sha256(user, password)),
        };
        result.map_err(failure)
    }

    fn utf8(&mut self) -> Result<(), Failure> {
        self.rt.block_on(self.conn.utf8()).map_err(failure)
    }

    fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>, Failure> {
        self.rt.block_on(self.conn.lang(tag)).map_err(failure)
    }

    fn stat(&mut self) -> Result<Stat, Failure> {
        self.rt.block_on(self.conn.stat()).map_err(failure)
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, Failure> {
        self.rt.block_on(self.conn.list()).map_err(failure)
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Failure> {
        self.rt.block_on(self.conn.list_one(msg)).map_err(failure)
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, Failure> {
        self.rt.block_on(self.conn.uidl()).map_err(failure)
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, Failure> {
        self.rt.block_on(self.conn.uidl_one(msg)).map_err(failure)
    }

    fn retr(&mut self, msg: MsgNum) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        let n = self
            .rt
            .block_on(self.conn.retr_to(msg, &mut out))
            .map_err(failure)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    fn retr_streamed(&mut self, msg: MsgNum, buf_size: usize) -> Result<Vec<u8>, Failure> {
        let conn = &mut self.conn;
        self.rt
            .block_on(async {
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
        self.rt
            .block_on(async {
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
        self.rt
            .block_on(self.conn.top_to(msg, lines, &mut out))
            .map_err(failure)?;
        Ok(out)
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), Failure> {
        self.rt.block_on(self.conn.dele(msg)).map_err(failure)
    }

    fn rset(&mut self) -> Result<(), Failure> {
        self.rt.block_on(self.conn.rset()).map_err(failure)
    }

    fn noop(&mut self) -> Result<(), Failure> {
        self.rt.block_on(self.conn.noop()).map_err(failure)
    }

    fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure> {
        let mut sink = Collect {
            index: msgs.iter().enumerate().map(|(i, m)| (*m, i)).collect(),
            messages: vec![Vec::new(); msgs.len()],
        };
        let results = self
            .rt
            .block_on(self.conn.retr_many(msgs, &mut sink))
            .map_err(failure)?;
        Ok(results
            .into_iter()
            .zip(sink.messages)
            .map(|(result, message)| result.map(|_| message).map_err(failure))
            .collect())
    }

    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), Failure>>, Failure> {
        let results = self
            .rt
            .block_on(self.conn.dele_many(msgs))
            .map_err(failure)?;
        Ok(results.into_iter().map(|r| r.map_err(failure)).collect())
    }

    fn quit(self) -> Result<(), Failure> {
        let TokioSession { conn, rt } = self;
        rt.block_on(conn.quit()).map_err(failure)
    }
}
