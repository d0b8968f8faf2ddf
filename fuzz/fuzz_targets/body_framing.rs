//! A message, dot-stuffed as a server does, retrieved with RETR in arbitrary
//! pieces, with `poll_body_limited`.
//!
//! Asserted: the `Event::Body` chunks, concatenated, equal the message and the
//! output of a byte-at-a-time reference unstuffer; each chunk is non-empty and
//! at most the requested size; the body ends with exactly one `BodyEnd` and the
//! client is then idle and in step; the outcome does not depend on how the
//! input was cut (compared with one single piece). With a body line limit:
//! the retrieval succeeds when every line fits, fails with `BodyLineTooLong`
//! when a line is longer, and the chunks handed out before a failure
//! are a prefix of the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_fuzz::{dot_stuff, logged_in, normalize_message, reference_unstuff, BodyInput};
use pop3_proto::{Action, Command, Config, Event, MsgNum, ProtocolError, Reply};

#[derive(Debug, PartialEq)]
enum Outcome {
    Done(Vec<u8>),
    TooLong { prefix: Vec<u8> },
}

fn retrieve(input: &BodyInput, wire: &[u8], cuts: &[usize]) -> Outcome {
    let mut limits = pop3_proto::Limits::default();
    limits.max_body_line_len = input.body_line_limit.map(usize::from);
    let mut client = logged_in(Config::encrypted().limits(limits));
    let retr = client
        .submit(Command::Retr(MsgNum::new(1).unwrap()))
        .unwrap();
    match client.poll() {
        Ok(Action::Send(b)) => assert_eq!(b, b"RETR 1\r\n"),
        other => panic!("expected RETR to be sent, got {other:?}"),
    }
    let max = input.chunk_limit.map_or(usize::MAX, usize::from);
    let mut body = Vec::new();
    let mut started = false;
    let mut end: Option<Result<(), ProtocolError>> = None;
    let mut pieces = cuts.iter().copied().cycle();
    let mut from = 0;
    let mut polls = 0usize;
    loop {
        loop {
            polls += 1;
            assert!(polls <= 4 * wire.len() + 64, "too many polls");
            let action = if input.chunk_limit.is_some() {
                client.poll_body_limited(max)
            } else {
                client.poll()
            };
            match action {
                Ok(Action::NeedInput) => break,
                Ok(Action::Event(Event::Body { handle, data })) => {
                    assert_eq!(handle, retr);
                    assert!(started, "body before BodyStart");
                    assert!(end.is_none(), "body after the end");
                    assert!(!data.is_empty(), "empty Body event");
                    assert!(
                        data.len() <= max.max(1),
                        "Body of {} octets, limit {max}",
                        data.len()
                    );
                    body.extend_from_slice(data);
                }
                Ok(Action::Event(Event::BodyStart { handle })) => {
                    assert_eq!(handle, retr);
                    assert!(!started, "second BodyStart");
                    assert!(body.is_empty(), "body before BodyStart");
                    started = true;
                }
                Ok(Action::Event(Event::Ok {
                    handle,
                    reply: Reply::BodyEnd,
                })) => {
                    assert_eq!(handle, retr);
                    assert!(end.is_none(), "second end");
                    end = Some(Ok(()));
                }
                Ok(Action::Event(Event::Failed { handle, error })) => {
                    assert_eq!(handle, retr);
                    assert!(end.is_none(), "second end");
                    assert!(
                        input.body_line_limit.is_some(),
                        "failed without a line limit: {error:?}"
                    );
                    assert!(
                        matches!(error, ProtocolError::BodyLineTooLong { .. }),
                        "{error:?}"
                    );
                    end = Some(Err(error));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if from == wire.len() {
            break;
        }
        let n = pieces.next().unwrap_or(wire.len()).min(wire.len() - from);
        client.receive(&wire[from..from + n]);
        from += n;
    }
    assert_eq!(client.in_flight(), 0, "RETR still in flight after its end");
    // The client is in step: another command goes out and is answered.
    client.submit(Command::Noop).unwrap();
    assert!(matches!(client.poll(), Ok(Action::Send(b"NOOP\r\n"))));
    client.receive(b"+OK\r\n");
    assert!(matches!(
        client.poll(),
        Ok(Action::Event(Event::Ok {
            reply: Reply::Ok(_),
            ..
        }))
    ));
    match end.expect("the body never ended") {
        Ok(()) => Outcome::Done(body),
        Err(_) => Outcome::TooLong { prefix: body },
    }
}

/// Longest line of `bytes`, line ending included. Only CRLF ends a line
/// (a bare LF is message data, as in the decoder).
fn longest_line(bytes: &[u8]) -> usize {
    let (mut longest, mut current) = (0, 0);
    for (i, &b) in bytes.iter().enumerate() {
        current += 1;
        if b == b'\n' && i > 0 && bytes[i - 1] == b'\r' {
            longest = longest.max(current);
            current = 0;
        }
    }
    longest.max(current)
}

fuzz_target!(|input: BodyInput| {
    let message = normalize_message(&input.message.0);
    let stuffed = dot_stuff(&message);

    // The oracles agree with each other first.
    let (reference, used) = reference_unstuff(&stuffed).expect("reference: no terminator");
    assert_eq!(used, stuffed.len());
    assert_eq!(
        reference, message,
        "reference unstuffer disagrees with the stuffer"
    );

    let mut wire = b"+OK message follows\r\n".to_vec();
    wire.extend_from_slice(&stuffed);
    let cuts: Vec<usize> = if input.chunks.is_empty() {
        vec![wire.len()]
    } else {
        input.chunks.iter().map(|&c| usize::from(c) + 1).collect()
    };
    let outcome = retrieve(&input, &wire, &cuts);
    let whole = retrieve(&input, &wire, &[wire.len()]);

    match &outcome {
        Outcome::Done(body) => {
            assert_eq!(body, &message, "retrieved body differs from the message");
            assert_eq!(body, &reference);
        }
        Outcome::TooLong { prefix } => {
            assert!(
                message.starts_with(prefix),
                "chunks before the failure are not a prefix of the message"
            );
        }
    }
    if let Some(limit) = input.body_line_limit {
        let limit = usize::from(limit);
        // Lines of the body on the wire, after the status line, terminator excluded.
        let wire_body = &stuffed[..stuffed.len() - 3];
        if longest_line(wire_body) <= limit + 2 {
            assert!(
                matches!(outcome, Outcome::Done(_)),
                "every line fits the limit {limit}, but {outcome:?}"
            );
        }
        // A line longer than the limit (line ending excluded) must fail.
        if longest_line(&message) > limit + 2 {
            assert!(
                matches!(outcome, Outcome::TooLong { .. }),
                "a line exceeds the limit {limit}, but it passed"
            );
        }
    }
    // Independent of the chunking (the failure prefix may differ in length).
    match (&outcome, &whole) {
        (Outcome::Done(a), Outcome::Done(b)) => assert_eq!(a, b),
        (Outcome::TooLong { .. }, Outcome::TooLong { .. }) => {}
        (a, b) => panic!("chunked: {a:?}, whole: {b:?}"),
    }
});
