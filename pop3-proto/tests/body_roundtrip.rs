//! Property: any message, dot-stuffed as a server sends it and then decoded at
//! any chunking, comes back byte for byte.
#![allow(clippy::unwrap_used)]

use pop3_proto::{Action, Client, Command, Config, Event, MsgNum, Reply};
use proptest::prelude::*;

/// What a server does to a message: stuff lines (ended by CRLF) starting with
/// '.', then end with the terminator line.
fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && message[i - 1] == b'\r';
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn retrieve(wire: &[u8], chunks: &[usize], limit: usize) -> Vec<u8> {
    let mut c = Client::new(Config::encrypted());
    c.receive(b"+OK\r\n");
    c.user("u").unwrap();
    c.pass("p").unwrap();
    settle(&mut c, &[b"+OK\r\n", b"+OK\r\n"]);
    let h = c.submit(Command::Retr(MsgNum::new(1).unwrap())).unwrap();
    let mut input = b"+OK\r\n".to_vec();
    input.extend_from_slice(wire);
    let mut body = Vec::new();
    let mut sizes = chunks.iter().cycle();
    let mut rest = &input[..];
    loop {
        match c.poll_body_limited(limit).unwrap() {
            Action::Event(Event::Body { handle, data }) if handle == h => {
                assert!(data.len() <= limit);
                body.extend_from_slice(data)
            }
            Action::Event(Event::Ok {
                handle,
                reply: Reply::BodyEnd,
            }) if handle == h => return body,
            Action::NeedInput => {
                assert!(
                    !rest.is_empty(),
                    "client wants more input after the terminator"
                );
                let n = (*sizes.next().unwrap()).clamp(1, rest.len());
                let buf = c.input_buffer();
                buf[..n].copy_from_slice(&rest[..n]);
                c.input_written(n);
                rest = &rest[n..];
            }
            _ => {}
        }
    }
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    // Bytes weighted towards the ones that matter: dots, CR and LF.
    let byte = prop_oneof![
        4 => Just(b'.'),
        3 => Just(b'\r'),
        3 => Just(b'\n'),
        6 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..400).prop_map(|mut m| {
        if !m.ends_with(b"\r\n") {
            m.extend_from_slice(b"\r\n");
        }
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn stuffed_then_decoded_gives_back_the_message(
        message in message(),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        limit in prop_oneof![Just(usize::MAX), 1usize..16],
    ) {
        let wire = stuff(&message);
        prop_assert_eq!(retrieve(&wire, &chunks, limit), message);
    }
}

#[test]
fn the_empty_message() {
    assert_eq!(retrieve(b".\r\n", &[1], usize::MAX), b"");
    assert_eq!(retrieve(b".\r\n", &[100], usize::MAX), b"");
}

/// Hands the server's replies over one at a time, each only once the client
/// has sent what it answers (the way they arrive from a real server).
fn settle(c: &mut Client, replies: &[&[u8]]) {
    for reply in replies {
        while !matches!(c.poll().unwrap(), Action::NeedInput) {}
        c.receive(reply);
    }
    while !matches!(c.poll().unwrap(), Action::NeedInput) {}
}
