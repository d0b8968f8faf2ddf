#!/usr/bin/env python3
"""The drop-in: a program written for the standard poplib, with one changed import.

    POP3_PASSWORD=... python3 poplib_dropin.py HOST [--port N] [--ca ca.pem] --user NAME --out DIR

Lists the mailbox and saves every message to DIR/<n>.eml with `retr_to`,
which streams each message to its file without building a list of lines.
Certificates are verified: give --ca for a private CA.
"""

import argparse
import os
import pathlib
import ssl

from pop3 import poplib  # was: import poplib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("--port", type=int, default=poplib.POP3_SSL_PORT)
    p.add_argument("--ca")
    p.add_argument("--user", required=True)
    p.add_argument("--out", required=True, type=pathlib.Path)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    context = ssl.create_default_context(cafile=args.ca)
    with poplib.POP3_SSL(args.host, args.port, context=context, timeout=30) as pop:
        print(pop.getwelcome().decode("ascii", "replace"))
        pop.user(args.user)
        pop.pass_(os.environ["POP3_PASSWORD"])
        count, size = pop.stat()
        print(f"{count} messages, {size} octets")
        resp, listing, _ = pop.list()
        for line in listing:
            n = int(line.split()[0])
            with open(args.out / f"{n}.eml", "wb") as f:
                pop.retr_to(n, f)
        try:
            pop.dele(count + 1)
        except poplib.error_proto as e:
            print("as expected:", e.args[0].decode())


if __name__ == "__main__":
    main()
