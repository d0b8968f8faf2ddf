//! Benchmark (ignored by default): RETR of one 64 MiB message from a real
//! Dovecot over loopback, plain TCP, through `examples/fetch.c` on the C ABI
//! and through `pop3-blocking`, in the same run. Both write the message to a
//! file and fsync it. Run with
//!
//! ```sh
//! cargo test --release -p pop3-ffi --test bench_retr -- --ignored --nocapture
//! ```
//!
//! The C figure is the wall time of the whole `fetch` process (start,
//! connect, login, STAT, RETR, QUIT, exit); the Rust figure times the same
//! steps in-process, so the C side carries a process start the Rust side
//! does not.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pop3_blocking::Wait;
use pop3_proto::MsgNum;
use pop3_transport::Options;
use test_support::Dovecot;

const SIZE: usize = 64 * 1024 * 1024;
const RUNS: usize = 9;

/// `deps/`, where cargo puts `libpop3.a` and the test binary.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

fn build_fetch() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = target_dir().join("fetch-c-bench");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-O2", "-I"])
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("examples/fetch.c"))
        .arg(target_dir().join("libpop3.a"))
        .args(["-lssl", "-lcrypto", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("run the C compiler");
    assert!(status.success());
    out
}

/// 74-character lines plus CRLF, one in 50 starting with a dot (stuffed on
/// the wire), like the core's own decoding benchmark.
fn big_message() -> Vec<u8> {
    let mut m = b"Subject: 64 MiB\r\n\r\n".to_vec();
    let mut i = 0u64;
    while m.len() + 76 < SIZE {
        let first = if i.is_multiple_of(50) { '.' } else { 'x' };
        m.extend_from_slice(format!("{first}{:073}\r\n", i).as_bytes());
        i += 1;
    }
    m
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

#[test]
#[ignore = "benchmark: run explicitly, in release"]
fn retr_64_mib_c_abi_vs_pop3_blocking() {
    let dovecot = Dovecot::shared();
    let mailbox = dovecot.add_user(&test_support::unique_user("bench-ffi"), "bench-secret");
    let message = big_message();
    mailbox.add_message(&message);
    let fetch = build_fetch();
    let port = dovecot.plain_addr().port();
    let dir = tempfile::tempdir().expect("tempdir");

    let mut c_times = Vec::new();
    let mut rust_times = Vec::new();
    for run in 0..RUNS {
        // Alternate the order so that neither side always runs on a warmer cache.
        for side in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
            if side == 0 {
                let out = dir.path().join(format!("c-{run}"));
                fs::create_dir(&out).expect("outdir");
                let start = Instant::now();
                let status = Command::new(&fetch)
                    .args([
                        "127.0.0.1",
                        &port.to_string(),
                        "none",
                        mailbox.user(),
                        "/dev/null",
                    ])
                    .arg(&out)
                    .env("POP3_PASSWORD", mailbox.password())
                    .env("POP3_ALLOW_PLAINTEXT", "1")
                    .status()
                    .expect("run fetch");
                c_times.push(start.elapsed());
                assert!(status.success());
                assert!(fs::read(out.join("1.eml")).expect("1.eml") == message);
            } else {
                let path = dir.path().join(format!("rust-{run}.eml"));
                let start = Instant::now();
                let options = Options::new().allow_plaintext_credentials(true);
                let mut pop3 = pop3_blocking::connect_plain("127.0.0.1", port, &options)
                    .wait()
                    .expect("connect");
                pop3.login(mailbox.user(), mailbox.password())
                    .wait()
                    .expect("login");
                let count = pop3.stat().wait().expect("stat").count;
                assert_eq!(count, 1);
                let mut file = File::create(&path).expect("create");
                let msg = MsgNum::new(1).expect("1 is a message number");
                pop3.retr_to(msg, &mut file).wait().expect("retr");
                file.flush().expect("flush");
                file.sync_all().expect("fsync");
                pop3.quit().wait().expect("quit");
                rust_times.push(start.elapsed());
                assert!(fs::read(&path).expect("read") == message);
            }
        }
    }
    let (c, rust) = (median(c_times.clone()), median(rust_times.clone()));
    let (c_min, rust_min) = (
        c_times.iter().min().copied().unwrap_or_default(),
        rust_times.iter().min().copied().unwrap_or_default(),
    );
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!("message: {} bytes; median of {RUNS}", message.len());
    println!(
        "C ABI (fetch.c, process wall): {:.1} ms, {:.0} MiB/s  (all: {c_times:?})",
        c.as_secs_f64() * 1e3,
        mib_per_s(message.len(), c)
    );
    println!(
        "pop3-blocking (in-process):    {:.1} ms, {:.0} MiB/s  (all: {rust_times:?})",
        rust.as_secs_f64() * 1e3,
        mib_per_s(message.len(), rust)
    );
    println!(
        "C throughput / Rust throughput: {:.0} % (medians), {:.0} % (best runs: C {:.1} ms, Rust {:.1} ms)",
        100.0 * rust.as_secs_f64() / c.as_secs_f64(),
        100.0 * rust_min.as_secs_f64() / c_min.as_secs_f64(),
        c_min.as_secs_f64() * 1e3,
        rust_min.as_secs_f64() * 1e3
    );
}
