//! How many logged-in sessions one tokio thread holds, and what each costs.
//!
//! ```text
//! cargo run --release -p pop3-bench --bin idle-sessions -- [SESSIONS]
//! ```
//!
//! A scripted POP3 server runs in the same process (its own thread, its own
//! tokio runtime): it greets, accepts USER/PASS, answers STAT, then keeps each
//! connection open. The client side opens SESSIONS connections on one
//! current-thread tokio runtime, logs each in and runs STAT, and keeps them
//! all. Heap in use is counted by a counting allocator; the client's share is
//! the heap with the sessions minus the heap with the same number of raw
//! sockets that did the same exchange by hand (the server's part and the
//! sockets themselves). Kernel socket buffers are not heap and not counted;
//! the process's resident size is printed too.

use std::alloc::System;
use std::time::Instant;

use pop3_tokio::{Connection, Options};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use (allocated minus freed, over the whole process).
fn heap() -> isize {
    let stats = GLOBAL.stats();
    (stats.bytes_allocated as isize - stats.bytes_deallocated as isize) + (stats.bytes_reallocated)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The scripted server: greets, accepts any login, answers STAT, holds on.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write.write_all(b"+OK ready\r\n").await;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = match line.split(' ').next().unwrap_or("") {
                    "STAT" => b"+OK 0 0\r\n",
                    "CAPA" => b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n",
                    _ => b"+OK\r\n",
                };
                if write.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    // The server on a thread of its own, with its own runtime.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let Ok(server_rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        server_rt.block_on(async {
            if let Ok(listener) = TcpListener::from_std(listener) {
                serve(listener).await;
            }
        });
    });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = Options::new().allow_plaintext_credentials(true);

    // Baseline: the same exchange over raw sockets.
    let before = heap();
    let raw: Vec<TcpStream> = client_rt.block_on(async {
        let mut all = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut s = TcpStream::connect(addr).await?;
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await?;
            s.write_all(b"USER u\r\nPASS p\r\nSTAT\r\n").await?;
            let mut got = 0;
            while got < 3 {
                let n = s.read(&mut buf).await?;
                got += buf[..n].iter().filter(|&&b| b == b'\n').count();
            }
            all.push(s);
        }
        Ok::<_, std::io::Error>(all)
    })?;
    let raw_heap = heap() - before;
    drop(raw);
    // Let the server notice the closed sockets and free their state, so that
    // the next measurement starts from the same ground.
    let mut settled = heap();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = heap();
        if (now - settled).abs() < 1024 && now - before < 64 * 1024 {
            break;
        }
        settled = now;
    }

    let rss_before = rss_kib();
    let before = heap();
    let started = Instant::now();
    let conns: Vec<Connection> = client_rt.block_on(async {
        let mut all = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut conn = pop3_tokio::connect_plain("127.0.0.1", addr.port(), &options).await?;
            conn.login("u", "p").await?;
            conn.stat().await?;
            all.push(conn);
        }
        Ok::<_, pop3_tokio::Error>(all)
    })?;
    let elapsed = started.elapsed();
    let pop3_heap = heap() - before;
    let rss_after = rss_kib();
    let per_session = (pop3_heap - raw_heap) as f64 / sessions as f64;
    println!("sessions held on one tokio thread: {}", conns.len());
    println!("opened and logged in in {:.2} s", elapsed.as_secs_f64());
    println!(
        "heap per idle logged-in session: {:.0} bytes ({:.1} KiB) beyond a raw socket",
        per_session,
        per_session / 1024.0
    );
    println!(
        "heap per raw socket and server side: {:.0} bytes",
        raw_heap as f64 / sessions as f64
    );
    println!(
        "process RSS grew by {} KiB ({:.1} KiB per session, server included)",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / sessions as f64
    );
    // Every session is still usable.
    client_rt.block_on(async {
        for mut conn in conns {
            conn.noop().await?;
        }
        Ok::<_, pop3_tokio::Error>(())
    })?;
    println!("all {sessions} sessions answered NOOP afterwards");
    Ok(())
}
