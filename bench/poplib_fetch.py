#!/usr/bin/env python3
"""The Python standard library baseline for bench/run.py: poplib.

Same arguments and output as the Rust `bench_fetch` examples:

    POP3_BENCH_PASSWORD=... python3 bench/poplib_fetch.py --host 127.0.0.1 --port 1110 \
        --tls none|implicit [--ca ca.pem] --user bench --password-env POP3_BENCH_PASSWORD [--limit N]

Logs in with USER/PASS, sends CAPA, LIST, then RETR for every message one
after the other (poplib does not pipeline), discarding the bodies, and QUIT.
Prints {"messages": N, "bytes": B, "seconds": S}; bytes are poplib's octet
counts.
"""

import argparse
import json
import os
import poplib
import ssl
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["none", "implicit"], default="none")
    p.add_argument("--ca")
    p.add_argument("--user", required=True)
    p.add_argument("--password-env", required=True)
    p.add_argument("--limit", type=int)
    args = p.parse_args()
    password = os.environ[args.password_env]

    started = time.perf_counter()
    if args.tls == "implicit":
        context = ssl.create_default_context(cafile=args.ca)
        pop = poplib.POP3_SSL(args.host, args.port, context=context)
    else:
        pop = poplib.POP3(args.host, args.port)
    pop.user(args.user)
    pop.pass_(password)
    pop.capa()
    _, listing, _ = pop.list()
    numbers = [int(line.split()[0]) for line in listing]
    if args.limit is not None:
        numbers = numbers[: args.limit]
    total = 0
    for n in numbers:
        _, _, octets = pop.retr(n)
        total += octets
    pop.quit()
    seconds = time.perf_counter() - started
    print(json.dumps({"messages": len(numbers), "bytes": total, "seconds": round(seconds, 6)}))


if __name__ == "__main__":
    sys.exit(main())
