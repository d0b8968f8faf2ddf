//! Writes seed corpora from the transcript files of `pop3-proto/tests/transcripts`.
//!
//! Usage: `cargo run --example seeds -- <corpus dir> <transcript files...>`
//! (see `seed.sh`). Every structured seed is checked by decoding it back with
//! `Arbitrary` before it is written.
//!
//! Transcript format (as `pop3-proto/tests/support/mod.rs`): `S: text` server
//! bytes (CRLF appended; `\xNN`, `\n`, `\r`, `\\` escapes), `C: command`,
//! `C* line` (sent by the client itself), `#! password P`, `#! mech NAME args`,
//! `#! tls`; other `#` lines are comments.

use std::fs;
use std::path::{Path, PathBuf};

use pop3_fuzz::{
    base64_decode, encode_checked, reference_unstuff, BodyInput, Bytes, EncodeInput, FuzzCommand,
    FuzzMech, Op, SaslCase, SaslInput, SessionConfig, SessionInput, Str,
};

#[derive(Debug, Clone)]
enum Entry {
    Server(Vec<u8>),
    Submit(String),
    Mech(Vec<String>),
    Tls,
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                b'x' if i + 3 < b.len() => {
                    if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("S:") {
            let mut bytes = unescape(rest.strip_prefix(' ').unwrap_or(rest));
            bytes.extend_from_slice(b"\r\n");
            entries.push(Entry::Server(bytes));
        } else if let Some(rest) = line.strip_prefix("C:") {
            entries.push(Entry::Submit(rest.trim_start().to_string()));
        } else if let Some(rest) = line.strip_prefix("#!") {
            let words: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            match words.first().map(String::as_str) {
                Some("mech") => entries.push(Entry::Mech(words[1..].to_vec())),
                Some("tls") => entries.push(Entry::Tls),
                _ => {}
            }
        }
    }
    entries
}

fn mech(spec: &[String]) -> FuzzMech {
    let s = |i: usize| Str(spec.get(i).cloned().unwrap_or_default());
    match spec[0].as_str() {
        "scram-sha-1" => FuzzMech::ScramSha1 {
            user: s(1),
            authzid: None,
        },
        "scram-sha-256" => FuzzMech::ScramSha256 {
            user: s(1),
            authzid: None,
        },
        "cram-md5" => FuzzMech::CramMd5 {
            user: s(1),
            password: s(2),
        },
        "plain" => FuzzMech::Plain {
            authzid: None,
            user: s(1),
            password: s(2),
        },
        _ => FuzzMech::Login {
            user: s(1),
            password: s(2),
        },
    }
}

fn command(line: &str, password: &str, pending_mech: &mut Option<Vec<String>>) -> FuzzCommand {
    let words: Vec<&str> = line.split(' ').collect();
    let num = |i: usize| words.get(i).and_then(|w| w.parse().ok());
    let s = |w: &str| Str(w.to_string());
    match words[0] {
        "USER" => FuzzCommand::User(s(&words[1..].join(" "))),
        "PASS" => FuzzCommand::Pass(s(&words[1..].join(" "))),
        "APOP" => FuzzCommand::Apop {
            user: s(words[1]),
            password: s(password),
        },
        "AUTH" => FuzzCommand::Auth(mech(
            &pending_mech.take().unwrap_or_else(|| vec!["login".into()]),
        )),
        "STLS" => FuzzCommand::Stls,
        "CAPA" => FuzzCommand::Capa,
        "STAT" => FuzzCommand::Stat,
        "LIST" => FuzzCommand::List(num(1)),
        "UIDL" => FuzzCommand::Uidl(num(1)),
        "RETR" => FuzzCommand::Retr(num(1).unwrap_or(1)),
        "TOP" => FuzzCommand::Top(num(1).unwrap_or(1), num(2).unwrap_or(0)),
        "DELE" => FuzzCommand::Dele(num(1).unwrap_or(1)),
        "NOOP" => FuzzCommand::Noop,
        "RSET" => FuzzCommand::Rset,
        "QUIT" => FuzzCommand::Quit,
        "UTF8" => FuzzCommand::Utf8,
        "LANG" => FuzzCommand::Lang(words.get(1).map(|w| s(w))),
        verb => FuzzCommand::Raw {
            verb: s(verb),
            args: words[1..].iter().map(|w| s(w)).collect(),
            multiline: false,
        },
    }
}

struct Writer {
    root: PathBuf,
    count: usize,
}

