//! The blocking transport's `Transport` and `Session` impls, shared by the
//! scenario suite (`tests/scenarios.rs`) and the hostile-server suite
//! (`tests/hostile.rs`).

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;

use pop3_blocking::pop3_proto::sasl::Mechanism;
use pop3_blocking::{
    connect_plain, connect_starttls, connect_tls, Capabilities, Connection, Error, Greeting,
    Language, ListEntry, MaybeTls, MsgNum, Options, Stat, Timeouts, TlsOptions, UidlEntry,
};
use test_support::scenarios::{ConnectOpts, Failure, SaslMech, Session, Transport};

/// The blocking transport.
pub(crate) struct Blocking;

/// A blocking session.
pub(crate) struct Conn(Connection<MaybeTls<TcpStream>>);

fn classify(error: Error) -> Failure {
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

/// A `MessageReader` error is an `io::Error` carrying our `Error`.
fn classify_io(error: std::io::Error) -> Failure {
    classify(Error::from(error))
}

fn options(opts: &ConnectOpts) -> Options {
    let mut tls = TlsOptions::new();
    if let Some(pem) = &opts.ca_pem {
        tls = tls.add_root_pem(pem).expect("CA PEM");
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

impl Transport for Blocking {
    type Conn = Conn;

    fn connect_plain(&self, host: &str, port: u16, opts: &ConnectOpts) -> Result<Conn, Failure> {
        connect_plain(host, port, &options(opts))
            .map(Conn)
            .map_err(classify)
    }

    fn connect_tls(&self, host: &str, port: u16, opts: &ConnectOpts) -> Result<Conn, Failure> {
        connect_tls(host, port, &options(opts))
            .map(Conn)
            .map_err(classify)
    }

    fn connect_starttls(&self, host: &str, port: u16, opts: &ConnectOpts) -> Result<Conn, Failure> {
        connect_starttls(host, port, &options(opts))
            .map(Conn)
            .map_err(classify)
    }
}

impl Session for Conn {
    fn greeting(&self) -> Greeting {
        self.0.greeting().clone()
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.0.capabilities().cloned()
    }

    fn is_encrypted(&self) -> bool {
        self.0.client().is_encrypted()
    }

    fn is_pipelining(&self) -> bool {
        self.0.client().is_pipelining()
    }

    fn capa(&mut self) -> Result<Capabilities, Failure> {
        self.0.capa().map_err(classify)
    }

    fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        self.0.login(user, password).map_err(classify)
    }

    fn apop(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        self.0.apop(user, password).map_err(classify)
    }

    fn auth(&mut self, mechanism: Box<dyn Mechanism>) -> Result<(), Failure> {
        self.0.auth(mechanism).map_err(classify)
    }

    fn auth_with(&mut self, mech: SaslMech, user: &str, password: &str) -> Result<(), Failure> {
        let c = &mut self.0;
        match mech {
            SaslMech::Plain => c.auth_plain(user, password),
            SaslMech::Login => c.auth_login(user, password),
            SaslMech::CramMd5 => c.auth_cram_md5(user, password),
            SaslMech::ScramSha1 => c.auth_scram_sha1(user, password),
            SaslMech::ScramSha256 => c.auth_scram_sha256(user, password),
        }
        .map_err(classify)
    }

    fn utf8(&mut self) -> Result<(), Failure> {
        self.0.utf8().map_err(classify)
    }

    fn lang(&mut self, tag: Option<&str>) -> Result<Vec<Language>, Failure> {
        self.0.lang(tag).map_err(classify)
    }

    fn stat(&mut self) -> Result<Stat, Failure> {
        self.0.stat().map_err(classify)
    }

    fn list(&mut self) -> Result<Vec<ListEntry>, Failure> {
        self.0.list().map_err(classify)
    }

    fn list_one(&mut self, msg: MsgNum) -> Result<ListEntry, Failure> {
        self.0.list_one(msg).map_err(classify)
    }

    fn uidl(&mut self) -> Result<Vec<UidlEntry>, Failure> {
        self.0.uidl().map_err(classify)
    }

    fn uidl_one(&mut self, msg: MsgNum) -> Result<UidlEntry, Failure> {
        self.0.uidl_one(msg).map_err(classify)
    }

    fn retr(&mut self, msg: MsgNum) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        let n = self.0.retr_to(msg, &mut out).map_err(classify)?;
        assert_eq!(n, out.len() as u64, "retr_to counts the bytes it wrote");
        Ok(out)
    }

    fn retr_streamed(&mut self, msg: MsgNum, buf_size: usize) -> Result<Vec<u8>, Failure> {
        let mut reader = self.0.retr(msg).map_err(classify)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; buf_size];
        loop {
            let n = reader.read(&mut buf).map_err(classify_io)?;
            if n == 0 {
                assert!(reader.is_finished());
                assert_eq!(reader.msg(), msg);
                return Ok(out);
            }
            assert!(n <= buf_size);
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn retr_partial(&mut self, msg: MsgNum, bytes: usize) -> Result<Vec<u8>, Failure> {
        let mut reader = self.0.retr(msg).map_err(classify)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        while out.len() < bytes {
            let n = reader.read(&mut buf).map_err(classify_io)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        // The reader is dropped here, before the end of the message.
        Ok(out)
    }

    fn top(&mut self, msg: MsgNum, lines: u32) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.0.top_to(msg, lines, &mut out).map_err(classify)?;
        Ok(out)
    }

    fn dele(&mut self, msg: MsgNum) -> Result<(), Failure> {
        self.0.dele(msg).map_err(classify)
    }

    fn rset(&mut self) -> Result<(), Failure> {
        self.0.rset().map_err(classify)
    }

    fn noop(&mut self) -> Result<(), Failure> {
        self.0.noop().map_err(classify)
    }

    fn retr_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure> {
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); msgs.len()];
        // Messages are asked for once each, so the number finds the slot.
        let slots: HashMap<MsgNum, usize> = msgs.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let mut sink = |msg: MsgNum, chunk: &[u8]| out[slots[&msg]].extend_from_slice(chunk);
        let results = self.0.retr_many(msgs, &mut sink).map_err(classify)?;
        Ok(results
            .into_iter()
            .zip(out)
            .map(|(result, bytes)| match result {
                Ok(size) => {
                    assert_eq!(size, bytes.len() as u64);
                    Ok(bytes)
                }
                Err(e) => Err(classify(e)),
            })
            .collect())
    }

    fn dele_many(&mut self, msgs: &[MsgNum]) -> Result<Vec<Result<(), Failure>>, Failure> {
        let results = self.0.dele_many(msgs).map_err(classify)?;
        Ok(results.into_iter().map(|r| r.map_err(classify)).collect())
    }

    fn quit(self) -> Result<(), Failure> {
        self.0.quit().map_err(classify)
    }
}
