//! One arbitrary command submitted to a greeted (optionally logged-in) client.
//!
//! Asserted: either `submit` refuses it with a `UsageError` and nothing at all
//! is queued or sent, or exactly one line goes out: the verb and arguments
//! separated by single spaces and CRLF, with no CR, LF or NUL before the final
//! CRLF, at most 255 octets (RFC 2449), byte-for-byte what the command says
//! (APOP: `APOP user <32 lower-case hex>`; AUTH: `AUTH NAME [base64 initial
//! response, or = when empty]`, the response left out when the line would pass
//! 255 octets). Also an oracle for acceptance: commands that fit the state
//! with clean arguments are accepted, and ones with empty or CR/LF/NUL
//! arguments, in the wrong state, or revealing credentials over an unencrypted
//! connection without permission are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{expected_auth_line, settle, wire_lines, EncodeInput, FuzzCommand, FuzzMech};
use pop3_proto::{Action, Client, Config, Secret, UsageError};

/// Clean: non-empty, no CR/LF/NUL, comfortably short. Dirty: empty or with
/// CR/LF/NUL. In between (very long): either answer is fine.
fn arg(s: &str) -> Option<bool> {
    if s.is_empty() || s.contains(['\r', '\n', '\0']) {
        Some(false)
    } else if s.len() <= 200 {
        Some(true)
    } else {
        None
    }
}

fn all(conditions: &[Option<bool>]) -> Option<bool> {
    if conditions.contains(&Some(false)) {
        Some(false)
    } else if conditions.iter().all(|c| *c == Some(true)) {
        Some(true)
    } else {
        None
    }
}

fn mechanism_name_ok(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `submit` must accept (`Some(true)`) or refuse (`Some(false)`) the command.
fn oracle(input: &EncodeInput, logged_in: bool, creds_ok: bool) -> Option<bool> {
    let authorization = Some(!logged_in);
    let transaction = Some(logged_in);
    let creds = Some(creds_ok);
    match &input.command {
        FuzzCommand::User(u) => all(&[authorization, arg(&u.0), creds]),
        // No USER before it in this session.
        FuzzCommand::Pass(_) => Some(false),
        FuzzCommand::Apop { user, password } => all(&[
            authorization,
            arg(&user.0),
            arg(&password.0),
            Some(!user.0.contains(' ')),
            Some(input.apop_greeting),
            creds,
        ]),
        FuzzCommand::Auth(m) => {
            let name_ok = match m {
                FuzzMech::Custom { name, .. } => mechanism_name_ok(&name.0),
                _ => true,
            };
            all(&[
                authorization,
                Some(name_ok),
                Some(!m.exposes_credentials() || creds_ok),
                Some(expected_auth_line(m).is_some()),
            ])
        }
        FuzzCommand::Stls => Some(!logged_in && !input.encrypted),
        FuzzCommand::Utf8 => authorization,
        FuzzCommand::Capa | FuzzCommand::Quit | FuzzCommand::Lang(None) => Some(true),
        FuzzCommand::Stat
        | FuzzCommand::List(_)
        | FuzzCommand::Uidl(_)
        | FuzzCommand::Retr(_)
        | FuzzCommand::Top(..)
        | FuzzCommand::Dele(_)
        | FuzzCommand::Noop
        | FuzzCommand::Rset => transaction,
        FuzzCommand::Lang(Some(tag)) => {
            let t = &tag.0;
            if t.is_empty() || t.contains(['\r', '\n', '\0', ' ']) {
                Some(false)
            } else if t.len() <= 35 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                Some(true)
            } else {
                None
            }
        }
        FuzzCommand::Raw { verb, args, .. } => {
            let v = &verb.0;
            let verb_ok = !v.is_empty()
                && v.len() <= 40
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let tracked = ["USER", "PASS", "APOP", "AUTH", "STLS", "QUIT", "UTF8"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(v));
            let len = v.len() + args.iter().map(|a| a.0.len() + 1).sum::<usize>() + 2;
            let mut conditions = vec![Some(verb_ok && !tracked), Some(len <= 255)];
            conditions.extend(args.iter().map(|a| arg(&a.0)));
            all(&conditions)
        }
    }
}

fuzz_target!(|input: EncodeInput| {
    let config = if input.encrypted {
        Config::encrypted()
    } else {
        Config::default()
    };
    let config = config.allow_plaintext_credentials(input.allow_plaintext);
    let creds_ok = input.encrypted || input.allow_plaintext;
    let mut client = Client::new(config);
    if input.apop_greeting {
        client.receive(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    } else {
        client.receive(b"+OK POP3 server ready\r\n");
    }
    settle(&mut client);
    let logged_in = input.logged_in && creds_ok;
    if logged_in {
        client.user("u").unwrap();
        client.pass(Secret::new("p".into())).unwrap();
        settle(&mut client);
        client.receive(b"+OK\r\n");
        settle(&mut client);
        client.receive(b"+OK\r\n");
        settle(&mut client);
    }
    assert_eq!(client.in_flight(), 0);

    let Some(command) = input.command.build() else {
        return;
    };
    let expect = oracle(&input, logged_in, creds_ok);
    match client.submit(command) {
        Err(e) => {
            assert_ne!(expect, Some(true), "refused {:?}: {e:?}", input.command);
            assert_ne!(e, UsageError::Closed);
            assert_eq!(client.queued(), 0, "refused command was queued");
            assert_eq!(client.in_flight(), 0, "refused command was sent");
            match client.poll() {
                Ok(Action::NeedInput) => {}
                other => panic!("after a refused submission: {other:?}"),
            }
        }
        Ok(_) => {
            assert_ne!(expect, Some(false), "accepted {:?}", input.command);
            let bytes = match client.poll() {
                Ok(Action::Send(b)) => b.to_vec(),
                other => panic!("accepted {:?} but got {other:?}", input.command),
            };
            let lines = wire_lines(&bytes);
            assert_eq!(
                lines.len(),
                1,
                "more than one line for one command: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(
                bytes.len() <= 255,
                "command line of {} octets (RFC 2449: 255): {:?}",
                bytes.len(),
                input.command
            );
            match &input.command {
                FuzzCommand::Apop { user, .. } => {
                    let prefix = format!("APOP {} ", user.0);
                    assert!(
                        bytes.starts_with(prefix.as_bytes()),
                        "{:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                    let digest = &bytes[prefix.len()..bytes.len() - 2];
                    assert_eq!(digest.len(), 32);
                    assert!(digest.iter().all(|b| b"0123456789abcdef".contains(b)));
                }
                FuzzCommand::Auth(m) => {
                    assert_eq!(Some(bytes.clone()), expected_auth_line(m), "AUTH line");
                }
                c => assert_eq!(
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&c.expected_line().unwrap()),
                    "line for {c:?}"
                ),
            }
            match client.poll() {
                Ok(Action::NeedInput) => {}
                other => panic!("after the command line: {other:?}"),
            }
            assert_eq!(client.in_flight(), 1);
        }
    }
});