impl Writer {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        self.count += 1;
    }
}

fn seeds_for(w: &mut Writer, name: &str, text: &str) {
    let entries = parse(text);
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("#! password ").map(str::trim))
        .unwrap_or("secret")
        .to_string();

    // Commands in order, each with the server lines that answer it.
    let mut exchanges: Vec<(FuzzCommand, Vec<Vec<u8>>)> = Vec::new();
    let mut pending_mech = None;
    for e in &entries {
        match e {
            Entry::Mech(m) => pending_mech = Some(m.clone()),
            Entry::Submit(c) => {
                exchanges.push((command(c, &password, &mut pending_mech), Vec::new()))
            }
            Entry::Server(b) => {
                if let Some(last) = exchanges.last_mut() {
                    last.1.push(b.clone());
                }
            }
            Entry::Tls => {}
        }
    }

    // session: the whole transcript, twice configured.
    for (variant, (config, buffered)) in [
        (
            SessionConfig {
                encrypted: false,
                allow_plaintext: true,
                small_limits: false,
                window: 3,
                body_line_limit: None,
                small_read: false,
            },
            false,
        ),
        (
            SessionConfig {
                encrypted: true,
                allow_plaintext: false,
                small_limits: true,
                window: 1,
                body_line_limit: Some(40),
                small_read: true,
            },
            true,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ops = Vec::new();
        let mut pending_mech = None;
        for e in &entries {
            match e {
                Entry::Server(b) if buffered => ops.push(Op::ReceiveBuffered(Bytes(b.clone()))),
                Entry::Server(b) => ops.push(Op::Receive(Bytes(b.clone()))),
                Entry::Submit(c) => ops.push(Op::Submit(command(c, &password, &mut pending_mech))),
                Entry::Mech(m) => pending_mech = Some(m.clone()),
                Entry::Tls => ops.push(Op::TlsEstablished),
            }
            ops.push(Op::PollMany(255));
        }
        ops.push(Op::Eof);
        ops.push(Op::PollMany(255));
        let input = SessionInput { config, ops };
        w.write(
            "session",
            &format!("{name}-{variant}"),
            &encode_checked(&input),
        );
    }

    // reply_line: [kind, chunk, repeat, reply...] for the commands it covers.
    for (i, (cmd, reply)) in exchanges.iter().enumerate() {
        let kind = match cmd {
            FuzzCommand::Stat => 0u8,
            FuzzCommand::List(None) => 1,
            FuzzCommand::List(Some(_)) => 2,
            FuzzCommand::Uidl(None) => 3,
            FuzzCommand::Uidl(Some(_)) => 4,
            FuzzCommand::Capa => 5,
            FuzzCommand::Noop => 6,
            FuzzCommand::Lang(None) => 7,
            _ => continue,
        };
        let mut seed = vec![kind, 255, 0];
        seed.extend(reply.concat());
        w.write("reply_line", &format!("{name}-{i}"), &seed);
        let mut small = vec![kind, 2, 3];
        small.extend(reply.concat());
        w.write("reply_line", &format!("{name}-{i}-small"), &small);
    }

    // body_framing: each retrieved message, unstuffed.
    for (i, (cmd, reply)) in exchanges.iter().enumerate() {
        if !cmd.has_body() || reply.is_empty() || !reply[0].starts_with(b"+OK") {
            continue;
        }
        let wire = reply[1..].concat();
        let Some((message, _)) = reference_unstuff(&wire) else {
            continue;
        };
        for (variant, input) in [
            BodyInput {
                body_line_limit: None,
                chunk_limit: None,
                chunks: vec![],
                message: Bytes(message.clone()),
            },
            BodyInput {
                body_line_limit: Some(16),
                chunk_limit: Some(5),
                chunks: vec![0, 1, 6],
                message: Bytes(message.clone()),
            },
        ]
        .into_iter()
        .enumerate()
        {
            w.write(
                "body_framing",
                &format!("{name}-{i}-{variant}"),
                &encode_checked(&input),
            );
        }
    }

    // sasl: the AUTH exchanges, challenges decoded.
    for (i, (cmd, reply)) in exchanges.iter().enumerate() {
        let FuzzCommand::Auth(m) = cmd else { continue };
        let challenges: Vec<Bytes> = reply
            .iter()
            .filter_map(|l| {
                l.strip_prefix(b"+ ")
                    .or_else(|| (l.as_slice() == b"+\r\n").then_some(&b""[..]))
            })
            .map(|l| Bytes(base64_decode(l.strip_suffix(b"\r\n").unwrap_or(l))))
            .collect();
        let case = match m {
            FuzzMech::ScramSha1 { authzid, .. } => SaslCase::ScramSha1 {
                authzid: authzid.clone(),
            },
            FuzzMech::ScramSha256 { authzid, .. } => SaslCase::ScramSha256 {
                authzid: authzid.clone(),
            },
            FuzzMech::CramMd5 { user, password } => SaslCase::CramMd5 {
                user: user.clone(),
                password: password.clone(),
            },
            FuzzMech::Plain {
                authzid,
                user,
                password,
            } => SaslCase::Plain {
                authzid: authzid.clone(),
                user: user.clone(),
                password: password.clone(),
            },
            FuzzMech::Login { user, password } => SaslCase::Login {
                user: user.clone(),
                password: password.clone(),
            },
            _ => continue,
        };
        let input = SaslInput {
            case,
            initial: true,
            challenges,
        };
        w.write("sasl", &format!("{name}-{i}"), &encode_checked(&input));
    }

    // command_encode: every command of the transcript, in a fitting state.
    for (i, (cmd, _)) in exchanges.iter().enumerate() {
        let logged_in = matches!(
            cmd,
            FuzzCommand::Stat
                | FuzzCommand::List(_)
                | FuzzCommand::Uidl(_)
                | FuzzCommand::Retr(_)
                | FuzzCommand::Top(..)
                | FuzzCommand::Dele(_)
                | FuzzCommand::Noop
                | FuzzCommand::Rset
        );
        let input = EncodeInput {
            encrypted: !matches!(cmd, FuzzCommand::Stls),
            allow_plaintext: false,
            logged_in,
            apop_greeting: matches!(cmd, FuzzCommand::Apop { .. }),
            command: cmd.clone(),
        };
        w.write(
            "command_encode",
            &format!("{name}-{i}"),
            &encode_checked(&input),
        );
    }
}

