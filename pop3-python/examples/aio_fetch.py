#!/usr/bin/env python3
"""The asyncio layer: fetch every message of several mailboxes at once.

    POP3_PASSWORD=... python3 aio_fetch.py HOST [--port N] [--tls implicit|starttls|none]
        [--ca ca.pem] --user NAME [--sessions 4] --out DIR

Each session retrieves its share of the messages with one pipelined
`retr_many` and writes them to DIR/<uid>.eml. Nothing is deleted.
"""

import argparse
import asyncio
import os
import pathlib
import ssl

import pop3.aio


async def fetch(args, password, share, out: pathlib.Path) -> int:
    context = ssl.create_default_context(cafile=args.ca)
    async with await pop3.aio.connect(
        args.host, args.port, tls=args.tls, ssl_context=context,
        allow_plaintext_credentials=args.tls == "none",
    ) as conn:
        await conn.login(args.user, password)
        uids = {e.msg: e.uid for e in await conn.uidl()}
        mine = [m for m in sorted(uids) if m % args.sessions == share]
        async for msg, data in conn.retr_many(mine):
            (out / f"{uids[msg]}.eml").write_bytes(data)
        return len(mine)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("--port", type=int)
    p.add_argument("--tls", choices=["implicit", "starttls", "none"], default="implicit")
    p.add_argument("--ca")
    p.add_argument("--user", required=True)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--out", required=True, type=pathlib.Path)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    password = os.environ["POP3_PASSWORD"]
    counts = await asyncio.gather(
        *(fetch(args, password, share, args.out) for share in range(args.sessions))
    )
    print(f"{sum(counts)} messages written to {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
