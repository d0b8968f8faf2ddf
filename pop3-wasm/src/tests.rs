//! The binding's surface exercised on the host: a scripted session through
//! the same calls the JavaScript driver makes.

use super::Client;

fn client() -> Client {
    Client::new(false, true, false, None, None, None, None, None, None)
}

/// Events up to the next instruction, with body bytes joined.
fn drain(c: &mut Client) -> (Vec<String>, Vec<u8>) {
    let mut events = Vec::new();
    let mut body = Vec::new();
    loop {
        let event = c.next_event();
        if event.contains(r#""kind":"body""#) {
            body.extend(c.take_body());
        }
        let instruction = [
            r#"{"kind":"needInput"}"#,
            r#"{"kind":"startTls"}"#,
            r#"{"kind":"closed"}"#,
        ]
        .contains(&event.as_str())
            || event.starts_with(r#"{"kind":"protocolError""#);
        events.push(event);
        if instruction {
            return (events, body);
        }
    }
}

#[test]
fn a_session_is_pumped_through_json_events_and_byte_arrays() {
    let mut c = client();
    c.receive(b"+OK ready\r\n");
    let (events, _) = drain(&mut c);
    assert_eq!(
        events[0],
        r#"{"kind":"greeting","text":"ready","apopTimestamp":null}"#
    );
    let login = c.login("u", "p".into(), "user", "n".repeat(24), None);
    assert_ne!(login, 0);
    assert_eq!(c.data_to_send(), b"USER u\r\n");
    c.receive(b"+OK\r\n");
    assert_eq!(c.data_to_send(), b"PASS p\r\n");
    c.receive(b"+OK welcome\r\n");
    let (events, _) = drain(&mut c);
    assert_eq!(
        events[0],
        format!(r#"{{"kind":"loggedIn","handle":"{login}","text":"welcome"}}"#)
    );
    let retr = c.retr(1);
    assert_eq!(c.data_to_send(), b"RETR 1\r\n");
    c.receive(b"+OK\r\nline\r\n..dot\r\n.\r\n");
    let (events, body) = drain(&mut c);
    assert_eq!(body, b"line\r\n.dot\r\n");
    assert_eq!(
        events.first().map(String::as_str),
        Some(format!(r#"{{"kind":"bodyStart","handle":"{retr}"}}"#).as_str())
    );
    assert!(events.contains(&format!(r#"{{"kind":"bodyEnd","handle":"{retr}"}}"#)));
    assert_eq!(c.state(), "transaction");
}

#[test]
fn refused_calls_return_0_and_say_why() {
    let mut c = client();
    assert_eq!(c.retr(0), 0);
    assert!(c
        .last_error()
        .is_some_and(|e| e.contains(r#""kind":"usage""#)));
    assert_eq!(c.stat(), 0, "STAT before login is refused by the core");
    assert!(c.retr_many(vec![1, 2]).is_empty());
    assert_eq!(c.login("u", "p".into(), "nonsense", String::new(), None), 0);
    assert!(!c.tls_established(), "no upgrade is pending");
    c.receive(b"+OK ready\r\n");
    let _ = drain(&mut c);
    assert_ne!(c.capa(), 0);
    assert_eq!(c.last_error(), None);
}

#[test]
fn bytes_after_the_stls_ok_end_the_session() {
    let mut c = client();
    c.receive(b"+OK ready\r\n");
    let _ = drain(&mut c);
    let upgrade = c.start_tls();
    assert_eq!(c.data_to_send(), b"CAPA\r\n");
    c.receive(b"+OK\r\nSTLS\r\n.\r\n");
    assert_eq!(c.data_to_send(), b"STLS\r\n");
    c.receive(b"+OK begin\r\n+OK forged\r\n");
    let (events, _) = drain(&mut c);
    let last = events.last().map(String::as_str).unwrap_or_default();
    assert!(last.starts_with(r#"{"kind":"protocolError""#), "{events:?}");
    assert!(last.contains("injection"), "{events:?}");
    assert!(!c.tls_established(), "nothing to establish any more");
    assert_ne!(upgrade, 0);
}

#[test]
fn a_failed_handshake_fails_the_upgrade_and_cancels_what_waited() {
    let mut c = client();
    c.receive(b"+OK ready\r\n");
    let _ = drain(&mut c);
    let upgrade = c.start_tls();
    let login = c.login("u", "p".into(), "auto", "n".repeat(24), None);
    let _ = c.data_to_send();
    c.receive(b"+OK\r\nSTLS\r\n.\r\n");
    let _ = c.data_to_send();
    c.receive(b"+OK begin\r\n");
    let (events, _) = drain(&mut c);
    assert_eq!(
        events.last().map(String::as_str),
        Some(r#"{"kind":"startTls"}"#)
    );
    assert!(c.tls_failed());
    let (events, _) = drain(&mut c);
    assert!(events[0].contains(&format!(r#""kind":"failed","handle":"{upgrade}""#)));
    assert!(events[1].contains(&format!(r#""kind":"cancelled","handle":"{login}""#)));
    assert!(events[2].starts_with(r#"{"kind":"protocolError""#));
}

#[test]
fn a_refusal_carries_the_cores_verdicts() {
    let mut c = client();
    c.receive(b"+OK ready\r\n");
    let _ = drain(&mut c);
    let login = c.login("u", "p".into(), "user", "n".repeat(24), None);
    assert_eq!(c.data_to_send(), b"USER u\r\n");
    c.receive(b"+OK\r\n");
    assert_eq!(c.data_to_send(), b"PASS p\r\n");
    c.receive(b"-ERR no such user or wrong password\r\n");
    let (events, _) = drain(&mut c);
    let refusal = format!(r#""kind":"err","handle":"{login}""#);
    let err = events
        .iter()
        .find(|e| e.contains(&refusal))
        .expect("the login's -ERR");
    assert!(err.contains(r#""authenticationRefused":true"#), "{err}");
    assert!(err.contains(r#""temporary":false"#), "{err}");
}

#[test]
fn a_temporary_refusal_is_not_an_authentication_refusal() {
    let mut c = client();
    c.receive(b"+OK ready\r\n");
    let _ = drain(&mut c);
    let login = c.login("u", "p".into(), "user", "n".repeat(24), None);
    assert_eq!(c.data_to_send(), b"USER u\r\n");
    c.receive(b"+OK\r\n");
    assert_eq!(c.data_to_send(), b"PASS p\r\n");
    c.receive(b"-ERR [IN-USE] mailbox locked\r\n");
    let (events, _) = drain(&mut c);
    let refusal = format!(r#""kind":"err","handle":"{login}""#);
    let err = events
        .iter()
        .find(|e| e.contains(&refusal))
        .expect("the login's -ERR");
    assert!(err.contains(r#""authenticationRefused":false"#), "{err}");
    assert!(err.contains(r#""temporary":true"#), "{err}");
}