/// A few hand-made inputs the transcripts do not cover.
fn extra_seeds(w: &mut Writer) {
    let replies: [(u8, &[u8]); 6] = [
        (3, b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"),
        (7, b"+OK Language listing follows\r\nen English\r\nen-boont English Boontling dialect\r\ni-default Default language\r\n.\r\n"),
        (5, b"+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\nLOGIN-DELAY 900 USER\r\nEXPIRE NEVER\r\nUTF8 USER\r\nIMPLEMENTATION x\r\n.\r\n"),
        (0, b"-ERR [SYS/TEMP] try later\r\n"),
        (1, b"+OK\r\n..1 2\r\n.\r\n"),
        (6, b"+OK\r\n+OK\r\n"),
    ];
    for (i, (kind, reply)) in replies.iter().enumerate() {
        let mut seed = vec![*kind, 7, 1];
        seed.extend_from_slice(reply);
        w.write("reply_line", &format!("extra-{i}"), &seed);
    }
    let message = b"From: a\r\n\r\n.\r\n..\r\nx\n.\r\n.\rend\r\n".to_vec();
    let input = BodyInput {
        body_line_limit: None,
        chunk_limit: Some(1),
        chunks: vec![0, 2],
        message: Bytes(message),
    };
    w.write("body_framing", "extra-0", &encode_checked(&input));
    let input = EncodeInput {
        encrypted: true,
        allow_plaintext: false,
        logged_in: true,
        apop_greeting: false,
        command: FuzzCommand::Raw {
            verb: Str::new("XTND"),
            args: vec![Str::new("XMIT")],
            multiline: true,
        },
    };
    w.write("command_encode", "extra-0", &encode_checked(&input));
    let input = SaslInput {
        case: SaslCase::OAuthBearer {
            user: Str::new("a=b,c"),
            token: Str::new("t"),
        },
        initial: true,
        challenges: vec![
            Bytes(br#"{"status":"invalid_token"}"#.to_vec()),
            Bytes(vec![]),
        ],
    };
    w.write("sasl", "extra-0", &encode_checked(&input));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .expect("usage: seeds <corpus dir> <transcripts...>"),
    );
    let mut w = Writer { root, count: 0 };
    for path in args {
        let path = Path::new(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(path).unwrap();
        seeds_for(&mut w, &name, &text);
    }
    extra_seeds(&mut w);
    eprintln!("wrote {} seeds under {}", w.count, w.root.display());
}
