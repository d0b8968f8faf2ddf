#!/usr/bin/env python3
"""Benchmarks of the Python package against the standard poplib, in one run.

    python3 pop3-python/bench/bench_python.py [--local-dovecot PATH] [--runs 3]

Needs the `pop3` package installed in the running interpreter
(scripts/test-python leaves one in target/py-venv) and a built
`local-dovecot` (cargo build -p test-support --bin local-dovecot).

1. One 64 MiB message over plain TCP on loopback: poplib `retr`, the
   drop-in's `retr` (same list of lines) and the drop-in's `retr_to` into
   /dev/null, timing the RETR call alone (a fresh session each run).
   Targets: retr >= 3x, retr_to >= 10x faster than poplib.
   The same from a server process that sends the message from memory, so
   that the client's own speed shows (Dovecot serves about 300 MB/s here).
   Client CPU time is measured beside wall time.
2. 1000 messages of 10 KiB through bench/latency_proxy.py adding 10 ms each
   way (20 ms per round trip): poplib (one RETR per round trip) against
   `pop3.aio` with `retr_many` (pipelined). Target: >= 20x faster.

Prints a Markdown table of the medians; nothing is written to disk.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import pathlib
import poplib
import statistics
import subprocess
import sys
import time

import pop3.aio
from pop3 import poplib as dropin

REPO = pathlib.Path(__file__).resolve().parents[2]
BIG = 64 * 1024 * 1024


class Server:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv[0]} printed nothing")
        self.info = json.loads(line)

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def blob_server(listener, message):
    """A POP3 server that answers RETR with `message` (already dot-stuffed and
    terminated) from memory: it costs the client side nothing but the read,
    so the client's own speed shows. Runs in its own process."""
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"+OK blob server\r\n")
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    verb = line.split(b" ")[0].upper()
                    if verb == b"RETR":
                        conn.sendall(b"+OK %d octets\r\n" % BIG)
                        conn.sendall(message)
                    elif verb == b"QUIT":
                        conn.sendall(b"+OK bye\r\n")
                    else:
                        conn.sendall(b"+OK\r\n")


def stuffed_message():
    """64 MiB of 76-character lines, one in eleven starting with a dot."""
    lines = []
    size = 0
    n = 0
    while size < BIG:
        n += 1
        text = (b"." if n % 11 == 0 else b"") + (b"line %d of the message " % n) * 4
        text = text[:76]
        left = BIG - size
        if left < 80:
            text = b"x" * (left - 2)
        lines.append(text + b"\r\n")
        size += len(text) + 2
    body = b"".join(lines)
    assert len(body) == BIG
    wire = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in body.split(b"\r\n"))
    return wire + b".\r\n"


def timed(fn, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_retr(open_session, fetch, runs):
    """Median wall time and client CPU time of RETR alone (connecting and
    logging in excluded), a fresh session each run."""
    walls, cpus = [], []
    for _ in range(runs):
        conn = open_session()
        wall, cpu = time.perf_counter(), time.process_time()
        octets = fetch(conn)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert octets == BIG, octets
        conn.quit()
    return statistics.median(walls), statistics.median(cpus)


def to_devnull(conn):
    with open(os.devnull, "wb") as sink:
        return conn.retr_to(1, sink)[1]


def blob(runs):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    proc = multiprocessing.Process(target=blob_server, args=(listener, stuffed_message()), daemon=True)
    proc.start()
    try:

        def session(mod):
            conn = mod.POP3("127.0.0.1", port)
            conn.user("u")
            conn.pass_("p")
            return conn

        return {
            "poplib retr": measure_retr(lambda: session(poplib), lambda c: c.retr(1)[2], runs),
            "pop3.poplib retr": measure_retr(lambda: session(dropin), lambda c: c.retr(1)[2], runs),
            "pop3.poplib retr_to": measure_retr(lambda: session(dropin), to_devnull, runs),
        }
    finally:
        proc.terminate()
        proc.join()


def big_message(local_dovecot, runs):
    server = Server([local_dovecot, "--big-message", str(BIG)])
    info = server.info
    try:

        def session(mod):
            conn = mod.POP3(info["host"], info["plain_port"])
            conn.user(info["user"])
            conn.pass_(info["password"])
            return conn

        def retr_only(mod, fetch):
            return measure_retr(lambda: session(mod), fetch, runs)

        return {
            "poplib retr": retr_only(poplib, lambda c: c.retr(1)[2]),
            "pop3.poplib retr": retr_only(dropin, lambda c: c.retr(1)[2]),
            "pop3.poplib retr_to": retr_only(dropin, to_devnull),
        }
    finally:
        server.stop()


def many_small(local_dovecot, runs, std_runs):
    server = Server([local_dovecot, "--messages", "1000", "--size", "10240"])
    info = server.info
    proxy = Server(
        [sys.executable, str(REPO / "bench" / "latency_proxy.py"),
         "--upstream", f"{info['host']}:{info['plain_port']}", "--delay-ms", "10"]
    )
    host, port = proxy.info["host"], proxy.info["port"]
    try:

        def std_fetch():
            conn = poplib.POP3(host, port)
            conn.user(info["user"])
            conn.pass_(info["password"])
            total = 0
            for n in range(1, 1001):
                total += conn.retr(n)[2]
            assert total == 1000 * 10240, total
            conn.quit()

        async def aio_fetch():
            async with await pop3.aio.connect(
                host, port, tls="none", allow_plaintext_credentials=True
            ) as conn:
                await conn.login(info["user"], info["password"], "user")
                total = 0
                async for _, data in conn.retr_many(range(1, 1001)):
                    total += len(data)
                assert total == 1000 * 10240, total

        return {
            "poplib, RETR one by one": timed(std_fetch, std_runs),
            "pop3.aio retr_many": timed(lambda: asyncio.run(aio_fetch()), runs),
        }
    finally:
        proxy.stop()
        server.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--local-dovecot", default=str(REPO / "target" / "debug" / "local-dovecot"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--poplib-latency-runs", type=int, default=1,
                   help="runs of the slow poplib latency case (about 20 s each)")
    args = p.parse_args()
    big = big_message(args.local_dovecot, args.runs)
    from_memory = blob(args.runs)
    small = many_small(args.local_dovecot, args.runs, args.poplib_latency_runs)
    print("| case | client | wall s (median) | speed-up | client CPU s | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for case, results in [
        ("64 MiB RETR from Dovecot", big),
        ("64 MiB RETR from memory", from_memory),
    ]:
        wall0, cpu0 = results["poplib retr"]
        for name, (wall, cpu) in results.items():
            print(f"| {case} | {name} | {wall:.3f} | {wall0 / wall:.1f}x | {cpu:.3f} | {cpu0 / cpu:.1f}x |")
    base = small["poplib, RETR one by one"]
    for name, secs in small.items():
        print(f"| 1000 x 10 KiB, 20 ms round trip (whole session) | {name} | {secs:.3f} | {base / secs:.1f}x | | |")


if __name__ == "__main__":
    main()
