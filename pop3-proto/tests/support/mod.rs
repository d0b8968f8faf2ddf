//! Test helpers: a transcript format and a driver that replays it through the core.
//!
//! Transcript lines:
//! - `S: text` — bytes the server sends (CRLF appended; `\xNN`, `\n`, `\r`, `\\` escapes);
//! - `C: command` — a command the test submits; the client must send exactly this line;
//! - `C* text` — a line the client sends by itself (SASL responses, automatic CAPA);
//! - `#! password P` — the password for APOP / PASS lines that follow;
//! - `#! mech NAME args...` — the SASL mechanism for the next `C: AUTH` line;
//! - `#! tls` — TLS starts here: the server bytes after it are fed only after
//!   the core asked for TLS and was told it is up;
//! - other `#` lines and blank lines are comments.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use pop3_proto::sasl::{CramMd5, Login, Mechanism, Plain, Scram};
use pop3_proto::{Action, Client, Command, Config, Event, MsgNum, Secret};

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Server(Vec<u8>),
    Submit(String),
    Auto(Vec<u8>),
    Password(String),
    Mech(Vec<String>),
    Tls,
}

pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                }
                b'x' if i + 3 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 4;
                }
                _ => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("S:") {
            let mut bytes = unescape(rest.strip_prefix(' ').unwrap_or(rest));
            bytes.extend_from_slice(b"\r\n");
            entries.push(Entry::Server(bytes));
        } else if let Some(rest) = line.strip_prefix("C:") {
            entries.push(Entry::Submit(rest.trim_start().to_string()));
        } else if let Some(rest) = line.strip_prefix("C*") {
            let mut bytes = rest.strip_prefix(' ').unwrap_or(rest).as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            entries.push(Entry::Auto(bytes));
        } else if let Some(rest) = line.strip_prefix("#!") {
            let words: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            match words[0].as_str() {
                "password" => entries.push(Entry::Password(words[1].clone())),
                "mech" => entries.push(Entry::Mech(words[1..].to_vec())),
                "tls" => entries.push(Entry::Tls),
                other => panic!("unknown directive {other}"),
            }
        }
    }
    entries
}

fn mechanism(spec: &[String]) -> Box<dyn Mechanism> {
    let s = |i: usize| spec[i].clone();
    match spec[0].as_str() {
        "scram-sha-1" => Box::new(Scram::sha1(s(1), Secret::new(s(2)), s(3)).unwrap()),
        "scram-sha-256" => Box::new(Scram::sha256(s(1), Secret::new(s(2)), s(3)).unwrap()),
        "cram-md5" => Box::new(CramMd5::new(s(1), Secret::new(s(2)))),
        "plain" => Box::new(Plain::new(None, s(1), Secret::new(s(2))).unwrap()),
        "login" => Box::new(Login::new(s(1), Secret::new(s(2)))),
        other => panic!("unknown mechanism {other}"),
    }
}

fn num(s: &str) -> MsgNum {
    MsgNum::new(s.parse().unwrap()).unwrap()
}

/// Turns a `C:` line into the command that produces it.
pub fn command(line: &str, password: &str, mech: &mut Option<Vec<String>>) -> Command {
    let words: Vec<&str> = line.split(' ').collect();
    let arg = |i: usize| words.get(i).map(|w| num(w));
    match words[0] {
        "USER" => Command::User(words[1..].join(" ")),
        "PASS" => Command::Pass(Secret::new(words[1..].join(" "))),
        "APOP" => Command::Apop {
            user: words[1].to_string(),
            password: Secret::new(password.to_string()),
        },
        "AUTH" => Command::Auth(mechanism(&mech.take().expect("#! mech before AUTH"))),
        "STLS" => Command::Stls,
        "CAPA" => Command::Capa,
        "STAT" => Command::Stat,
        "LIST" => Command::List(arg(1)),
        "UIDL" => Command::Uidl(arg(1)),
        "RETR" => Command::Retr(num(words[1])),
        "TOP" => Command::Top(num(words[1]), words[2].parse().unwrap()),
        "DELE" => Command::Dele(num(words[1])),
        "NOOP" => Command::Noop,
        "RSET" => Command::Rset,
        "QUIT" => Command::Quit,
        "UTF8" => Command::Utf8,
        "LANG" => Command::Lang(words.get(1).map(|s| s.to_string())),
        verb => Command::Raw {
            verb: verb.to_string(),
            args: words[1..].iter().map(|s| s.to_string()).collect(),
            multiline: false,
        },
    }
}

