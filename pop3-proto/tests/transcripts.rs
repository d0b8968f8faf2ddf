//! Whole sessions from transcript files, replayed through the core: in order
//! (checking what the client sent before each server line), then with the
//! server's bytes split at every position and one byte at a time. The records
//! must not depend on the splits.
#![allow(clippy::unwrap_used)]

mod support;

use support::{replay, replay_in_order, script, Rec, Replay};

fn load(name: &str) -> String {
    let path = format!("{}/tests/transcripts/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replays a transcript every way and returns the records of the in-order run.
fn check(name: &str) -> Vec<Rec> {
    let script = script(&load(name));
    let reference: Replay = replay_in_order(&script);
    assert_eq!(
        String::from_utf8_lossy(&reference.sent),
        String::from_utf8_lossy(&script.client_bytes),
        "{name}: bytes sent"
    );
    assert!(
        !reference.records.iter().any(|r| matches!(r, Rec::Fatal(_))),
        "{name}: {:?}",
        reference.records
    );
    let longest = script.segments.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..=longest {
        let split = replay(&script, |_| vec![k]);
        assert_eq!(split.records, reference.records, "{name}: split at {k}");
        assert_eq!(split.sent, reference.sent, "{name}: sent, split at {k}");
    }
    let bytewise = replay(&script, |len| (1..len).collect());
    assert_eq!(
        bytewise.records, reference.records,
        "{name}: one byte at a time"
    );
    reference.records
}

fn events(records: &[Rec]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| match r {
            Rec::Event(e) => Some(e.as_str()),
            _ => None,
        })
        .collect()
}

fn bodies(records: &[Rec]) -> Vec<&[u8]> {
    records
        .iter()
        .filter_map(|r| match r {
            Rec::Body(b) => Some(b.as_slice()),
            _ => None,
        })
        .collect()
}

#[test]
fn rfc1939_example_session_with_apop() {
    let records = check("rfc1939_apop.txt");
    let events = events(&records);
    assert!(
        events[0].contains("<1896.697170952@dbc.mtview.ca.us>"),
        "{}",
        events[0]
    );
    assert!(events[1].contains("Authenticated"));
    assert!(
        events[2].contains("Stat(Stat { count: 2, size: 320 })"),
        "{}",
        events[2]
    );
    assert!(events[3].contains("size: 120") && events[3].contains("size: 200"));
    assert_eq!(
        bodies(&records),
        [
            &b"<the POP3 server sends message 1>\r\n"[..],
            b"<the POP3 server sends message 2>\r\n"
        ]
    );
    assert_eq!(records.last(), Some(&Rec::Closed));
}

#[test]
fn capabilities_unknown_ones_are_kept_and_codes_are_typed() {
    let records = check("capa_unknown.txt");
    let events = events(&records);
    let capa = events[1];
    for expected in [
        "Top",
        "User",
        "Sasl([\"PLAIN\", \"GSSAPI\", \"X-UNKNOWN-MECH\"])",
        "RespCodes",
        "AuthRespCode",
        "LoginDelay { seconds: 900, per_user: false }",
        "Expire { days: None, per_user: false }",
        "Other { name: \"X-FUTURE-EXTENSION\", args: [\"with\", \"some\", \"args\"] }",
        "Other { name: \"LOGIN-DELAY\", args: [\"not-a-number\"] }",
        "Implementation(\"Shlemazle-Plotz-v302\")",
        "Uidl",
    ] {
        assert!(capa.contains(expected), "{expected} missing from {capa}");
    }
    assert!(events[3].contains("code: Some(InUse)"), "{}", events[3]);
    assert!(events[5].contains("Other(\"X-NEW/CODE\")"), "{}", events[5]);
    // The terminal escape in the server text was neutralised.
    assert!(
        !events[5].contains('\u{1b}') && events[5].contains('\u{fffd}'),
        "{}",
        events[5]
    );
}

#[test]
fn scram_sha1_rfc5802_vector() {
    let records = check("sasl_scram_sha1.txt");
    assert!(events(&records).iter().any(|e| e.contains("Authenticated")));
}

#[test]
fn scram_sha256_rfc7677_vector() {
    let records = check("sasl_scram_sha256.txt");
    assert!(events(&records).iter().any(|e| e.contains("Authenticated")));
}

#[test]
fn cram_md5_rfc2195_example() {
    let records = check("sasl_cram_md5.txt");
    assert!(events(&records).iter().any(|e| e.contains("Authenticated")));
}

#[test]
fn plain_with_initial_response() {
    let records = check("sasl_plain.txt");
    assert!(events(&records).iter().any(|e| e.contains("Authenticated")));
}

#[test]
fn pipelined_retrieval_matches_replies_in_order() {
    let records = check("pipelining.txt");
    assert_eq!(
        bodies(&records),
        [&b"one\r\n"[..], b".two\r\n", b"four\xff\xfe 8-bit\r\n"]
    );
    let events = events(&records);
    assert!(
        events.iter().any(|e| e.starts_with("Capabilities(")),
        "automatic CAPA after login"
    );
}

#[test]
fn stls_forgets_capabilities_and_asks_again() {
    let records = check("stls.txt");
    assert!(records.contains(&Rec::StartTls));
    let events = events(&records);
    let uidl = events.iter().find(|e| e.contains("Uidl([")).unwrap();
    assert!(uidl.contains("whqtswO00WBw418f9t5JxYwZ") && uidl.contains("QhdPYR:00WBw1Ph7x7"));
}

#[test]
fn bodies_are_unstuffed_exactly() {
    let records = check("bodies.txt");
    let bodies = bodies(&records);
    assert_eq!(
        bodies,
        [
            &b".\r\n..leading dots\r\ntext.\r\ncaf\xc3\xa9 \x00\x80\r\nbare\n.LF\r\n"[..],
            b"Subject: x\r\n\r\n"
        ]
    );
    // The empty message: its start is followed at once by its end, with no
    // body chunk in between.
    let start = records
        .iter()
        .position(|r| matches!(r, Rec::Event(e) if e.starts_with("BodyStart")))
        .unwrap();
    assert!(
        matches!(&records[start + 1], Rec::Event(e) if e.contains("BodyEnd")),
        "{:?}",
        &records[start..]
    );
    let events = events(&records);
    assert!(events
        .iter()
        .any(|e| e.contains("ListOne(ListEntry { msg: #2, size: 120 })")));
    assert!(events
        .iter()
        .any(|e| e.contains("UidlOne(UidlEntry { msg: #2, uid: \"abc\" })")));
}
