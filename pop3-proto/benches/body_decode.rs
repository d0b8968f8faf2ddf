//! Decoding a 64 MiB message body fed in 64 KiB reads, next to a plain memcpy
//! of the same bytes in the same run.
//!
//! Run: `cargo bench -p pop3-proto --bench body_decode`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pop3_proto::{Action, Client, Command, Config, Event, MsgNum, Reply};

const BODY_SIZE: usize = 64 << 20;
const READ_SIZE: usize = 64 << 10;

/// A mail-like body: 74-byte lines plus CRLF, one in 50 starting with a
/// (stuffed) dot, as a server puts it on the wire, after the +OK line.
fn wire() -> Vec<u8> {
    let mut out = b"+OK message follows\r\n".to_vec();
    let mut i = 0u64;
    while out.len() < BODY_SIZE {
        if i.is_multiple_of(50) {
            out.extend_from_slice(b"..");
        }
        for j in 0..74u64 {
            out.push(b'A' + ((i * 7 + j) % 26) as u8);
        }
        out.extend_from_slice(b"\r\n");
        i += 1;
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn logged_in() -> Client {
    let mut c = Client::new(Config::encrypted());
    c.receive(b"+OK\r\n");
    c.user("u").expect("state allows USER");
    c.pass("p").expect("state allows PASS");
    // Each reply only once the client has sent what it answers.
    for reply in [b"+OK\r\n", b"+OK\r\n"] {
        while !matches!(c.poll().expect("valid replies"), Action::NeedInput) {}
        c.receive(reply);
    }
    while !matches!(c.poll().expect("valid replies"), Action::NeedInput) {}
    c
}

/// Feeds the wire bytes in 64 KiB reads into the client's own buffer (as a
/// socket read would) and consumes the body chunks; returns the body length.
fn decode(wire: &[u8]) -> usize {
    let mut c = logged_in();
    let retr = c
        .submit(Command::Retr(MsgNum::new(1).expect("nonzero")))
        .expect("state allows RETR");
    let mut rest = wire;
    let mut total = 0;
    loop {
        match c.poll().expect("valid body") {
            Action::Event(Event::Body { data, .. }) => total += black_box(data).len(),
            Action::Event(Event::Ok {
                handle,
                reply: Reply::BodyEnd,
            }) if handle == retr => return total,
            Action::NeedInput => {
                let n = rest.len().min(READ_SIZE);
                c.input_buffer()[..n].copy_from_slice(&rest[..n]);
                c.input_written(n);
                rest = &rest[n..];
            }
            _ => {}
        }
    }
}

/// The baseline: the same bytes copied in 64 KiB pieces into one buffer.
fn memcpy(wire: &[u8], buf: &mut [u8]) -> usize {
    for chunk in wire.chunks(READ_SIZE) {
        buf[..chunk.len()].copy_from_slice(chunk);
        black_box(&buf[..chunk.len()]);
    }
    wire.len()
}

fn bench(c: &mut Criterion) {
    let wire = wire();
    let mut group = c.benchmark_group("body_64MiB");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.sample_size(20);
    group.bench_function("memcpy_64KiB_reads", |b| {
        let mut buf = vec![0u8; READ_SIZE];
        b.iter(|| memcpy(&wire, &mut buf))
    });
    group.bench_function("pop3_proto_decode", |b| b.iter(|| decode(&wire)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