/// An owned record of an event, with body chunks merged so that records do not
/// depend on where the input was split.
#[derive(Debug, Clone, PartialEq)]
pub enum Rec {
    Event(String),
    Body(Vec<u8>),
    StartTls,
    Closed,
    Fatal(String),
}

pub fn push(recs: &mut Vec<Rec>, rec: Rec) {
    if let (Some(Rec::Body(prev)), Rec::Body(more)) = (recs.last_mut(), &rec) {
        prev.extend_from_slice(more);
        return;
    }
    recs.push(rec);
}

pub struct Replay {
    pub records: Vec<Rec>,
    pub sent: Vec<u8>,
}

/// Polls until the client needs input, recording what it does.
/// Returns false once the session is over (closed or failed).
pub fn drain(client: &mut Client, out: &mut Replay, tls_up: &mut bool) -> bool {
    loop {
        match client.poll() {
            Ok(Action::Send(bytes)) => out.sent.extend_from_slice(bytes),
            Ok(Action::Event(Event::Body { data, .. })) => {
                push(&mut out.records, Rec::Body(data.to_vec()))
            }
            Ok(Action::Event(event)) => push(
                &mut out.records,
                Rec::Event(without_client_id(&format!("{event:?}"))),
            ),
            Ok(Action::NeedInput) => return true,
            Ok(Action::StartTls) => {
                push(&mut out.records, Rec::StartTls);
                client.tls_established().unwrap();
                *tls_up = true;
            }
            Ok(Action::Closed) => {
                push(&mut out.records, Rec::Closed);
                return false;
            }
            Err(e) => {
                push(&mut out.records, Rec::Fatal(format!("{e:?}")));
                return false;
            }
        }
    }
}

/// What a transcript needs: the server's bytes as segments separated by TLS
/// starts, and the bytes the client must send. Commands are submitted where
/// they stand: after the server bytes before them have been handed over.
pub struct Script {
    pub segments: Vec<Vec<u8>>,
    pub client_bytes: Vec<u8>,
    pub entries: Vec<Entry>,
    /// For each entry, the segment and the offset in it where it stands.
    pub positions: Vec<(usize, usize)>,
}

pub fn script(text: &str) -> Script {
    let entries = parse(text);
    let mut segments = vec![Vec::new()];
    let mut client_bytes = Vec::new();
    let mut positions = Vec::new();
    for e in &entries {
        positions.push((segments.len() - 1, segments.last().unwrap().len()));
        match e {
            Entry::Server(b) => segments.last_mut().unwrap().extend_from_slice(b),
            Entry::Submit(c) => {
                client_bytes.extend_from_slice(c.as_bytes());
                client_bytes.extend_from_slice(b"\r\n");
            }
            Entry::Auto(b) => client_bytes.extend_from_slice(b),
            Entry::Tls => segments.push(Vec::new()),
            _ => {}
        }
    }
    Script {
        segments,
        client_bytes,
        entries,
        positions,
    }
}

/// Submits the transcript's commands, keeping the directives that apply to them.
#[derive(Default)]
pub struct Submitter {
    password: String,
    mech: Option<Vec<String>>,
    next: usize,
}

