#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction.

    python3 bench/latency_proxy.py --upstream 127.0.0.1:1110 [--listen 127.0.0.1:0] [--delay-ms 10]

Each chunk read from one side is forwarded to the other side `--delay-ms`
after it arrived (order preserved; reading is never held back, so the delay
does not shrink TCP windows). With the default 10 ms each way, a round trip
through the proxy takes at least 20 ms. The TCP handshake with the proxy
itself is not delayed; the upstream connection is opened when a client
connects. Plain TCP only.

Prints one line of JSON, {"host": ..., "port": ...}, then serves until its
stdin is closed (or it is killed). Standard library only.
"""

import argparse
import asyncio
import json
import socket
import sys

CHUNK = 256 * 1024


def host_port(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def forward(reader, writer, delay):
    """Copies reader to writer, each chunk `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def receive():
        try:
            while True:
                data = await reader.read(CHUNK)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((loop.time() + delay, b""))

    async def send():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(receive(), send())


async def serve(args):
    upstream = host_port(args.upstream)
    delay = args.delay_ms / 1000.0

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(
                forward(client_reader, server_writer, delay),
                forward(server_reader, client_writer, delay),
            )
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            for w in (client_writer, server_writer):
                w.close()

    host, port = host_port(args.listen)
    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    print(json.dumps({"host": bound[0], "port": bound[1]}), flush=True)

    loop = asyncio.get_running_loop()
    # Serve until stdin reaches EOF.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0)")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (default 10)")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
