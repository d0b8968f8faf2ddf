#!/usr/bin/env python3
"""Benchmarks of the Python package against the standard poplib, in one run.

    python3 pop3-python/bench/bench_python.py [--local-dovecot PATH] [--runs 3]

Needs the `pop3` package installed in the running interpreter
(scripts/test-python leaves one in target/py-venv) and a built
`local-dovecot` (cargo build -p test-support --bin local-dovecot).

1. One 64 MiB message over plain TCP on loopback: poplib `retr`, the
   drop-in's `retr` (same list of lines) and the drop-in's `retr_to` into
   /dev/null. Targets: retr >= 3x, retr_to >= 10x faster than poplib.
2. 1000 messages of 10 KiB through bench/latency_proxy.py adding 10 ms each
   way (20 ms per round trip): poplib (one RETR per round trip) against
   `pop3.aio` with `retr_many` (pipelined). Target: >= 20x faster.

Prints a Markdown table of the medians; nothing is written to disk.
"""

import argparse
import asyncio
import json
import os
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


def timed(fn, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def big_message(local_dovecot, runs):
    server = Server([local_dovecot, "--big-message", str(BIG)])
    info = server.info
    try:

        def session(mod):
            conn = mod.POP3(info["host"], info["plain_port"])
            conn.user(info["user"])
            conn.pass_(info["password"])
            return conn

        def std_retr():
            conn = session(poplib)
            _, lines, octets = conn.retr(1)
            assert octets == BIG, octets
            conn.quit()

        def ours_retr():
            conn = session(dropin)
            _, lines, octets = conn.retr(1)
            assert octets == BIG, octets
            conn.quit()

        def ours_retr_to():
            conn = session(dropin)
            with open(os.devnull, "wb") as sink:
                _, written = conn.retr_to(1, sink)
            assert written == BIG, written
            conn.quit()

        return {
            "poplib retr": timed(std_retr, runs),
            "pop3.poplib retr": timed(ours_retr, runs),
            "pop3.poplib retr_to": timed(ours_retr_to, runs),
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
    small = many_small(args.local_dovecot, args.runs, args.poplib_latency_runs)
    print("| case | client | seconds (median) | speed-up over poplib |")
    print("|---|---|---:|---:|")
    base = big["poplib retr"]
    for name, secs in big.items():
        print(f"| one 64 MiB message, plain TCP | {name} | {secs:.3f} | {base / secs:.1f}x |")
    base = small["poplib, RETR one by one"]
    for name, secs in small.items():
        print(f"| 1000 x 10 KiB, 20 ms round trip | {name} | {secs:.3f} | {base / secs:.1f}x |")


if __name__ == "__main__":
    main()