impl Submitter {
    /// Submits every command that stands at or before `(segment, offset)`.
    pub fn up_to(&mut self, client: &mut Client, script: &Script, segment: usize, offset: usize) {
        while self.next < script.entries.len() && script.positions[self.next] <= (segment, offset) {
            match &script.entries[self.next] {
                Entry::Password(p) => self.password = p.clone(),
                Entry::Mech(m) => self.mech = Some(m.clone()),
                Entry::Submit(c) => {
                    let command = command(c, &self.password, &mut self.mech);
                    client
                        .submit(command)
                        .unwrap_or_else(|e| panic!("submit {c}: {e:?}"));
                }
                _ => {}
            }
            self.next += 1;
        }
    }
}

pub fn config() -> Config {
    Config::default().allow_plaintext_credentials(true)
}

/// Replays the transcript, handing the server's bytes to the client in pieces
/// cut where `cut(segment length)` says (and where commands are submitted).
pub fn replay(script: &Script, cut: impl Fn(usize) -> Vec<usize>) -> Replay {
    let mut client = Client::new(config());
    let mut out = Replay {
        records: Vec::new(),
        sent: Vec::new(),
    };
    let mut submitter = Submitter::default();
    let mut tls_up = false;
    for (i, segment) in script.segments.iter().enumerate() {
        if i > 0 {
            // The client must have asked for TLS before the next segment.
            assert!(tls_up, "client did not start TLS before segment {i}");
            tls_up = false;
        }
        let mut points = cut(segment.len());
        points.extend(
            script
                .positions
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|&(_, offset)| offset),
        );
        points.push(segment.len());
        points.sort_unstable();
        points.dedup();
        let mut from = 0;
        for to in points {
            if to > segment.len() {
                continue;
            }
            client.receive(&segment[from..to]);
            from = to;
            if !drain(&mut client, &mut out, &mut tls_up) {
                return out;
            }
            submitter.up_to(&mut client, script, i, to);
            if !drain(&mut client, &mut out, &mut tls_up) {
                return out;
            }
        }
    }
    client.receive_eof();
    drain(&mut client, &mut out, &mut tls_up);
    out
}

/// Replays the transcript entry by entry and checks that before each server
/// entry the client has sent exactly the client lines written before it: this
/// proves the order of the exchange, including what was pipelined.
pub fn replay_in_order(script: &Script) -> Replay {
    let mut client = Client::new(config());
    let mut out = Replay {
        records: Vec::new(),
        sent: Vec::new(),
    };
    let mut submitter = Submitter::default();
    let mut expected_sent = Vec::new();
    let mut tls_up = false;
    for (index, e) in script.entries.iter().enumerate() {
        let (segment, offset) = script.positions[index];
        drain(&mut client, &mut out, &mut tls_up);
        submitter.up_to(&mut client, script, segment, offset);
        match e {
            Entry::Submit(c) => {
                expected_sent.extend_from_slice(c.as_bytes());
                expected_sent.extend_from_slice(b"\r\n");
            }
            Entry::Auto(b) => expected_sent.extend_from_slice(b),
            Entry::Tls => {
                drain(&mut client, &mut out, &mut tls_up);
                assert!(tls_up, "TLS was not started where the transcript says");
            }
            Entry::Server(b) => {
                drain(&mut client, &mut out, &mut tls_up);
                assert_eq!(
                    String::from_utf8_lossy(&out.sent),
                    String::from_utf8_lossy(&expected_sent),
                    "client output before server line {:?}",
                    String::from_utf8_lossy(b)
                );
                client.receive(b);
            }
            _ => {}
        }
    }
    client.receive_eof();
    drain(&mut client, &mut out, &mut tls_up);
    out
}

/// Handles print as `Handle(client:seq)`; the client id differs per run.
pub fn without_client_id(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("Handle(") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        if let Some(colon) = rest.find(':') {
            rest = &rest[colon + 1..];
        }
    }
    out.push_str(rest);
    out
}
